// The API's port: HTTPS for people, mutual TLS for peers, on one port. The TLS listener takes each
// connection first (tls-listener.ts) and keeps its deadlines; the HTTP server behind it runs the
// API. A node serves its kept certificate, or, before it belongs to a cluster, one that no member
// trusts.
import type http from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import { temporaryIdentity } from "./cluster-ca.ts";
import { PeerTls } from "./peer-tls.ts";
import type { PeerWire } from "./peer-wire.ts";
import { PlainListener, PlainPeerWire } from "./plain-wire.ts";
import { systemClock } from "./system-clock.ts";
import { readTlsIdentity } from "./tls-files.ts";
import { type PeerOfSocket, type TlsIdentity, TlsListener } from "./tls-listener.ts";

/** What main asks of the port's listener. */
export interface ApiListener {
  setIdentity(identity: TlsIdentity): void;
  /** Ends every open connection of a node that left. */
  closeNode(nodeId: string): void;
  close(graceMs?: number): Promise<void>;
}

export interface Served {
  http: http.Server;
  listener: ApiListener;
  /** The client side of this node's TLS (peer calls and streams). */
  wire: PeerWire;
  /** Serves a new certificate on the port and shows it to peers from now on. */
  setIdentity(identity: TlsIdentity): void;
}

export interface ApiServerOptions {
  fetch: (request: Request, env: unknown) => Response | Promise<Response>;
  dataDir: string;
  nodeId: string;
  bind: string;
  port: number;
  /** Whether a node's certificate is refused though valid (see TlsListenerOptions.isRevoked). */
  isRevoked: (peer: PeerOfSocket) => boolean;
  /** `--bench-plain-http`: no TLS at all, for the benchmark that measures its cost. */
  plainHttp?: boolean;
  logger: Logger;
}

const clockAdvice =
  "refused a peer certificate on time: check the clocks of both machines (a Pi has no clock until NTP answers)";

/**
 * Listens before the node belongs to a cluster (health answers, and the leader reaches a joiner
 * as soon as it is a learner).
 */
export async function listenApi(options: ApiServerOptions): Promise<Served> {
  const { logger } = options;
  const identity =
    readTlsIdentity(options.dataDir) ??
    (await temporaryIdentity(options.nodeId, systemClock.now()));
  // Never listens itself: Node's header and request timeouts do not watch its connections, so
  // the listener keeps those deadlines (tls-listener.ts).
  const server = createAdaptorServer({ fetch: options.fetch }) as http.Server;
  if (options.plainHttp) return listenPlain(server, options, identity);
  const listener = new TlsListener(server, {
    identity,
    isRevoked: options.isRevoked,
    onRefused: (address, refusal) =>
      logger.warn(
        { address, reason: refusal.reason },
        refusal.clock ? clockAdvice : "refused a peer certificate",
      ),
  });
  await listener.listen(options.port, options.bind);
  logger.info(
    { bind: options.bind, port: options.port, dataDir: options.dataDir },
    "API listening (HTTPS)",
  );
  const wire = new PeerTls(identity);
  return served(server, listener, wire);
}

function served(server: http.Server, listener: ApiListener, wire: PeerWire): Served {
  const setIdentity = (next: TlsIdentity) => {
    listener.setIdentity(next);
    wire.setIdentity(next);
  };
  return { http: server, listener, wire, setIdentity };
}

async function listenPlain(
  server: http.Server,
  options: ApiServerOptions,
  identity: TlsIdentity,
): Promise<Served> {
  const listener = new PlainListener(server);
  await listener.listen(options.port, options.bind);
  options.logger.warn(
    { bind: options.bind, port: options.port },
    "API listening over PLAIN HTTP (--bench-plain-http): tokens, secrets and Raft travel in " +
      "cleartext and any machine on the path can act as a member; for benchmarks only",
  );
  return served(server, listener, new PlainPeerWire(options.nodeId, identity));
}

/** Closes the port: connections still open after the grace period are ended. */
export async function closeApiServer(served: Served): Promise<void> {
  served.wire.closeAll();
  await served.listener.close(limits.shutdownGraceMs);
}

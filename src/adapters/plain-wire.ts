// Plain HTTP between members, for one benchmark only: `npm run bench` restarts a lab fleet in
// turn over TLS and this way to measure what TLS costs the store (agent flag --bench-plain-http,
// refused without SHOAL_BENCH_PLAIN_HTTP=1, and said loudly at start). Anyone on the path can
// read and forge everything here: a sender is whoever the `x-shoal-bench-node` header names.
// Never a fleet's wire.
import http from "node:http";
import type net from "node:net";
import { limits } from "../core/limits.ts";
import type { PeerWire } from "./peer-wire.ts";
import { listenOn, markPeer, type TlsIdentity } from "./tls-listener.ts";

const senderHeader = "x-shoal-bench-node";

export class PlainPeerWire implements PeerWire {
  readonly scheme = "http";
  readonly headers: Readonly<Record<string, string>>;
  private readonly agent = new http.Agent({
    keepAlive: true,
    timeout: limits.peerIdleSocketMs,
    maxSockets: limits.peerSocketsMax,
    maxFreeSockets: limits.peerSocketsMax,
  });

  constructor(
    nodeId: string,
    public identity: TlsIdentity,
  ) {
    this.headers = { [senderHeader]: nodeId };
  }

  agentFor(): http.Agent {
    return this.agent;
  }

  request(url: string, _memberId: string, options: http.RequestOptions): http.ClientRequest {
    return http.request(url, { ...options, headers: { ...options.headers, ...this.headers } });
  }

  setIdentity(identity: TlsIdentity): void {
    this.identity = identity;
  }

  forget(): void {}

  closeAll(): void {
    this.agent.destroy();
  }
}

/** The server end: `server` listens itself, and a request's header names its sender. */
export class PlainListener {
  constructor(private readonly server: http.Server) {
    const mark = (request: http.IncomingMessage) => {
      const nodeId = request.headers[senderHeader];
      if (typeof nodeId === "string" && nodeId !== "") {
        markPeer(request.socket as net.Socket, { nodeId, serial: "", keyDigest: "" });
      }
    };
    server.prependListener("request", mark);
    server.prependListener("upgrade", mark);
    server.headersTimeout = limits.httpHeadersTimeoutMs;
    server.requestTimeout = limits.httpRequestTimeoutMs;
  }

  setIdentity(): void {}

  closeNode(): void {}

  listen(port: number, host: string): Promise<void> {
    return listenOn(this.server, port, host);
  }

  close(graceMs = 0): Promise<void> {
    const force = setTimeout(() => this.server.closeAllConnections(), graceMs);
    return new Promise((resolve) =>
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      }),
    );
  }
}

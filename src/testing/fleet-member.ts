// A fleet member in this process, wired as main.ts wires one (the API behind the TLS listener, peer
// streams, openFleet), without the agent's loops: for tests of joining and replication over real
// mutual TLS on loopback. The test hands in `openFleet` (testing/ may not import the top level).
import { closeApiServer, listenApi, type Served } from "../adapters/api-server.ts";
import type { PeerStreamEndpoint } from "../adapters/peer-stream.ts";
import { acceptPeerStreams } from "../adapters/peer-stream.ts";
import type { PeerWire } from "../adapters/peer-wire.ts";
import type { RaftCommandLog } from "../adapters/raft-command-log.ts";
import { systemClock } from "../adapters/system-clock.ts";
import type { TlsIdentity } from "../adapters/tls-listener.ts";
import { peerOf } from "../adapters/tls-listener.ts";
import { createApi } from "../api/app.ts";
import type { JoinEndpoint, PeerEndpoint, TokenRotation } from "../api/context.ts";
import { freePort } from "./agent-process.ts";

/** What the helper uses of a fleet (adapters/fleet.ts's Fleet has it all). */
export interface MemberFleet {
  log: RaftCommandLog;
  peer: PeerEndpoint;
  joins: JoinEndpoint;
  streams: PeerStreamEndpoint;
  secrets: TokenRotation;
  needsJoin: boolean;
  join(signal: AbortSignal): Promise<void>;
  close(): void;
}

/** What the helper gives openFleet (a part of adapters/fleet.ts's FleetOptions, the rest optional). */
export interface MemberFleetOptions {
  nodeId: string;
  dataDir: string;
  token?: string | undefined;
  join: readonly string[];
  finder: null;
  logger: { info(): void; warn(): void; error(): void };
  registration: {
    name: string;
    address: string;
    port: number;
    labels: Record<string, string>;
    arch: string;
    os: string;
    cpus: number;
    memoryMb: number;
    version: string;
  };
  wire: PeerWire;
  onIdentity: (identity: TlsIdentity) => void;
}

export interface FleetMember<F extends MemberFleet> {
  id: string;
  port: number;
  dataDir: string;
  fleet: F;
  served: Served;
  stop(): Promise<void>;
}

export interface FleetMemberOptions<F extends MemberFleet> {
  openFleet: (options: MemberFleetOptions) => Promise<F>;
  id: string;
  dataDir: string;
  token?: string | undefined;
  /** Ports of members on 127.0.0.1 to join through. */
  join?: readonly number[];
  /** Whether a peer's certificate is refused though valid; none by default. */
  isRevoked?: (peer: { nodeId: string; keyDigest: string }) => boolean;
}

const silent = { info() {}, warn() {}, error() {} };
const facts = { arch: "amd64", os: "linux", cpus: 2, memoryMb: 1024, version: "test" };

/** Starts a member and, when it must, joins it (within 10 s). */
export async function startFleetMember<F extends MemberFleet>(
  options: FleetMemberOptions<F>,
): Promise<FleetMember<F>> {
  const { id, dataDir } = options;
  const port = await freePort();
  let fleet: F | null = null;
  const api = createApi({
    nodeId: id,
    store: () => (fleet ? { view: fleet.log.view(), log: fleet.log } : null),
    peer: () => fleet?.peer ?? null,
    joins: () => fleet?.joins ?? null,
    rotation: () => fleet?.secrets ?? null,
    connectionPeer: (env) =>
      peerOf((env as { incoming?: { socket?: never } }).incoming?.socket)?.nodeId ?? null,
    clock: systemClock,
    newId: () => `t${Date.now()}`,
    logger: silent,
  });
  const served = await listenApi({
    fetch: api.app.fetch,
    dataDir,
    nodeId: id,
    bind: "127.0.0.1",
    port,
    isRevoked: options.isRevoked ?? (() => false),
    logger: silent,
  });
  const closeStreams = acceptPeerStreams(served.http, () => fleet?.streams ?? null);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    fleet?.close();
    closeStreams();
    await closeApiServer(served);
  };
  try {
    fleet = await options.openFleet({
      nodeId: id,
      dataDir,
      token: options.token,
      join: (options.join ?? []).map((p) => `127.0.0.1:${p}`),
      finder: null,
      logger: silent,
      registration: { name: id, address: "127.0.0.1", port, labels: {}, ...facts },
      wire: served.wire,
      onIdentity: (identity) => served.setIdentity(identity),
    });
    if (fleet.needsJoin) await fleet.join(AbortSignal.timeout(10_000));
  } catch (error) {
    await stop();
    throw error;
  }
  return { id, port, dataDir, fleet, served, stop };
}

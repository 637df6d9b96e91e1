// What the API needs from its node: the store (once open), the command log, time and ids.
import type { Clock } from "../core/clock.ts";
import type { Result } from "../core/errors.ts";
import type { IdGenerator } from "../core/ids.ts";
import type { Logger } from "../core/logger.ts";
import type { Consistency, DiskStatus, FleetStatus, HostUsage } from "../core/types.ts";
import type { CommandLog } from "../state/command-log.ts";
import type { StateView } from "../state/views.ts";

/** A peer route's answer already encoded as JSON (Raft messages carry bytes as base64). */
export class EncodedJson {
  constructor(readonly text: string) {}
}

/** The peer side of a node: the handler of each /internal/:kind request. */
export interface PeerEndpoint {
  /** Handles a request from `fromNode` (named by its certificate); unknown kinds throw E_NOT_FOUND. */
  handle(kind: string, body: unknown, fromNode: string): Promise<unknown>;
}

export interface TokenRotation {
  rotateApiToken(): Promise<string>;
  /** The new join token (`shoal2.…`). */
  rotateJoinSecret(): Promise<string>;
}

/** Where a node without a certificate joins: the CA to pin, and admission. */
export interface JoinEndpoint {
  caPem(): string;
  /** Admits a joiner whose request proves the join secret, or refuses it (E_UNAUTHORIZED). */
  admit(body: unknown): Promise<unknown>;
}

/** What the API asks of the replicated store beyond the command log. */
export interface FleetAccess {
  /** Resolves once this node's replica is fresh enough for a read at `consistency`. */
  readAt(consistency: Consistency): Promise<Result<void>>;
  status(): Promise<FleetStatus>;
  roleOf(nodeId: string): "voter" | "learner" | null;
  /** A node's last reported machine use, as the leader knows it; null elsewhere or unknown. */
  usageOf(nodeId: string): HostUsage | null;
}

export interface ApiNode {
  nodeId: string;
  /** The store once it is open and replayed; null before. */
  store(): { view: StateView; log: CommandLog } | null;
  clock: Clock;
  newId: IdGenerator;
  logger: Logger;
  /** The peer endpoint once the node knows its cluster's join token; absent on one node. */
  peer?: () => PeerEndpoint | null;
  /** The join endpoint once the node belongs to a cluster. */
  joins?: () => JoinEndpoint | null;
  /** New tokens for the cluster: each resolves with the new token once its rotation committed. */
  rotation?: () => TokenRotation | null;
  /**
   * The node whose valid, unrevoked certificate the request's connection showed (from the TLS
   * handshake, never from a header); null for any other client.
   */
  connectionPeer?: (env: unknown) => string | null;
  /** The replicated store's reads and status; absent on a store without replication (tests). */
  fleet?: () => FleetAccess | null;
  /** This node's disk as it measures it now (not from the store); null before the store opens. */
  disk?: () => DiskStatus | null;
}

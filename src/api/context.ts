// What the API needs from its node: the store (once open), the command log, time and ids.
import type { Clock } from "../core/clock.ts";
import type { IdGenerator } from "../core/ids.ts";
import type { CommandLog } from "../state/command-log.ts";
import type { StateView } from "../state/views.ts";
import type { PeerVerifier } from "./peer-auth.ts";

export interface Logger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/** The peer side of a node: its verifier and the handler of each /internal/:kind request. */
export interface PeerEndpoint {
  verifier: PeerVerifier;
  /** Handles a verified request from `fromNode`; unknown kinds throw E_NOT_FOUND. */
  handle(kind: string, body: unknown, fromNode: string): Promise<unknown>;
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
}

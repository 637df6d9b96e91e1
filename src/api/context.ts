// What the API needs from its node: the store (once open), the command log, time and ids.
import type { Clock } from "../core/clock.ts";
import type { IdGenerator } from "../core/ids.ts";
import type { CommandLog } from "../state/command-log.ts";
import type { StateView } from "../state/views.ts";

export interface Logger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

export interface ApiNode {
  nodeId: string;
  /** The store once it is open and replayed; null before. */
  store(): { view: StateView; log: CommandLog } | null;
  clock: Clock;
  newId: IdGenerator;
  logger: Logger;
}

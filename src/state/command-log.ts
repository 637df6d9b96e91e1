// The command log: the one way anything changes the store. `propose` resolves after the command
// is durable in the log and applied to the local state machine. On one node the log is a libSQL
// table; in a fleet the Raft core replicates it behind the same interface.
import type { Command } from "./commands.ts";
import type { ApplyResult } from "./machine.ts";
import type { StateView } from "./views.ts";

export interface AppliedEntry {
  index: number;
  command: Command;
  result: ApplyResult;
}

export interface CommandLog {
  propose(command: Command): Promise<ApplyResult>;
  /** The read view of this node's store (a snapshot install replaces the database under it). */
  view(): StateView;
  /** Calls `listener` after each applied entry; returns the unsubscribe function. */
  onApplied(listener: (entry: AppliedEntry) => void): () => void;
  /** True while this node may act as leader (schedule, judge nodes). */
  isLeader(): boolean;
  close(): void;
}

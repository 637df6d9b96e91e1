// The command log: the one way anything changes the store. `propose` resolves after the command
// is committed by the Raft log (a one-node cluster is a Raft cluster of one voter) and applied
// to this node's state machine; adapters/raft-command-log.ts implements it.
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
  /** True while this node holds the lease (the cluster room's leadership starts the duties). */
  isLeader(): boolean;
  close(): void;
}

// What the cluster room needs of the world. The Raft-replicated log (adapters/raft-command-log.ts)
// implements `MemberLog`; the room's tests drive a twin of it (testing/member-log-twin.ts). The
// room never imports adapters: what they do reaches it through here.
import type { Result } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { Consistency } from "../core/types.ts";
import type { LeadershipChange } from "../raft/host/lease-watch.ts";
import type { FollowerProgress, RaftStatus } from "../raft/raft-core.ts";
import type { MembershipChange } from "../raft/types.ts";
import type { CommandLog } from "../state/command-log.ts";
import type { Command } from "../state/commands.ts";
import type { ApplyResult } from "../state/machine.ts";

export type { LeadershipChange };

/** What every duty of the room is given: whose it is, its timers, the wall clock, its log lines. */
export interface DutyContext {
  nodeId: string;
  timers: Timers;
  /** Wall-clock time for commands. */
  now: () => number;
  logger: Logger;
}

/** This member's replicated log, as the cluster room sees it. */
export interface MemberLog extends CommandLog {
  status(): RaftStatus;
  /** The leader's view of each other member's log (empty unless this node leads). */
  followers(): FollowerProgress[];
  /** This node's monotonic clock, which `followers()` and the lease are measured on. */
  monotonicNow(): number;
  leaseRemainingMs(): number;
  /** The index of this node's latest snapshot (0 before the first). */
  snapshotIndex(): number;
  /** Proposes on this member only: E_NOT_LEADER unless it leads. */
  proposeHere(command: Command): Promise<ApplyResult>;
  /** Proposes one membership change (one at a time) and waits until this node applied it. */
  changeMembership(change: MembershipChange): Promise<Result<void>>;
  /** Hands leadership to `target`; resolves once another member leads, or fails after `waitMs`. */
  transferLeadership(target: string, waitMs: number): Promise<Result<void>>;
  /** Resolves once this node's replica is fresh enough for a read at `consistency`. */
  readAt(consistency: Consistency): Promise<Result<void>>;
  /** Calls `listener` when this member gains and loses the lease; returns the unsubscribe. */
  onLeadership(listener: (change: LeadershipChange) => void): () => void;
}

// Bounds of the Raft core, derived from the shared timing limits in src/core/limits.ts.
// Kept in one file so they can later be merged into core; relations are asserted at load time.
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";

/**
 * The longest lease a leader may hold, measured on its own monotonic clock from the send time of
 * a heartbeat round that a majority acknowledged. Two clocks may drift by clockDriftMax in
 * opposite directions, so the leader's lease must end (in real time) before any follower's
 * vote refusal of electionTimeoutMsMin (on its own clock) ends.
 */
export function leaseMsFor(electionTimeoutMsMin: number, clockDriftMax: number): number {
  return Math.floor((electionTimeoutMsMin * (1 - clockDriftMax)) / (1 + clockDriftMax));
}

export const raftLimits = {
  raftHeartbeatMs: limits.raftHeartbeatMs,
  electionTimeoutMsMin: limits.electionTimeoutMsMin,
  electionTimeoutMsMax: limits.electionTimeoutMsMax,
  clockDriftMax: limits.clockDriftMax,
  leaseMs: leaseMsFor(limits.electionTimeoutMsMin, limits.clockDriftMax),
  /** Entries in one append message. */
  appendEntriesMax: 256,
  /** Payload bytes in one append message (a single larger entry still goes alone). */
  appendBytesMax: 1024 * 1024,
  /** Append messages in flight to one follower before the leader waits for acknowledgements. */
  inflightMessagesMax: 64,
  /** Entries appended by the leader but not yet committed; proposals beyond are refused. */
  uncommittedEntriesMax: 10_000,
  /** Committed entries handed out for applying in one ready batch. */
  applyEntriesMax: 1024,
  /** ReadIndex requests waiting for their heartbeat round or for the term's first commit. */
  readIndexPendingMax: 4096,
  /** Bytes of one snapshot chunk on the wire. */
  snapshotChunkBytes: 512 * 1024,
  /** Members of one cluster (voters and learners) and voters among them. */
  membersMax: 64,
  votersMax: 7,
  /** A leadership transfer that has not completed within this time is abandoned. */
  transferTimeoutMs: limits.electionTimeoutMsMax,
  /** Entries applied past the last snapshot before the host should compact. */
  snapshotEntriesThreshold: 10_000,
} as const;

export type RaftLimits = typeof raftLimits;

assert(raftLimits.leaseMs > 0);
assert(raftLimits.leaseMs < raftLimits.electionTimeoutMsMin);
assert(
  raftLimits.raftHeartbeatMs * 2 < raftLimits.leaseMs,
  "a lease must survive a lost heartbeat",
);
assert(raftLimits.appendEntriesMax >= 1);
assert(raftLimits.inflightMessagesMax >= 1);
assert(raftLimits.votersMax <= raftLimits.membersMax);
assert(raftLimits.applyEntriesMax >= raftLimits.appendEntriesMax);
assert(raftLimits.transferTimeoutMs >= raftLimits.electionTimeoutMsMin);

// The data the Raft core exchanges with its host: log entries, hard state, membership,
// messages between members, and the ready batch the host persists, sends and applies.

export type MemberId = string;

/** An absent member id (no vote cast, no known leader). */
export const noMember = "";

export type EntryKind = "noop" | "command" | "membership";

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly kind: EntryKind;
  /** The command for "command", the encoded Membership for "membership", empty for "noop". */
  readonly data: Uint8Array;
}

/** What must be durable before any message that depends on it leaves the member. */
export interface HardState {
  readonly term: number;
  readonly votedFor: MemberId;
  readonly commitIndex: number;
}

export interface Membership {
  readonly voters: readonly MemberId[];
  readonly learners: readonly MemberId[];
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
}

export type MembershipChange =
  | { readonly type: "addLearner"; readonly member: MemberId }
  | { readonly type: "promote"; readonly member: MemberId }
  | { readonly type: "demote"; readonly member: MemberId }
  | { readonly type: "remove"; readonly member: MemberId };

interface MessageBase {
  readonly from: MemberId;
  readonly to: MemberId;
  readonly term: number;
}

export interface PreVoteMessage extends MessageBase {
  readonly type: "preVote";
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}
export interface VoteMessage extends MessageBase {
  readonly type: "vote";
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when a leadership transfer asked for this election: it bypasses the vote refusal. */
  readonly transfer: boolean;
}
export interface VoteResponseMessage extends MessageBase {
  readonly type: "preVoteResponse" | "voteResponse";
  readonly granted: boolean;
}
export interface AppendMessage extends MessageBase {
  readonly type: "append";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commitIndex: number;
  /** The leader's heartbeat round in which this message was sent (for leases and reads). */
  readonly round: number;
}
export interface AppendResponseMessage extends MessageBase {
  readonly type: "appendResponse";
  readonly success: boolean;
  /** On success the index up to which the log matches; on rejection the refused prevIndex. */
  readonly index: number;
  /** On rejection: the last index at most prevIndex whose term is at most the refused prevTerm. */
  readonly hintIndex: number;
  readonly hintTerm: number;
  readonly round: number;
}
export interface HeartbeatMessage extends MessageBase {
  readonly type: "heartbeat";
  readonly commitIndex: number;
  readonly round: number;
}
export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: "heartbeatResponse";
  readonly round: number;
}
export interface TimeoutNowMessage extends MessageBase {
  readonly type: "timeoutNow";
}
export interface SnapshotMessage extends MessageBase {
  readonly type: "snapshot";
  readonly snapshot: SnapshotMeta;
  /** The state machine image: the core never reads it; the host attaches it before sending. */
  readonly data: Uint8Array | null;
  readonly round: number;
}

export type Message =
  | PreVoteMessage
  | VoteMessage
  | VoteResponseMessage
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | TimeoutNowMessage
  | SnapshotMessage;

export type MessageType = Message["type"];

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly context: string;
  readonly index: number;
}

/** A snapshot received from the leader, to install before applying anything after it. */
export interface SnapshotInstall {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/**
 * One batch of work for the host, handled in this order: send `sendNow`; persist (snapshot,
 * then compaction, then entries and hard state, atomically, and durably when `mustSync`); send
 * `messages`; apply committed entries; serve read states; then call advance(ready). Committed
 * entries already durable from earlier batches may apply before the persist is done; nothing
 * may be stepped into the core until advance.
 */
export interface Ready {
  readonly hardState: HardState | null;
  /**
   * Whether the persist must be flushed to disk before `messages` leave and entries count as
   * stored (etcd's MustSync): false when only the commit index moved, which a restart
   * recovers from the applied index.
   */
  readonly mustSync: boolean;
  readonly snapshot: SnapshotInstall | null;
  /** The log was compacted behind this snapshot: delete entries up to its index. */
  readonly compaction: SnapshotMeta | null;
  /** Entries to store; any stored entry at or after the first one's index is replaced. */
  readonly entries: readonly Entry[];
  /** A leader's appends and heartbeats: they may leave before this batch is persisted. */
  readonly sendNow: readonly Message[];
  /** Messages that may leave only once this batch is persisted (answers, votes, snapshots). */
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** What the host loads from its log store to restart a member. */
export interface PersistentState {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
}

export interface RandomSource {
  /** A uniformly distributed float in [0, 1). */
  next(): number;
}

/** Deliberate defects, switched on only by tests that prove the simulator's checkers bite. */
export interface RaftBugs {
  readonly voteTwiceInTerm?: boolean;
  readonly commitPreviousTermEntries?: boolean;
  readonly skipPersistVote?: boolean;
  readonly leaseIgnoresDrift?: boolean;
  readonly applyBeforeCommit?: boolean;
  readonly skipAppendTermCheck?: boolean;
  readonly membershipBeforeOwnTermCommit?: boolean;
  readonly concurrentMembershipChanges?: boolean;
  readonly learnerNeverStandsIn?: boolean;
  readonly soleVoterIgnoresLease?: boolean;
  readonly trustNonMembers?: boolean;
  readonly noPreVote?: boolean;
  readonly noCheckQuorum?: boolean;
  readonly noVoteRefusal?: boolean;
  readonly noRestartRefusal?: boolean;
  readonly readIndexWithoutRound?: boolean;
  readonly readIndexBeforeOwnTermCommit?: boolean;
  readonly transferKeepsLease?: boolean;
  readonly truncateOnStaleAppend?: boolean;
  /** Learners are sent every write at once, as voters are (the answer waits for those sends). */
  readonly eagerLearners?: boolean;
  /** Every commit is sent to every voter at once, in an empty append if need be. */
  readonly eagerCommitNotices?: boolean;
}

export type RaftBugName = keyof RaftBugs;

export const raftBugNames: readonly RaftBugName[] = [
  "voteTwiceInTerm",
  "commitPreviousTermEntries",
  "skipPersistVote",
  "leaseIgnoresDrift",
  "applyBeforeCommit",
  "skipAppendTermCheck",
  "membershipBeforeOwnTermCommit",
  "concurrentMembershipChanges",
  "learnerNeverStandsIn",
  "soleVoterIgnoresLease",
  "trustNonMembers",
  "noPreVote",
  "noCheckQuorum",
  "noVoteRefusal",
  "noRestartRefusal",
  "readIndexWithoutRound",
  "readIndexBeforeOwnTermCommit",
  "transferKeepsLease",
  "truncateOnStaleAppend",
];

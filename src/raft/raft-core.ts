// The pure Raft core in the style of etcd's raft: no clock, timers, randomness, network or
// disk. The host drives it with tick(now), step(message, now), propose(data) and
// readIndex(context), and collects a Ready batch to persist, send and apply, then advance().
import { assert, unreachable } from "../core/assert.ts";
import type { Result } from "../core/errors.ts";
import { fail, ok } from "../core/errors.ts";
import {
  allMembers,
  applyMembershipChange,
  assertMembershipValid,
  decodeMembership,
  encodeMembership,
  isMember,
  isVoter,
  quorumSize,
} from "./membership.ts";
import { Progress } from "./progress.ts";
import { leaseMsFor, raftLimits } from "./raft-limits.ts";
import { RaftLog } from "./raft-log.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  Entry,
  EntryKind,
  HardState,
  HeartbeatMessage,
  MemberId,
  Membership,
  MembershipChange,
  Message,
  PersistentState,
  PreVoteMessage,
  RaftBugs,
  RandomSource,
  ReadState,
  Ready,
  Role,
  SnapshotInstall,
  SnapshotMessage,
  SnapshotMeta,
  VoteMessage,
  VoteResponseMessage,
} from "./types.ts";
import { noMember } from "./types.ts";

export interface RaftTiming {
  readonly heartbeatMs: number;
  readonly electionTimeoutMsMin: number;
  readonly electionTimeoutMsMax: number;
  readonly clockDriftMax: number;
}

/** Flow control, at most the limits in raft-limits.ts; smaller values stress tests. */
export interface FlowControl {
  readonly appendEntriesMax: number;
  readonly inflightMessagesMax: number;
}

export interface RaftCoreOptions {
  readonly id: MemberId;
  /** What the log store loaded (empty for a new member). */
  readonly state: PersistentState;
  /** The membership of a brand-new cluster, used when neither snapshot nor log holds one. */
  readonly bootstrap?: Membership;
  /** The index the host's state machine has already applied (at least the snapshot's). */
  readonly appliedIndex?: number;
  /** The host's monotonic clock now, in milliseconds. */
  readonly nowMs: number;
  readonly random: RandomSource;
  readonly timing?: Partial<RaftTiming>;
  readonly flowControl?: Partial<FlowControl>;
  /** Test-only deliberate defects; never set in production. */
  readonly bugs?: RaftBugs;
}

export interface RaftStatus {
  readonly id: MemberId;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: MemberId;
  readonly leader: MemberId;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly membership: Membership;
  readonly leaseExpiryMs: number;
  readonly transferTarget: MemberId;
}

export interface FollowerProgress {
  readonly id: MemberId;
  readonly match: number;
  readonly state: "probe" | "replicate" | "snapshot";
  /** On the leader's monotonic clock. */
  readonly lastHeardMs: number;
}

interface PendingRead {
  readonly context: string;
  readonly index: number;
  readonly round: number;
}

const emptyMembership: Membership = { voters: [], learners: [] };
const noData = new Uint8Array(0);

export class RaftCore {
  readonly id: MemberId;
  private readonly timing: RaftTiming;
  private readonly flowControl: FlowControl;
  private readonly leaseMs: number;
  private readonly random: RandomSource;
  private readonly bugs: RaftBugs;
  private readonly log: RaftLog;

  private term: number;
  private votedFor: MemberId;
  private role: Role = "follower";
  private leader: MemberId = noMember;
  private membership: Membership;
  private membershipIndex: number;
  private nowMs: number;
  private electionDeadlineMs = 0;
  /** When this member last heard from a leader (or started): it refuses votes for a while. */
  private leaderHeardAtMs: number;
  private votes = new Map<MemberId, boolean>();

  // Leader state, reset on every change of role.
  private progress = new Map<MemberId, Progress>();
  private heartbeatDeadlineMs = 0;
  private round = 0;
  private roundStartsMs = new Map<number, number>();
  private quorumRound = 0;
  private quorumRoundStartMs = 0;
  private leaseExpiryMs = 0;
  private leaseForfeited = false;
  private transferTarget: MemberId = noMember;
  private transferDeadlineMs = 0;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingCommit: string[] = [];
  private broadcastPending = false;
  private commitBroadcastPending = false;
  /**
   * Learners are sent new entries and commits on the leader's ticks, not on every write: their
   * acknowledgements count for nothing, and a message per write to each of them took the
   * leader's turn (and the machine's cores) from the voters'. Set when something waits for them.
   */
  private learnersPending = false;
  /**
   * A commit no append carried yet: voters learn it from the next append, which at a steady
   * stream of writes leaves within a write's time, or at the next tick. An empty append to each
   * voter on every commit was one more message each way per write and voter.
   */
  private commitNoticePending = false;
  /** Members that wait on the leader (a write or a read through them): sent to at once. */
  private readonly hurried = new Set<MemberId>();

  // Output waiting for the next ready().
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  private snapshotInstall: SnapshotInstall | null = null;
  private compaction: SnapshotMeta | null = null;
  private emittedHardState: HardState;
  private readyOutstanding: Ready | null = null;

  constructor(options: RaftCoreOptions) {
    this.id = options.id;
    assert(this.id !== noMember, "a member needs an id");
    this.timing = {
      heartbeatMs: options.timing?.heartbeatMs ?? raftLimits.raftHeartbeatMs,
      electionTimeoutMsMin: options.timing?.electionTimeoutMsMin ?? raftLimits.electionTimeoutMsMin,
      electionTimeoutMsMax: options.timing?.electionTimeoutMsMax ?? raftLimits.electionTimeoutMsMax,
      clockDriftMax: options.timing?.clockDriftMax ?? raftLimits.clockDriftMax,
    };
    assertTimingValid(this.timing);
    this.flowControl = {
      appendEntriesMax: options.flowControl?.appendEntriesMax ?? raftLimits.appendEntriesMax,
      inflightMessagesMax:
        options.flowControl?.inflightMessagesMax ?? raftLimits.inflightMessagesMax,
    };
    assert(this.flowControl.appendEntriesMax >= 1);
    assert(this.flowControl.appendEntriesMax <= raftLimits.appendEntriesMax);
    assert(this.flowControl.inflightMessagesMax >= 1);
    assert(this.flowControl.inflightMessagesMax <= raftLimits.inflightMessagesMax);
    this.bugs = options.bugs ?? {};
    const drift = this.bugs.leaseIgnoresDrift ? 0 : this.timing.clockDriftMax;
    this.leaseMs = leaseMsFor(this.timing.electionTimeoutMsMin, drift);
    this.random = options.random;
    const { hardState, snapshot, entries } = options.state;
    const base = snapshot ?? {
      index: 0,
      term: 0,
      membership: options.bootstrap ?? emptyMembership,
    };
    assertMembershipValid(base.membership);
    this.log = new RaftLog(base, entries, hardState.commitIndex);
    const applied = Math.max(options.appliedIndex ?? 0, base.index);
    assert(applied <= this.log.lastIndex, "the state machine applied beyond the log");
    // A host may persist the commit index lazily (a lost one is learned again from the leader);
    // whatever the state machine applied was committed, so the commit index is at least that.
    this.log.commitTo(applied);
    this.log.appliedTo(applied);
    this.term = hardState.term;
    this.votedFor = hardState.votedFor;
    this.emittedHardState = hardState;
    this.membership = base.membership;
    this.membershipIndex = base.index;
    this.refreshMembershipFromLog();
    this.nowMs = options.nowMs;
    // A restarted member may have acknowledged a leader's lease round just before it stopped;
    // refusing votes for a full election timeout after start keeps that lease sound. A member
    // that never held a term or an entry acknowledged nothing, and has no lease to protect.
    // (A new cluster's first membership is stored as a snapshot at index 0: still fresh.)
    const fresh = hardState.term === 0 && (snapshot?.index ?? 0) === 0 && entries.length === 0;
    const refuseAfterStart = !fresh && !this.bugs.noRestartRefusal;
    this.leaderHeardAtMs = refuseAfterStart ? options.nowMs : Number.NEGATIVE_INFINITY;
    this.resetElectionTimer();
  }

  // ---- Inputs ---------------------------------------------------------------------------

  tick(nowMs: number): void {
    this.observeTime(nowMs);
    if (this.role === "leader") {
      this.tickLeader();
      return;
    }
    if (!this.electable()) {
      if (this.standsIn(nowMs)) this.campaign(this.bugs.noPreVote ? "vote" : "preVote", false);
      return;
    }
    // The only voter has no one to wait for, so a new one-node cluster leads at once instead of
    // after an election timeout; but a leader it heard from (one leaving the configuration, or
    // one it acknowledged before a restart) may still hold a lease, which it outlasts first.
    const soleVoter = this.membership.voters.length === 1 && isVoter(this.membership, this.id);
    const refusing = this.inLease() && !this.bugs.soleVoterIgnoresLease;
    if ((soleVoter && !refusing) || nowMs >= this.electionDeadlineMs) {
      this.campaign(this.bugs.noPreVote ? "vote" : "preVote", false);
    }
  }

  /**
   * A member that is no voter of its latest configuration (a learner, or one whose demotion it
   * has appended) campaigns as a last resort, once a whole election timeout past its deadline
   * has gone by without a leader: the voters had their turn. Voters may need it without knowing:
   * a demoted member may hold the most up-to-date log, which the voters of the configuration
   * before cannot beat; a voter whose uncommitted promotion of a learner counts that learner's
   * vote never gets it if the learner's log beats its own, while the others may not beat that
   * voter's log (a voter lost for good under membership churn). Votes are counted among the
   * voters of its latest configuration, never its own: who may try grows, never who may win (a
   * server not in its own latest configuration still starts elections, Raft thesis §4.2.2).
   * Leading a configuration it is no voter of, it steps down once its first entry commits. A
   * member whose own removal it has appended stands in while the removal is uncommitted: a
   * leader that removed itself and lost its lead before the commit may hold the only log that
   * carries the removal, and the others refuse to elect anyone without it.
   */
  private standsIn(nowMs: number): boolean {
    if (this.bugs.learnerNeverStandsIn) return false;
    if (nowMs < this.electionDeadlineMs + this.timing.electionTimeoutMsMax) return false;
    if (isMember(this.membership, this.id)) return true;
    return (
      this.membershipIndex > this.log.commitIndex &&
      isMember(this.membershipAt(this.log.commitIndex), this.id)
    );
  }

  private electable(): boolean {
    return isVoter(this.membership, this.id);
  }

  step(message: Message, nowMs: number): void {
    this.observeTime(nowMs);
    assert(message.to === this.id, "message routed to the wrong member");
    if (message.from === this.id) return;
    if (!this.fromKnownSender(message)) return;
    if (message.term > this.term) {
      if (!this.acceptHigherTerm(message)) return;
    } else if (message.term < this.term) {
      if (!(this.bugs.skipAppendTermCheck && message.type === "append")) {
        this.answerLowerTerm(message);
        return;
      }
    }
    this.dispatch(message);
  }

  propose(data: Uint8Array): Result<{ index: number; term: number }> {
    this.assertNoReadyOutstanding();
    const refusal = this.proposalRefusal();
    if (refusal !== null) return refusal;
    if (data.byteLength > raftLimits.appendBytesMax) {
      return fail("E_VALIDATION", "the command is larger than one append message may carry");
    }
    return ok(this.appendAsLeader("command", data));
  }

  proposeMembership(change: MembershipChange): Result<{ index: number; term: number }> {
    this.assertNoReadyOutstanding();
    const refusal = this.proposalRefusal();
    if (refusal !== null) return refusal;
    // A leader may demote or remove itself, as in etcd and hashicorp/raft: it leads a
    // configuration it is no voter of until the change commits, then steps down and hands over
    // (onLeaderCommit). If it loses its lead first, the stand-in lets it campaign again (its
    // log may be the only one holding the change), and the sole-voter guard outlasts its lease.
    // The voter keeper still hands over first, which spares the cluster that interval.
    const refusedChange = this.membershipChangeRefusal();
    if (refusedChange !== null) return refusedChange;
    const changed = applyMembershipChange(this.membership, change);
    if (!changed.ok) return changed;
    return ok(this.appendAsLeader("membership", encodeMembership(changed.value)));
  }

  /**
   * Single-server changes are safe only one at a time, and only once this leader's own term has
   * committed an entry: before that an uncommitted change of an earlier leader may still win
   * elsewhere, and two leaders could each commit a different configuration (Ongaro, raft-dev
   * 2015; etcd sets pendingConfIndex to its last index on election).
   */
  private membershipChangeRefusal(): Result<never> | null {
    if (!this.bugs.concurrentMembershipChanges && this.membershipIndex > this.log.commitIndex) {
      return fail("E_CONFLICT", "a membership change is still uncommitted");
    }
    const ownTermCommitted = this.log.term(this.log.commitIndex) === this.term;
    if (!this.bugs.membershipBeforeOwnTermCommit && !ownTermCommitted) {
      return fail("E_NOT_READY", "a new leader changes membership once its first entry commits");
    }
    return null;
  }

  /** Asks for a linearizable read point; the answer comes later as a ReadState in ready(). */
  readIndex(context: string): Result<void> {
    this.assertNoReadyOutstanding();
    if (this.role !== "leader") return fail("E_NOT_LEADER", "only the leader serves ReadIndex");
    const pending = this.pendingReads.length + this.readsAwaitingCommit.length;
    if (pending >= raftLimits.readIndexPendingMax) {
      return fail("E_NOT_READY", "too many reads are waiting");
    }
    const ownTermCommitted = this.log.term(this.log.commitIndex) === this.term;
    if (!ownTermCommitted && !this.bugs.readIndexBeforeOwnTermCommit) {
      // A new leader knows what is committed only once its own term's first entry commits.
      this.readsAwaitingCommit.push(context);
      return ok(undefined);
    }
    if (this.bugs.readIndexWithoutRound) {
      this.readStates.push({ context, index: this.log.commitIndex });
      return ok(undefined);
    }
    this.pendingReads.push({ context, index: this.log.commitIndex, round: this.round + 1 });
    return ok(undefined);
  }

  /** Hands leadership to a caught-up voter; the lease is given up first and for the term. */
  transferLeadership(target: MemberId): Result<void> {
    this.assertNoReadyOutstanding();
    if (this.role !== "leader") return fail("E_NOT_LEADER", "only the leader transfers leadership");
    if (target === this.id) return ok(undefined);
    if (!isVoter(this.membership, target)) return fail("E_VALIDATION", `${target} is not a voter`);
    if (this.transferTarget !== noMember) return fail("E_CONFLICT", "a transfer is in progress");
    this.transferTarget = target;
    this.transferDeadlineMs = this.nowMs + raftLimits.transferTimeoutMs;
    if (!this.bugs.transferKeepsLease) {
      this.leaseForfeited = true;
      this.leaseExpiryMs = 0;
    }
    const progress = this.progress.get(target);
    assert(progress !== undefined, "a voter without progress");
    if (progress.match === this.log.lastIndex) this.sendTimeoutNow(target);
    else this.replicateTo(target, progress, false);
    return ok(undefined);
  }

  /** The host captured its state machine at `index` (applied): drop the log behind it. */
  compact(index: number): void {
    this.assertNoReadyOutstanding();
    assert(index <= this.log.appliedIndex, "compacting beyond what is applied");
    if (index <= this.log.snapshot.index) return;
    const term = this.log.term(index);
    assert(term !== undefined, "compacting at an unknown index");
    const meta: SnapshotMeta = { index, term, membership: this.membershipAt(index) };
    this.log.compact(meta);
    this.compaction = meta;
  }

  /** Whether this member may act as leader right now, on its own monotonic clock. */
  leaseValid(nowMs: number): boolean {
    return (
      this.role === "leader" &&
      !this.leaseForfeited &&
      this.log.term(this.log.commitIndex) === this.term &&
      nowMs < this.leaseExpiryMs
    );
  }

  // ---- Ready / advance ------------------------------------------------------------------

  hasReady(): boolean {
    this.flushLeader();
    return (
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.snapshotInstall !== null ||
      this.compaction !== null ||
      this.log.unstableFrom <= this.log.lastIndex ||
      this.applyThrough() > this.log.appliedIndex ||
      !sameHardState(this.hardStateToPersist(), this.emittedHardState)
    );
  }

  ready(): Ready {
    this.assertNoReadyOutstanding();
    this.flushLeader();
    const hardState = this.hardStateToPersist();
    const changed = !sameHardState(hardState, this.emittedHardState);
    const install = this.snapshotInstall;
    const entries = this.log.unstableEntries();
    const termOrVoteChanged =
      hardState.term !== this.emittedHardState.term ||
      hardState.votedFor !== this.emittedHardState.votedFor;
    // A leader's appends may leave before its own flush, but never before its term and vote are
    // durable: a sole voter elects itself and sends in one batch, and a crash before the flush
    // would let it win that term again and send other entries at the same indexes.
    const [sendNow, messages] = termOrVoteChanged
      ? [[], this.messages]
      : splitLeaderAppends(this.messages);
    const ready: Ready = {
      hardState: changed ? hardState : null,
      mustSync:
        entries.length > 0 || install !== null || this.compaction !== null || termOrVoteChanged,
      snapshot: install,
      compaction: this.compaction,
      entries,
      sendNow,
      messages,
      committedEntries:
        install === null
          ? this.log.committedToApply(
              this.applyThrough(),
              raftLimits.applyEntriesMax,
              raftLimits.appendBytesMax,
            )
          : [],
      readStates: this.readStates,
    };
    this.messages = [];
    this.readStates = [];
    this.snapshotInstall = null;
    this.compaction = null;
    if (changed) this.emittedHardState = hardState;
    this.readyOutstanding = ready;
    return ready;
  }

  advance(ready: Ready): void {
    assert(ready === this.readyOutstanding, "advance of a ready that was not handed out last");
    this.readyOutstanding = null;
    if (ready.snapshot !== null) this.log.appliedTo(ready.snapshot.meta.index);
    const lastEntry = ready.entries.at(-1);
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index);
    const lastApplied = ready.committedEntries.at(-1);
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index);
  }

  // ---- Queries --------------------------------------------------------------------------

  status(): RaftStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      votedFor: this.votedFor,
      leader: this.leader,
      commitIndex: this.log.commitIndex,
      appliedIndex: this.log.appliedIndex,
      firstIndex: this.log.firstIndex,
      lastIndex: this.log.lastIndex,
      lastTerm: this.log.lastTerm,
      membership: this.membership,
      leaseExpiryMs: this.leaseForfeited ? 0 : this.leaseExpiryMs,
      transferTarget: this.transferTarget,
    };
  }

  /** The leader's view of each other member's log; empty on a member that does not lead. */
  followers(): FollowerProgress[] {
    if (this.role !== "leader") return [];
    return [...this.progress].map(([id, progress]) => ({
      id,
      match: progress.match,
      state: progress.state,
      lastHeardMs: progress.lastHeardMs,
    }));
  }

  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  entryAt(index: number): Entry {
    return this.log.entry(index);
  }

  get snapshotMeta(): SnapshotMeta {
    return this.log.snapshot;
  }

  // ---- Term and role transitions --------------------------------------------------------

  /**
   * Votes count only among voters, and only members answer a leader: such messages from anyone
   * else change nothing, not even the term (as in hashicorp/raft). What a leader sends is not
   * filtered: a joiner has no configuration yet, and a member may not yet hold the entry that
   * added its leader. A member cannot judge a candidate whose log is ahead of its own: it may
   * lack the entry that made that candidate a voter (a learner promoted while this member was
   * down), and refusing it could leave no electable quorum; so it hears such a candidate out, and
   * also anyone while it holds no configuration at all.
   */
  private fromKnownSender(message: Message): boolean {
    if (this.bugs.trustNonMembers) return true;
    switch (message.type) {
      case "preVote":
      case "vote":
        return (
          isVoter(this.membership, message.from) ||
          this.membershipUnknown() ||
          this.log.isAhead(message.lastLogIndex, message.lastLogTerm)
        );
      case "preVoteResponse":
      case "voteResponse":
        return isVoter(this.membership, message.from);
      case "appendResponse":
      case "heartbeatResponse":
        return isMember(this.membership, message.from);
      default:
        return true;
    }
  }

  private membershipUnknown(): boolean {
    return this.membership.voters.length === 0 && this.membership.learners.length === 0;
  }

  private acceptHigherTerm(message: Message): boolean {
    if (message.type === "preVote" || message.type === "vote") {
      const transfer = message.type === "vote" && message.transfer;
      // The refusal that makes leases sound: no vote while a leader may still hold one.
      if (!transfer && this.inLease() && !this.bugs.noVoteRefusal) return false;
      if (message.type === "preVote") return true;
    }
    if (message.type === "preVoteResponse" && message.granted) return true;
    const fromLeader =
      message.type === "append" || message.type === "heartbeat" || message.type === "snapshot";
    this.becomeFollower(message.term, fromLeader ? message.from : noMember);
    return true;
  }

  private answerLowerTerm(message: Message): void {
    // A stale leader learns the newer term from the answer and steps down; a stale
    // pre-candidate learns it too. Everything else of an older term is dropped.
    if (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot") {
      this.send({
        type: "appendResponse",
        to: message.from,
        success: false,
        index: 0,
        hintIndex: 0,
        hintTerm: 0,
        round: 0,
      });
    } else if (message.type === "preVote") {
      this.send({ type: "preVoteResponse", to: message.from, granted: false });
    }
  }

  private inLease(): boolean {
    return (
      this.role === "leader" || this.nowMs < this.leaderHeardAtMs + this.timing.electionTimeoutMsMin
    );
  }

  private becomeFollower(term: number, leader: MemberId): void {
    assert(term >= this.term, "term went back");
    if (term > this.term) {
      this.term = term;
      this.votedFor = noMember;
    }
    // Within one term the vote is kept: clearing it would let this member vote twice.
    this.role = "follower";
    this.leader = leader;
    if (leader !== noMember) this.leaderHeardAtMs = this.nowMs;
    this.resetLeaderState();
    this.resetElectionTimer();
  }

  private campaign(kind: "preVote" | "vote", transfer: boolean): void {
    this.resetLeaderState();
    this.leader = noMember;
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimer();
    if (kind === "vote") {
      this.role = "candidate";
      this.term += 1;
      this.votedFor = this.id;
    } else {
      this.role = "preCandidate";
    }
    const term = kind === "vote" ? this.term : this.term + 1;
    for (const voter of this.membership.voters) {
      if (voter === this.id) continue;
      const base = { to: voter, lastLogIndex: this.log.lastIndex, lastLogTerm: this.log.lastTerm };
      if (kind === "vote") this.send({ type: "vote", ...base, transfer }, term);
      else this.send({ type: "preVote", ...base }, term);
    }
    this.tallyVotes();
  }

  private tallyVotes(): void {
    const voters = this.membership.voters;
    let granted = 0;
    let rejected = 0;
    for (const voter of voters) {
      const vote = this.votes.get(voter);
      if (vote === true) granted++;
      if (vote === false) rejected++;
    }
    const quorum = quorumSize(voters.length);
    if (granted >= quorum) {
      if (this.role === "preCandidate") this.campaign("vote", false);
      else this.becomeLeader();
    } else if (rejected >= quorum) {
      this.becomeFollower(this.term, noMember);
    }
  }

  private becomeLeader(): void {
    assert(this.role === "candidate", "only a candidate becomes leader");
    this.role = "leader";
    this.leader = this.id;
    this.resetLeaderState();
    for (const member of allMembers(this.membership)) {
      if (member !== this.id)
        this.progress.set(member, new Progress(this.log.lastIndex + 1, this.nowMs));
    }
    this.quorumRoundStartMs = this.nowMs;
    this.heartbeatDeadlineMs = this.nowMs + this.timing.heartbeatMs;
    this.startRound(false);
    // A new term reaches every member at once, learners too: they learn their new leader.
    for (const [member] of this.progress) this.hurried.add(member);
    // The no-op lets this term commit, and with it every entry of earlier terms.
    this.appendAsLeader("noop", noData);
  }

  private resetLeaderState(): void {
    this.progress.clear();
    this.round = 0;
    this.roundStartsMs.clear();
    this.quorumRound = 0;
    this.leaseExpiryMs = 0;
    this.leaseForfeited = false;
    this.transferTarget = noMember;
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.broadcastPending = false;
    this.commitBroadcastPending = false;
    this.commitNoticePending = false;
    this.learnersPending = false;
    this.hurried.clear();
  }

  private resetElectionTimer(): void {
    const { electionTimeoutMsMin: low, electionTimeoutMsMax: high } = this.timing;
    this.electionDeadlineMs = this.nowMs + low + Math.floor(this.random.next() * (high - low));
  }

  // ---- Message handling ------------------------------------------------------------------

  private dispatch(message: Message): void {
    switch (message.type) {
      case "preVote":
      case "vote":
        this.handleVoteRequest(message);
        break;
      case "preVoteResponse":
      case "voteResponse":
        this.handleVoteResponse(message);
        break;
      case "append":
        this.handleAppend(message);
        break;
      case "heartbeat":
        this.handleHeartbeat(message);
        break;
      case "snapshot":
        this.handleSnapshot(message);
        break;
      case "appendResponse":
        this.handleAppendResponse(message);
        break;
      case "heartbeatResponse":
        this.handleHeartbeatResponse(message.from, message.round);
        break;
      case "timeoutNow":
        if (this.role !== "leader" && this.electable()) this.campaign("vote", true);
        break;
      default:
        unreachable(message, "unknown message type");
    }
  }

  private handleVoteRequest(message: PreVoteMessage | VoteMessage): void {
    const preVote = message.type === "preVote";
    const votedFor = this.bugs.voteTwiceInTerm ? noMember : this.votedFor;
    const canVote =
      votedFor === message.from ||
      (votedFor === noMember && this.leader === noMember) ||
      (preVote && message.term > this.term);
    const granted = canVote && this.log.isUpToDate(message.lastLogIndex, message.lastLogTerm);
    if (granted && !preVote) {
      this.votedFor = message.from;
      this.resetElectionTimer();
    }
    const type = preVote ? "preVoteResponse" : "voteResponse";
    this.send({ type, to: message.from, granted }, granted ? message.term : this.term);
  }

  private handleVoteResponse(message: VoteResponseMessage): void {
    const expected =
      (this.role === "preCandidate" &&
        message.type === "preVoteResponse" &&
        message.term === (message.granted ? this.term + 1 : this.term)) ||
      (this.role === "candidate" && message.type === "voteResponse");
    if (!expected) return;
    this.votes.set(message.from, message.granted);
    this.tallyVotes();
  }

  private followLeader(from: MemberId): void {
    if (this.role !== "follower" || this.leader !== from) {
      assert(this.role !== "leader", "two leaders in one term");
      this.becomeFollower(this.term, from);
    }
    this.leaderHeardAtMs = this.nowMs;
    this.resetElectionTimer();
  }

  private handleAppend(message: AppendMessage): void {
    if (message.term === this.term) this.followLeader(message.from);
    if (message.prevIndex < this.log.commitIndex) {
      this.respondToAppend(message, true, this.log.commitIndex, 0, 0);
      return;
    }
    if (!this.log.matchTerm(message.prevIndex, message.prevTerm)) {
      const hint = this.log.findConflictByTerm(message.prevIndex, message.prevTerm);
      this.respondToAppend(message, false, message.prevIndex, hint.index, hint.term);
      return;
    }
    const lastNewIndex = message.prevIndex + message.entries.length;
    if (this.bugs.truncateOnStaleAppend && message.entries.length > 0) {
      this.appendToLog(message.entries);
    }
    const conflict = this.log.findConflict(message.entries);
    if (conflict !== 0) {
      this.appendToLog(message.entries.filter((entry) => entry.index >= conflict));
    }
    this.log.commitTo(Math.min(message.commitIndex, lastNewIndex));
    this.respondToAppend(message, true, lastNewIndex, 0, 0);
  }

  private respondToAppend(
    message: AppendMessage | SnapshotMessage,
    success: boolean,
    index: number,
    hintIndex: number,
    hintTerm: number,
  ): void {
    this.send({
      type: "appendResponse",
      to: message.from,
      success,
      index,
      hintIndex,
      hintTerm,
      round: message.round,
    });
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    this.followLeader(message.from);
    this.log.commitTo(Math.min(message.commitIndex, this.log.lastIndex));
    this.send({ type: "heartbeatResponse", to: message.from, round: message.round });
  }

  private handleSnapshot(message: SnapshotMessage): void {
    this.followLeader(message.from);
    const meta = message.snapshot;
    const respond = (index: number) => this.respondToAppend(message, true, index, 0, 0);
    if (meta.index <= this.log.commitIndex) {
      respond(this.log.commitIndex);
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // The log already holds the snapshot's last entry: only the commit mark moves.
      this.log.commitTo(meta.index);
      respond(meta.index);
      return;
    }
    assert(message.data !== null, "a snapshot message arrived without its data");
    this.log.restore(meta);
    this.membership = meta.membership;
    this.membershipIndex = meta.index;
    this.snapshotInstall = { meta, data: message.data };
    respond(meta.index);
  }

  private handleAppendResponse(message: AppendResponseMessage): void {
    if (this.role !== "leader") return;
    const progress = this.progress.get(message.from);
    if (progress === undefined) return;
    progress.lastHeardMs = this.nowMs;
    this.recordRoundAcknowledged(progress, message.round);
    if (!message.success) {
      this.handleRejection(message.from, progress, message);
      return;
    }
    const moved = progress.acknowledge(message.index);
    if (progress.state === "probe" && moved) progress.becomeReplicate();
    if (progress.state === "snapshot" && progress.match >= progress.snapshotIndex) {
      progress.becomeReplicate();
    }
    if (progress.state === "probe") progress.probeSent = false;
    if (moved) this.maybeCommit();
    // Committing its own removal makes a leader step down.
    if (this.role !== "leader") return;
    if (message.from === this.transferTarget && progress.match === this.log.lastIndex) {
      this.sendTimeoutNow(message.from);
    }
    // A learner far behind (catching up) is sent more at once; one nearly level, at the tick.
    const catchingUp = progress.match + raftLimits.appendEntriesMax <= this.log.lastIndex;
    if (!this.lazyLearner(message.from) || catchingUp) {
      this.replicateTo(message.from, progress, false);
    } else if (progress.next <= this.log.lastIndex) {
      this.learnersPending = true;
    }
  }

  private handleRejection(
    member: MemberId,
    progress: Progress,
    message: AppendResponseMessage,
  ): void {
    const stale =
      progress.state === "replicate"
        ? message.index <= progress.match
        : message.index !== progress.next - 1;
    if (stale) return;
    const found = this.log.findConflictByTerm(message.hintIndex, message.hintTerm);
    progress.becomeProbe(Math.min(message.index, found.index + 1));
    this.replicateTo(member, progress, false);
  }

  private handleHeartbeatResponse(member: MemberId, round: number): void {
    if (this.role !== "leader") return;
    const progress = this.progress.get(member);
    if (progress === undefined) return;
    progress.lastHeardMs = this.nowMs;
    this.recordRoundAcknowledged(progress, round);
    progress.probeSent = false;
    // Appends may have been lost: free one in-flight slot and send even an empty append, whose
    // rejection (if the follower lacks what was sent) puts the follower back into probe.
    if (progress.inflight.length >= this.flowControl.inflightMessagesMax) progress.inflight.shift();
    if (progress.match < this.log.lastIndex || progress.state === "snapshot") {
      this.replicateTo(member, progress, true);
    }
  }

  // ---- Leader: replication, commit, rounds ------------------------------------------------

  private tickLeader(): void {
    if (this.transferTarget !== noMember && this.nowMs >= this.transferDeadlineMs) {
      // The transfer is abandoned, but the lease stays forfeited for the rest of the term:
      // a late timeout-now may still start an election that bypasses the vote refusal.
      this.transferTarget = noMember;
    }
    this.replicateLearners();
    this.sendCommitNotices();
    if (this.nowMs < this.heartbeatDeadlineMs) return;
    this.heartbeatDeadlineMs = this.nowMs + this.timing.heartbeatMs;
    const quorumSilent = this.nowMs >= this.quorumRoundStartMs + this.timing.electionTimeoutMsMin;
    if (quorumSilent && !this.bugs.noCheckQuorum) {
      // CheckQuorum: no majority acknowledged any round within an election timeout.
      this.becomeFollower(this.term, noMember);
      return;
    }
    this.startRound(true);
  }

  private startRound(sendHeartbeats: boolean): void {
    this.round += 1;
    this.roundStartsMs.set(this.round, this.nowMs);
    if (sendHeartbeats) {
      for (const [member, progress] of this.progress) {
        const commitIndex = Math.min(progress.match, this.log.commitIndex);
        this.send({ type: "heartbeat", to: member, commitIndex, round: this.round });
      }
    }
    this.updateQuorumRound();
  }

  private recordRoundAcknowledged(progress: Progress, round: number): void {
    if (round <= progress.acknowledgedRound) return;
    progress.acknowledgedRound = Math.min(round, this.round);
    this.updateQuorumRound();
  }

  /** The newest round a majority of voters acknowledged gives the lease and serves reads. */
  private updateQuorumRound(): void {
    const rounds = this.membership.voters.map((voter) =>
      voter === this.id ? this.round : (this.progress.get(voter)?.acknowledgedRound ?? 0),
    );
    const quorumRound = kthLargest(rounds, quorumSize(rounds.length));
    if (quorumRound <= this.quorumRound) return;
    const startMs = this.roundStartsMs.get(quorumRound);
    assert(startMs !== undefined, "acknowledged round without a start time");
    this.quorumRound = quorumRound;
    this.quorumRoundStartMs = startMs;
    if (!this.leaseForfeited) this.leaseExpiryMs = startMs + this.leaseMs;
    for (const round of this.roundStartsMs.keys()) {
      if (round < quorumRound) this.roundStartsMs.delete(round);
    }
    this.releaseReads();
  }

  private releaseReads(): void {
    if (this.pendingReads.length === 0) return;
    const waiting: PendingRead[] = [];
    for (const read of this.pendingReads) {
      if (read.round <= this.quorumRound) {
        this.readStates.push({ context: read.context, index: read.index });
      } else {
        waiting.push(read);
      }
    }
    this.pendingReads = waiting;
  }

  private maybeCommit(): boolean {
    const matches = this.membership.voters.map((voter) =>
      voter === this.id ? this.log.lastIndex : (this.progress.get(voter)?.match ?? 0),
    );
    const candidate = kthLargest(matches, quorumSize(matches.length));
    if (candidate <= this.log.commitIndex) return false;
    // Only entries of the leader's own term commit by counting (Raft paper, figure 8).
    if (!this.bugs.commitPreviousTermEntries && this.log.term(candidate) !== this.term) {
      return false;
    }
    this.log.commitTo(candidate);
    this.onLeaderCommit();
    return true;
  }

  private onLeaderCommit(): void {
    this.commitBroadcastPending = true;
    if (this.readsAwaitingCommit.length > 0 && this.log.term(this.log.commitIndex) === this.term) {
      for (const context of this.readsAwaitingCommit) {
        this.pendingReads.push({ context, index: this.log.commitIndex, round: this.round + 1 });
      }
      this.readsAwaitingCommit = [];
    }
    if (!isVoter(this.membership, this.id) && this.membershipIndex <= this.log.commitIndex) {
      // A leader demoted by a committed change steps down, and hands over to the most
      // caught-up voter at once, sparing the others an election timeout of refusal.
      const successor = this.mostCaughtUpVoter();
      if (successor !== noMember) this.sendTimeoutNow(successor);
      this.becomeFollower(this.term, noMember);
    }
  }

  private mostCaughtUpVoter(): MemberId {
    let best: MemberId = noMember;
    let bestMatch = -1;
    for (const voter of this.membership.voters) {
      const match = this.progress.get(voter)?.match ?? -1;
      if (match > bestMatch) {
        best = voter;
        bestMatch = match;
      }
    }
    return best;
  }

  /** Sends what is pending at the end of a batch of inputs: read rounds and appends. */
  private flushLeader(): void {
    if (this.role !== "leader") return;
    if (this.pendingReads.some((read) => read.round > this.round)) this.startRound(true);
    if (!this.broadcastPending && !this.commitBroadcastPending && this.hurried.size === 0) return;
    const allowEmpty = this.commitBroadcastPending && this.bugs.eagerCommitNotices === true;
    const news = this.broadcastPending || this.commitBroadcastPending;
    if (this.commitBroadcastPending) this.commitNoticePending = true;
    this.broadcastPending = false;
    this.commitBroadcastPending = false;
    for (const [member, progress] of this.progress) {
      if (this.hurried.has(member)) this.replicateTo(member, progress, true);
      else if (!this.lazyLearner(member)) this.replicateTo(member, progress, allowEmpty);
      else if (news) this.learnersPending = true;
    }
    this.hurried.clear();
  }

  /** Tells the voters a commit that no append has carried to them since it happened. */
  private sendCommitNotices(): void {
    if (!this.commitNoticePending) return;
    this.commitNoticePending = false;
    for (const [member, progress] of this.progress) {
      if (this.lazyLearner(member)) continue;
      if (progress.commitSent < Math.min(progress.match, this.log.commitIndex)) {
        this.replicateTo(member, progress, true);
      }
    }
  }

  private lazyLearner(member: MemberId): boolean {
    return !this.bugs.eagerLearners && this.membership.learners.includes(member);
  }

  /** Sends learners what waited for them since the last tick. */
  private replicateLearners(): void {
    if (!this.learnersPending) return;
    this.learnersPending = false;
    for (const [member, progress] of this.progress) {
      if (this.lazyLearner(member)) this.replicateTo(member, progress, true);
    }
  }

  /**
   * A learner waits on this leader (a write or a read it passed on is answered): it is sent
   * the log and the commit index now rather than at the next tick. Ignored unless leading.
   */
  hurry(member: MemberId): void {
    if (this.role === "leader" && this.progress.has(member)) this.hurried.add(member);
  }

  private replicateTo(member: MemberId, progress: Progress, allowEmpty: boolean): void {
    let sent = this.sendAppend(member, progress, allowEmpty);
    while (sent && progress.state === "replicate" && progress.next <= this.log.lastIndex) {
      sent = this.sendAppend(member, progress, false);
    }
  }

  /** Sends one append (or a snapshot); returns whether it carried entries. */
  private sendAppend(member: MemberId, progress: Progress, allowEmpty: boolean): boolean {
    if (progress.state === "snapshot") {
      const retryAtMs = progress.snapshotSentAtMs + this.timing.electionTimeoutMsMin;
      if (this.nowMs >= retryAtMs) this.sendSnapshot(member, progress);
      return false;
    }
    if (progress.state === "probe" && progress.probeSent) return false;
    if (progress.inflight.length >= this.flowControl.inflightMessagesMax) return false;
    const prevIndex = progress.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      assert(prevIndex < this.log.firstIndex, "a follower's next index is beyond the log");
      this.sendSnapshot(member, progress);
      return false;
    }
    const entries =
      progress.next <= this.log.lastIndex
        ? this.log.slice(
            progress.next,
            this.flowControl.appendEntriesMax,
            raftLimits.appendBytesMax,
          )
        : [];
    if (entries.length === 0 && !allowEmpty) return false;
    const commitIndex = this.log.commitIndex;
    progress.commitSent = commitIndex;
    this.send({
      type: "append",
      to: member,
      prevIndex,
      prevTerm,
      entries,
      commitIndex,
      round: this.round,
    });
    if (progress.state === "probe") {
      progress.probeSent = true;
      return false;
    }
    const last = entries.at(-1);
    if (last !== undefined) progress.sentEntries(last.index);
    return last !== undefined;
  }

  private sendSnapshot(member: MemberId, progress: Progress): void {
    const snapshot = this.log.snapshot;
    this.send({ type: "snapshot", to: member, snapshot, data: null, round: this.round });
    progress.becomeSnapshot(snapshot.index, this.nowMs);
  }

  private sendTimeoutNow(member: MemberId): void {
    this.send({ type: "timeoutNow", to: member });
  }

  private proposalRefusal(): Result<{ index: number; term: number }> | null {
    if (this.role !== "leader") return fail("E_NOT_LEADER", "this member is not the leader");
    if (this.transferTarget !== noMember) {
      return fail("E_NOT_LEADER", "leadership is being transferred");
    }
    if (this.log.lastIndex - this.log.commitIndex >= raftLimits.uncommittedEntriesMax) {
      return fail("E_NOT_READY", "too many entries wait for commit");
    }
    return null;
  }

  private appendAsLeader(kind: EntryKind, data: Uint8Array): { index: number; term: number } {
    const entry: Entry = { index: this.log.lastIndex + 1, term: this.term, kind, data };
    this.appendToLog([entry]);
    this.broadcastPending = true;
    // A change of membership reaches every member at once: one demoted or added learns it.
    if (kind === "membership") for (const [member] of this.progress) this.hurried.add(member);
    this.maybeCommit();
    return { index: entry.index, term: entry.term };
  }

  // ---- Log and membership -----------------------------------------------------------------

  private appendToLog(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const truncatesMembership = first.index <= this.membershipIndex;
    this.log.append(entries);
    if (truncatesMembership) this.refreshMembershipFromLog();
    for (const entry of entries) {
      assert(
        entry.kind === "noop" || entry.kind === "command" || entry.kind === "membership",
        `unknown entry kind at ${entry.index}`,
      );
      if (entry.kind === "membership")
        this.setMembership(decodeMembership(entry.data), entry.index);
    }
  }

  /** A configuration takes effect when appended, not when committed. */
  private setMembership(membership: Membership, index: number): void {
    this.membership = membership;
    this.membershipIndex = index;
    if (this.role !== "leader") return;
    for (const member of allMembers(membership)) {
      if (member !== this.id && !this.progress.has(member)) {
        this.progress.set(member, new Progress(this.log.lastIndex + 1, this.nowMs));
      }
    }
    for (const member of [...this.progress.keys()]) {
      if (!allMembers(membership).includes(member)) this.progress.delete(member);
    }
    if (this.transferTarget !== noMember && !isVoter(membership, this.transferTarget)) {
      this.transferTarget = noMember;
    }
  }

  private refreshMembershipFromLog(): void {
    const found = this.lastMembershipEntry(this.log.lastIndex);
    if (found === null) {
      this.setMembership(this.log.snapshot.membership, this.log.snapshot.index);
    } else {
      this.setMembership(decodeMembership(found.data), found.index);
    }
  }

  private membershipAt(index: number): Membership {
    const found = this.lastMembershipEntry(index);
    return found === null ? this.log.snapshot.membership : decodeMembership(found.data);
  }

  private lastMembershipEntry(through: number): Entry | null {
    const entries = this.log.entriesBetween(this.log.firstIndex, through);
    for (let position = entries.length - 1; position >= 0; position--) {
      const entry = entries[position];
      if (entry?.kind === "membership") return entry;
    }
    return null;
  }

  // ---- Helpers ------------------------------------------------------------------------------

  /**
   * Sends a message built by the caller as a fresh object literal; sender and term are filled
   * in place, which is much cheaper than copying (this is the core's hottest path).
   */
  private send(fields: DistributiveOmit<Message, "from" | "term">, term = this.term): void {
    const message = fields as unknown as { from: MemberId; term: number };
    message.from = this.id;
    message.term = term;
    this.messages.push(message as Message);
  }

  private applyThrough(): number {
    if (this.bugs.applyBeforeCommit) return this.log.lastIndex;
    return this.log.commitIndex;
  }

  private hardStateToPersist(): HardState {
    let votedFor = this.votedFor;
    if (this.bugs.skipPersistVote) {
      const persisted = this.emittedHardState;
      votedFor = persisted.term === this.term ? persisted.votedFor : noMember;
    }
    return { term: this.term, votedFor, commitIndex: this.log.commitIndex };
  }

  private observeTime(nowMs: number): void {
    this.assertNoReadyOutstanding();
    assert(nowMs >= this.nowMs, "the monotonic clock went back");
    this.nowMs = nowMs;
  }

  private assertNoReadyOutstanding(): void {
    assert(this.readyOutstanding === null, "input while a ready batch awaits advance()");
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * A leader's appends and heartbeats need nothing of its own disk (Raft thesis §10.2.1: the
 * leader counts itself toward a commit only once its own flush is done); every other message
 * (an acknowledgement, a vote, a snapshot) depends on what this batch persists.
 */
function splitLeaderAppends(messages: readonly Message[]): [Message[], Message[]] {
  const now: Message[] = [];
  const afterPersist: Message[] = [];
  for (const message of messages) {
    (message.type === "append" || message.type === "heartbeat" ? now : afterPersist).push(message);
  }
  return [now, afterPersist];
}

function sameHardState(left: HardState, right: HardState): boolean {
  return (
    left.term === right.term &&
    left.votedFor === right.votedFor &&
    left.commitIndex === right.commitIndex
  );
}

/** The k-th largest value (1-based): with k a quorum, the value a majority has reached. */
function kthLargest(values: readonly number[], k: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((left, right) => right - left);
  return sorted[k - 1] ?? 0;
}

function assertTimingValid(timing: RaftTiming): void {
  assert(timing.heartbeatMs > 0, "heartbeat interval must be positive");
  assert(timing.heartbeatMs < timing.electionTimeoutMsMin, "heartbeat slower than elections");
  assert(timing.electionTimeoutMsMin < timing.electionTimeoutMsMax, "empty election window");
  assert(timing.clockDriftMax >= 0 && timing.clockDriftMax < 1, "clock drift out of range");
}

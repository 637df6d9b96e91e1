// The cluster room's twin of the Raft-replicated log: a real state machine over an in-memory
// libSQL database, the real lease watch, and a membership and followers a test sets. Proposals
// apply at once; `proposeHere` refuses with E_NOT_LEADER unless the twin holds the lease, as the
// real log does. Every proposal and membership change is recorded with when it was made and
// whether the twin held the lease then.
import { openDatabase } from "../adapters/libsql.ts";
import type { LeadershipChange, MemberLog } from "../cluster/ports.ts";
import { fail, ok, type Result } from "../core/errors.ts";
import type { Timers } from "../core/timers.ts";
import { LeaseWatch } from "../raft/host/lease-watch.ts";
import type { FollowerProgress, RaftStatus } from "../raft/raft-core.ts";
import type { Membership, MembershipChange } from "../raft/types.ts";
import type { AppliedEntry } from "../state/command-log.ts";
import type { Command } from "../state/commands.ts";
import { type ApplyResult, StateMachine } from "../state/machine.ts";
import type { StateView } from "../state/views.ts";

export interface TwinRecord {
  what: string;
  /** When it was asked (the timers' monotonic ms). */
  at: number;
  /** Whether the twin held the lease when it was asked. */
  leading: boolean;
}

export class MemberLogTwin implements MemberLog {
  readonly records: TwinRecord[] = [];
  membership: Membership;
  /** What `followers()` reports while this member is the leader. */
  followerList: FollowerProgress[] = [];
  private readonly db = openDatabase(":memory:", "NORMAL");
  private readonly machine = new StateMachine(this.db);
  private readonly lease: LeaseWatch;
  private readonly listeners = new Set<(entry: AppliedEntry) => void>();
  private term = 0;
  private role: RaftStatus["role"] = "follower";
  private leaderId = "";

  constructor(
    readonly id: string,
    private readonly timers: Timers,
  ) {
    this.membership = { voters: [id], learners: [] };
    this.lease = new LeaseWatch((notice) => timers.soon(notice));
  }

  /** This member wins `term` and holds the lease (the host sees it at its next look). */
  lead(term: number): void {
    this.term = term;
    this.role = "leader";
    this.leaderId = this.id;
    this.lease.observe(true, term);
  }

  /**
   * The lease runs out: the member stays the leader (as a real one does until it steps down, with
   * its followers' progress), or steps down to follow `leader`.
   */
  loseLease(leader = ""): void {
    if (leader !== "") {
      this.role = "follower";
      this.leaderId = leader;
    }
    this.lease.observe(false, this.term);
  }

  /** Applies a command as if another member had proposed it (nothing is recorded). */
  applyCommitted(command: Command): ApplyResult {
    return this.apply(command);
  }

  /** The records of one kind of work, as `what` names them (a command type, or "membership"). */
  recorded(what: string): TwinRecord[] {
    return this.records.filter((record) => record.what === what);
  }

  propose(command: Command): Promise<ApplyResult> {
    this.record(command.type);
    return Promise.resolve(this.apply(command));
  }

  proposeHere(command: Command): Promise<ApplyResult> {
    this.record(command.type);
    if (!this.lease.leading) return Promise.resolve(fail("E_NOT_LEADER", "not the leader"));
    return Promise.resolve(this.apply(command));
  }

  changeMembership(change: MembershipChange): Promise<Result<void>> {
    this.record("membership");
    if (!this.lease.leading) return Promise.resolve(fail("E_NOT_LEADER", "not the leader"));
    const { voters, learners } = this.membership;
    const member = change.member;
    if (change.type === "promote") {
      this.membership = {
        voters: [...voters, member],
        learners: learners.filter((l) => l !== member),
      };
    }
    return Promise.resolve(ok(undefined));
  }

  /** Recorded as "transfer <target>"; the target then leads and this member follows it. */
  transferLeadership(target: string): Promise<Result<void>> {
    this.record(`transfer ${target}`);
    if (!this.lease.leading) return Promise.resolve(fail("E_NOT_LEADER", "not the leader"));
    this.loseLease(target);
    return Promise.resolve(ok(undefined));
  }

  readAt(): Promise<Result<void>> {
    return Promise.resolve(ok(undefined));
  }

  view(): StateView {
    return this.machine.view;
  }

  status(): RaftStatus {
    const index = this.machine.appliedIndex();
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      votedFor: "",
      leader: this.leaderId,
      commitIndex: index,
      appliedIndex: index,
      firstIndex: 1,
      lastIndex: index,
      lastTerm: this.term,
      membership: this.membership,
      leaseExpiryMs: 0,
      transferTarget: "",
    };
  }

  /** As the core's: a leader's, lease or not; a follower has none. */
  followers(): FollowerProgress[] {
    return this.role === "leader" ? this.followerList : [];
  }

  monotonicNow(): number {
    return this.timers.monotonic();
  }

  leaseRemainingMs(): number {
    return this.lease.leading ? 1 : 0;
  }

  snapshotIndex(): number {
    return 0;
  }

  isLeader(): boolean {
    return this.lease.leading;
  }

  onApplied(listener: (entry: AppliedEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onLeadership(listener: (change: LeadershipChange) => void): () => void {
    return this.lease.onChange(listener);
  }

  close(): void {
    this.db.close();
  }

  private record(what: string): void {
    this.records.push({ what, at: this.timers.monotonic(), leading: this.lease.leading });
  }

  private apply(command: Command): ApplyResult {
    const index = this.machine.appliedIndex() + 1;
    const result = this.machine.apply(command, index);
    for (const listener of this.listeners) listener({ index, command, result });
    return result;
  }
}

// Client sessions over the pipeline: proposals (here, or forwarded to the leader with a request
// id, held through an election), reads at each consistency level, membership changes and
// leadership transfers. Every wait ends on an event (an entry applied, a read confirmed) or on
// its timeout; nothing on the write path polls.
import { fail, type Result, ShoalError } from "../../core/errors.ts";
import type { Consistency } from "../../core/types.ts";
import type { MembershipChange } from "../types.ts";
import type { RaftPipeline } from "./pipeline.ts";
import type { HostBugs, HostDiskSpace, HostStateMachine, HostTimers, LeaderCall } from "./ports.ts";

/** A forwarded proposal's answer carries where the leader applied it. */
export type ForwardedAnswer = Result<unknown> & { appliedIndex: number };

export interface SessionOptions<C> {
  readonly pipeline: RaftPipeline;
  readonly machine: HostStateMachine;
  readonly timers: HostTimers;
  /** A command and the id of the request that carries it (null unless forwarded) as log data. */
  readonly encode: (command: C, requestId: string | null) => Uint8Array;
  /** A fresh request id for a forwarded write. */
  readonly newRequestId: () => string;
  /** Absent on a lone node. */
  readonly leaderCall?: LeaderCall | undefined;
  readonly tickMs: number;
  readonly proposeTimeoutMs: number;
  readonly leaderHoldMs: number;
  readonly forwardTimeoutMs: number;
  /** Free space on this node's disk; absent, it never runs short (the simulator). */
  readonly space?: HostDiskSpace | undefined;
  /**
   * Commands a leader takes even with free space below the reserve: the node's own report of
   * its disk, as etcd lets its NOSPACE alarm through (tiny, and the reserve is kept for it).
   */
  readonly mayUseReserve?: ((command: C) => boolean) | undefined;
  readonly bugs?: HostBugs | undefined;
}

/** The leader did not answer (refused, reset, timed out) or no longer leads: ask the next. */
function undelivered(error: unknown): boolean {
  return (
    error instanceof ShoalError && (error.code === "E_NOT_READY" || error.code === "E_NOT_LEADER")
  );
}

/** The end of a hold: whether the write may have been applied decides what the caller hears. */
function heldTooLong(maybeDelivered: boolean): Result<unknown> {
  if (maybeDelivered) {
    return fail(
      "E_NOT_READY",
      "no leader answered in time; the write may still be applied: read before repeating it",
    );
  }
  return fail("E_NO_QUORUM", "no leader is known: this node may be cut off from the quorum");
}

function failureOf(error: unknown): Result<never> {
  if (error instanceof ShoalError) return fail(error.code, error.message);
  return fail("E_NOT_READY", `the leader did not answer: ${(error as Error).message}`);
}

const lostToNewLeader = () => fail("E_NOT_LEADER", "leadership changed before the write committed");

/** Runs `callback` after `ms` unless the returned function is called first. */
export type ScheduleTimer = (callback: () => void, ms: number) => () => void;

interface Waiter {
  term: number;
  resolve: (result: Result<unknown>) => void;
  cancelTimer: () => void;
}

/** The proposals waiting for their entry to be applied, by log index. */
export class ProposalWaiters {
  private readonly waiters = new Map<number, Waiter>();

  constructor(
    private readonly timeoutMs: number,
    private readonly schedule: ScheduleTimer,
    private readonly bugs: HostBugs = {},
    /** Whether a full disk holds the log: a proposal then waits for space, not for a quorum. */
    private readonly diskFull: () => boolean = () => false,
  ) {}

  /**
   * Resolves once the entry proposed at `index` in `term` is applied, or after the timeout. A
   * waiter already at `index` proposed an entry this node's log has since replaced (an earlier
   * term's): it is answered at once.
   */
  wait(index: number, term: number): Promise<Result<unknown>> {
    const replaced = this.waiters.get(index);
    if (replaced) this.remove(index, replaced, lostToNewLeader());
    return new Promise<Result<unknown>>((resolve) => {
      const waiter: Waiter = { term, resolve, cancelTimer: () => {} };
      waiter.cancelTimer = this.schedule(() => {
        // Only its own waiter: a newer one at the same index waits for its own entry.
        if (this.waiters.get(index) !== waiter) return;
        this.waiters.delete(index);
        resolve(this.timedOut());
      }, this.timeoutMs);
      this.waiters.set(index, waiter);
    });
  }

  /**
   * The fate of a proposal not applied in time is unknown: it may still commit, also when the
   * disk that holds it back was full (E_NO_SPACE would say it was refused, which it was not).
   */
  private timedOut(): Result<unknown> {
    if (this.diskFull()) {
      return fail(
        this.bugs.refuseHeldProposals ? "E_NO_SPACE" : "E_NOT_READY",
        `not committed within ${this.timeoutMs} ms: this node's disk is full; the write may still be applied once space is freed, read before repeating it`,
      );
    }
    return fail("E_NO_QUORUM", `not committed within ${this.timeoutMs} ms; it may still be`);
  }

  /** A waiter whose index now holds an entry of another term lost its proposal to a new leader. */
  settle(entry: { index: number; term: number }, result: Result<unknown>): void {
    const waiter = this.waiters.get(entry.index);
    if (!waiter) return;
    const own = waiter.term === entry.term || this.bugs.answerAnyTerm === true;
    this.remove(entry.index, waiter, own ? result : lostToNewLeader());
  }

  private remove(index: number, waiter: Waiter, result: Result<unknown>): void {
    this.waiters.delete(index);
    waiter.cancelTimer();
    waiter.resolve(result);
  }

  /** Answers every waiter with `result` (the host closes). */
  settleAll(result: Result<unknown>): void {
    for (const waiter of this.waiters.values()) {
      waiter.cancelTimer();
      waiter.resolve(result);
    }
    this.waiters.clear();
  }
}

/** Waits until the state machine has applied an index; answered on apply, not by polling. */
class AppliedWaiters {
  private waiters: { index: number; resolve: (applied: boolean) => void; cancel: () => void }[] =
    [];

  wait(index: number, timers: HostTimers, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const waiter = { index, resolve, cancel: () => {} };
      waiter.cancel = timers.after(timeoutMs, () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      });
      this.waiters.push(waiter);
    });
  }

  reached(applied: number): void {
    if (!this.waiters.some((w) => w.index <= applied)) return;
    const [done, left] = partition(this.waiters, (w) => w.index <= applied);
    this.waiters = left;
    for (const waiter of done) {
      waiter.cancel();
      waiter.resolve(true);
    }
  }

  cancelAll(): void {
    for (const waiter of this.waiters.splice(0)) {
      waiter.cancel();
      waiter.resolve(false);
    }
  }
}

function partition<T>(items: readonly T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}

export class ClientSessions<C> {
  private readonly proposals: ProposalWaiters;
  private readonly applied = new AppliedWaiters();
  /** Pending ReadIndex reads; called with null when the host closes first. */
  private readonly reads = new Map<string, (index: number | null) => void>();
  private readSeq = 0;
  private closed = false;

  constructor(private readonly options: SessionOptions<C>) {
    this.proposals = new ProposalWaiters(
      options.proposeTimeoutMs,
      (callback, ms) => options.timers.after(ms, callback),
      options.bugs,
      () => options.pipeline.diskFull,
    );
    options.pipeline.onApplied((entries, results) => {
      entries.forEach((entry, i) => {
        const result = results[i] ?? null;
        this.proposals.settle(
          entry,
          result ?? fail("E_NOT_LEADER", "the entry at that index was not a command"),
        );
      });
      this.applied.reached(options.machine.appliedIndex());
    });
    options.pipeline.onReadState((read) => this.reads.get(read.context)?.(read.index));
  }

  private get core() {
    return this.options.pipeline.core;
  }

  private now(): number {
    return this.options.timers.monotonic();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.options.timers.after(ms, resolve));
  }

  isLeader(): boolean {
    return this.core.leaseValid(this.now());
  }

  /**
   * Proposes here when this node leads, else forwards to the leader (one hop). During an
   * election the write is held, as Consul holds RPCs, until a leader is known or `leaderHoldMs`
   * passed: a write through any node during a failover waits a moment instead of failing. A
   * forwarded write carries a request id, so resending it after a lost answer is safe: the state
   * machine answers a second copy with the first one's result.
   */
  async propose(command: C): Promise<Result<unknown>> {
    const { leaderCall, bugs } = this.options;
    if (!leaderCall) return this.proposeHere(command);
    const deadline = this.now() + this.options.leaderHoldMs;
    let request = this.options.newRequestId();
    // Once a copy may have reached a leader, every later copy carries the same request id, also
    // the one this node proposes itself should it win the election.
    let maybeDelivered = false;
    // A leader that answered it does not lead is asked again only in a later term.
    let refusedBy = { leader: "", term: -1 };
    // A copy whose answer never came (a reset, a timeout) may be applied: a later copy's
    // refusal then says nothing about the write, and the caller must not hear it was refused.
    let maybeApplied = false;
    const unlessApplied = (result: Result<unknown>): Result<unknown> => {
      const refused = !result.ok && result.code === "E_NOT_LEADER";
      return refused && maybeApplied && !bugs?.refuseAfterUnknownCopy ? heldTooLong(true) : result;
    };
    for (;;) {
      if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
      if (bugs?.freshRequestIdOnResend && maybeDelivered) request = this.options.newRequestId();
      const { role, leader, term } = this.core.status();
      if (role === "leader") {
        return unlessApplied(await this.proposeHere(command, maybeDelivered ? request : null));
      }
      if (leader && !(leader === refusedBy.leader && term === refusedBy.term)) {
        maybeDelivered = true;
        try {
          const answer = await leaderCall<ForwardedAnswer>(
            leader,
            "propose",
            { request, command },
            this.options.forwardTimeoutMs,
          );
          const stale = !answer.ok && answer.code === "E_NOT_LEADER";
          if (!stale || this.now() > deadline)
            return unlessApplied(await this.answeredByLeader(answer));
          refusedBy = { leader, term };
        } catch (error) {
          if (!undelivered(error)) return failureOf(error);
          maybeApplied = true;
        }
      }
      if (this.now() > deadline) return heldTooLong(maybeDelivered);
      await this.sleep(this.options.tickMs * 2);
    }
  }

  private async answeredByLeader(answer: ForwardedAnswer): Promise<Result<unknown>> {
    // The caller reads its answer from this node's replica next: wait until it holds the write.
    if (answer.ok && !(await this.waitApplied(answer.appliedIndex)).ok) {
      return fail(
        "E_NOT_READY",
        `the write is committed (index ${answer.appliedIndex}) but this node has not applied it yet; read it again shortly, do not repeat it`,
      );
    }
    const { appliedIndex: _, ...result } = answer;
    return result as Result<unknown>;
  }

  /** The leader's side of a forwarded proposal: the result and the index it is applied at. */
  async proposeForPeer(command: C, requestId: string, from?: string): Promise<ForwardedAnswer> {
    const result = await this.proposeHere(command, requestId);
    if (from !== undefined) this.hurry(from);
    return { ...result, appliedIndex: this.options.machine.appliedIndex() };
  }

  /** The member `from` waits to apply what this leader answered: send it the log now. */
  private hurry(from: string): void {
    const { pipeline } = this.options;
    pipeline.withCore(() => {
      this.core.hurry(from);
      pipeline.drainSoon();
    });
  }

  /**
   * Proposes on this member only: E_NOT_LEADER unless it leads, E_NO_SPACE while its disk is
   * short of space (its own proposals and those forwarded to it alike).
   */
  async proposeHere(command: C, requestId: string | null = null): Promise<Result<unknown>> {
    const refused = this.spaceRefusal(command);
    if (refused !== null) return refused;
    const data = this.options.encode(command, requestId);
    const { pipeline } = this.options;
    // Proposing and waiting happen in one turn: the answer cannot come before the waiter.
    return await pipeline.onCore(() => {
      const proposed = this.core.propose(data);
      if (!proposed.ok) return Promise.resolve<Result<unknown>>(proposed);
      pipeline.drainSoon();
      return this.proposals.wait(proposed.value.index, proposed.value.term);
    });
  }

  /**
   * A leader whose disk has less free space than the reserve refuses proposals before the disk
   * fills: a refused write is certain not to apply, while one the disk cannot take holds the log.
   */
  private spaceRefusal(command: C): Result<never> | null {
    const { space, mayUseReserve } = this.options;
    if (space === undefined || this.core.status().role !== "leader") return null;
    if (!space.short() || mayUseReserve?.(command)) return null;
    return fail(
      "E_NO_SPACE",
      `free space on the leader's disk is below its reserve of ${space.reserveBytes} bytes: writes are refused until space is freed`,
    );
  }

  /**
   * Waits until this node's replica is fresh enough for a read: `local` as it is; `leader` holds
   * everything the leader committed while its lease held (no quorum round trip); `linearizable`
   * everything committed when the read was asked, confirmed by a quorum (ReadIndex).
   */
  async readAt(consistency: Consistency): Promise<Result<void>> {
    if (consistency === "local") return { ok: true, value: undefined };
    const { role, leader } = this.core.status();
    if (role === "leader") {
      // Without a valid lease (a new leader before its first commit) ReadIndex still answers.
      if (consistency === "linearizable" || !this.isLeader()) return this.readBarrier();
      // Under the lease the commit index holds every acknowledged write, but this replica may
      // not have applied all of it yet (a new leader commits its predecessor's entries at once).
      return this.waitApplied(this.core.status().commitIndex);
    }
    const { leaderCall } = this.options;
    if (!leader || !leaderCall) return fail("E_NO_QUORUM", "no leader is known");
    const kind = consistency === "leader" ? "lease-read" : "read-index";
    try {
      const { index } = await leaderCall<{ index: number }>(leader, kind, {});
      return this.waitApplied(index);
    } catch (error) {
      return failureOf(error);
    }
  }

  /** The leader's side of a follower's read: its commit index, under the lease or ReadIndex. */
  async readIndexForPeer(
    kind: "lease-read" | "read-index",
    from?: string,
  ): Promise<Result<{ index: number }>> {
    if (kind === "read-index") {
      const barrier = await this.readBarrier();
      if (!barrier.ok) return barrier;
    } else if (!this.isLeader()) {
      return fail("E_NOT_LEADER", "this member does not hold the lease");
    }
    if (from !== undefined) this.hurry(from);
    return { ok: true, value: { index: this.core.status().commitIndex } };
  }

  /** Proposes one membership change (one at a time) and waits until this node applied it. */
  async changeMembership(change: MembershipChange): Promise<Result<void>> {
    const { pipeline } = this.options;
    const proposed = await pipeline.onCore(() => {
      const result = this.core.proposeMembership(change);
      if (result.ok) pipeline.drain();
      return result;
    });
    if (!proposed.ok) return proposed;
    const { index, term } = proposed.value;
    const applied = await this.waitApplied(index);
    if (!applied.ok) return applied;
    // A new leader may have put another entry at that index: then the change was lost.
    const now = this.core.termAt(index);
    if (now !== undefined && now !== term) {
      return fail("E_NOT_LEADER", "leadership changed before the membership change committed");
    }
    return applied;
  }

  /** Resolves once this node has applied everything committed when the read was asked. */
  async readBarrier(): Promise<Result<void>> {
    const context = `read-${++this.readSeq}`;
    const answered = new Promise<number | null>((resolve) => {
      const cancel = this.options.timers.after(this.options.proposeTimeoutMs, () => {
        this.reads.delete(context);
        resolve(null);
      });
      this.reads.set(context, (readIndex) => {
        this.reads.delete(context);
        cancel();
        resolve(readIndex);
      });
    });
    const { pipeline } = this.options;
    // The reader is registered before the core is asked: a lone voter may answer at once.
    const asked = await pipeline.onCore(() => {
      const result = this.core.readIndex(context);
      if (result.ok) pipeline.drain();
      else this.reads.get(context)?.(null);
      return result;
    });
    if (!asked.ok) return asked;
    const index = await answered;
    if (index === null) return fail("E_NO_QUORUM", "no quorum confirmed the read");
    return this.waitApplied(index);
  }

  /** Resolves once this node's replica has applied `index`. */
  async waitApplied(index: number): Promise<Result<void>> {
    if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
    if (this.options.machine.appliedIndex() >= index) return { ok: true, value: undefined };
    const reached = await this.applied.wait(
      index,
      this.options.timers,
      this.options.proposeTimeoutMs,
    );
    if (reached) return { ok: true, value: undefined };
    if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
    return fail("E_NO_QUORUM", "apply fell behind");
  }

  /** Hands leadership to `target`; resolves once another member leads, or fails after `waitMs`. */
  async transferLeadership(target: string, waitMs: number): Promise<Result<void>> {
    const { pipeline } = this.options;
    const asked = await pipeline.onCore(() => {
      const result = this.core.transferLeadership(target);
      pipeline.drain();
      return result;
    });
    if (!asked.ok) return asked;
    const deadline = this.now() + waitMs;
    while (this.now() < deadline) {
      const { role, leader } = this.core.status();
      if (role !== "leader" && leader !== "" && leader !== this.core.status().id) {
        return { ok: true, value: undefined };
      }
      await this.sleep(this.options.tickMs);
    }
    return fail("E_NOT_READY", `no other member took over within ${waitMs} ms`);
  }

  /** Answers everything that waits: the host is closing. */
  close(): void {
    this.closed = true;
    this.proposals.settleAll(fail("E_NOT_READY", "the node is shutting down"));
    this.applied.cancelAll();
    for (const cancel of [...this.reads.values()]) cancel(null);
  }
}

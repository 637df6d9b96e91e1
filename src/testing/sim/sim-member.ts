// One simulated member: the real Raft host (the ready/flush pipeline and the client sessions of
// src/raft/host, the same code a node runs) over a simulated disk, timers on a drifting clock,
// the simulated network, pauses, and crashes that lose whatever was not flushed.
import { assert } from "../../core/assert.ts";
import { type Result, ShoalError } from "../../core/errors.ts";
import type { Consistency } from "../../core/types.ts";
import { RaftPipeline } from "../../raft/host/pipeline.ts";
import type { HostBugs, HostLogDisk, HostTimers, LeaderCall } from "../../raft/host/ports.ts";
import { ClientSessions } from "../../raft/host/sessions.ts";
import type { FlowControl, RaftCore, RaftTiming } from "../../raft/raft-core.ts";
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { Entry, MemberId, Membership, Message, RaftBugs } from "../../raft/types.ts";
import type { SafetyChecker } from "./checkers.ts";
import type { EventQueue } from "./event-queue.ts";
import { encodeProposal, type KvCommand, type KvMachine, type KvResult } from "./kv-machine.ts";
import { type DiskTiming, type Fullness, SimDisk, SimImages, SimStateMachine } from "./sim-disk.ts";
import type { TraceHash } from "./trace-hash.ts";

/**
 * A fenced write reads a key under the lease, then proposes a write that carries the version it
 * read: the state machine refuses it if the key changed in between.
 */
export type ClientKind = "write" | "cas" | "readIndex" | "leaseRead" | "fencedWrite";

export interface ClientOperation {
  readonly id: number;
  readonly key: string;
  readonly kind: ClientKind;
  readonly value: string | null;
  /** cas: the value it expects; fencedWrite: the value it read under the lease. */
  expected: string | null;
  readonly callMs: number;
  returnMs: number;
  status: "pending" | "ok" | "failed" | "unknown";
  ok: boolean | null;
  readValue: string | null;
  /** For acknowledged writes: the log index they were applied at. */
  index: number;
}

/** The host's own timings in the simulator (a node's are in core/limits.ts). */
export const simHostTiming = {
  tickMs: 10,
  proposeTimeoutMs: 1500,
  leaderHoldMs: 1000,
  forwardTimeoutMs: 1800,
  waitingMax: 1000,
  diskFullRetryMs: 200,
} as const;

export interface MemberEnvironment {
  readonly queue: EventQueue;
  readonly checker: SafetyChecker;
  readonly trace: TraceHash;
  readonly random: SeededRandom;
  readonly timing: RaftTiming;
  readonly flowControl: FlowControl;
  readonly bugs: RaftBugs;
  readonly hostBugs: HostBugs;
  /** Whether the state machine checks fenced writes' versions (false only in tests). */
  readonly fencing: boolean;
  /**
   * Probability that one flush is cut short by a crash (0 outside the fault phase); `compacting`
   * when the batch records the member's own compaction, whose image is already written.
   */
  crashChance(member: SimMember, compacting: boolean): number;
  /** Probability that a crash is a power loss, which also loses the state's unsynced writes. */
  readonly powerLossChance: number;
  disk(): DiskTiming;
  /** Entries applied past the last snapshot before the member compacts (0: never). */
  readonly compactEvery: number;
  /** How often a peer's messages are answered in its own request rather than in new ones. */
  readonly replyInRequestChance: number;
  send(message: Message): void;
  /** One hop to the leader's peer route, over the simulated network. */
  call(
    from: MemberId,
    to: MemberId,
    kind: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<unknown>;
  crashed(member: SimMember): void;
  /** A member will crash in or right after a flush (a power cut may hit others too). */
  crashingInFlush(member: SimMember): void;
  becameLeader(member: SimMember): void;
  applied(member: SimMember, entry: Entry, result: KvResult | null): void;
  complete(operation: ClientOperation, outcome: "ok" | "failed" | "unknown"): void;
  /** A fenced write read its key: its command goes on to be proposed (perhaps much later). */
  forwardFenced(operation: ClientOperation, version: number): void;
  /** Async work (a client's call, a peer's route) started (+1) or settled (-1). */
  pending(delta: number): void;
  /** An error thrown in async work (a violation, an assertion): it ends the run. */
  asyncError(error: unknown): void;
  /** The member's full disk held its log (it waits and tries again). */
  logHeld(member: SimMember): void;
  /** A client's write was refused with E_NO_SPACE. */
  refusedNoSpace(): void;
}

type Crash = "duringFlush" | "afterFlush" | "afterFinish";

/**
 * Codes whose failure says the write was not applied (and will not be): this member does not
 * lead, the entry at the proposal's index is another term's, or its disk is full. Timeouts (E_NO_QUORUM) and
 * leaders that did not answer (E_NOT_READY) leave the outcome unknown.
 */
const refusedCodes = new Set(["E_NOT_LEADER", "E_CONFLICT", "E_NO_SPACE"]);

export class SimMember {
  pipeline: RaftPipeline | null = null;
  private sessions: ClientSessions<KvCommand> | null = null;
  readonly disk: SimDisk;
  /** Runs once right after the next start (an aimed fault waits for the restart). */
  onNextStart: (() => void) | null = null;
  /** Whether the next crash is a power loss (drawn when null). */
  nextCrashPowerLoss: boolean | null = null;
  private readonly state: SimStateMachine;
  private readonly images: SimImages;
  /** The member's disk is full while set (the simulation fills and empties it). */
  readonly fullness: Fullness = { full: false };
  pausedUntilMs = 0;
  /** Work that arrived while the process was paused, run when it resumes. */
  private deferred: (() => void)[] = [];
  incarnation = 0;
  private leaderTerm = 0;
  /** Peers' calls this process is answering: a crash resets their connections. */
  private serving: (() => void)[] = [];

  constructor(
    readonly id: MemberId,
    private readonly environment: MemberEnvironment,
    readonly clockOffsetMs: number,
    readonly clockDrift: number,
    /** The cluster's first membership for founding members, empty for members who join later. */
    private readonly bootstrap: Membership,
  ) {
    this.state = new SimStateMachine(
      environment.fencing,
      (entry, result) => environment.applied(this, entry, result),
      this.fullness,
    );
    this.images = new SimImages(this.state, environment.hostBugs.anyImage === true, this.fullness);
    this.disk = new SimDisk(
      environment.queue,
      environment.random.fork(),
      () => environment.disk(),
      environment.hostBugs.skipSyncAtOpen === true,
      this.fullness,
    );
  }

  get core(): RaftCore | null {
    return this.pipeline?.core ?? null;
  }

  get machine(): KvMachine {
    return this.state.kv;
  }

  localNow(realMs = this.environment.queue.nowMs): number {
    return this.clockOffsetMs + realMs * (1 + this.clockDrift);
  }

  get running(): boolean {
    return this.pipeline !== null;
  }

  get paused(): boolean {
    return this.environment.queue.nowMs < this.pausedUntilMs;
  }

  start(): void {
    assert(this.pipeline === null, "starting a running member");
    this.incarnation++;
    const environment = this.environment;
    const state = this.disk.load();
    const recorded = state.snapshot?.index ?? 0;
    this.images.settle(recorded);
    if (state.snapshot && this.state.appliedIndex() < recorded) {
      this.state.restore(this.images.restorable(recorded));
    }
    this.images.keepOnly(recorded);
    const timers = this.timers(this.incarnation);
    const pipeline = new RaftPipeline({
      core: {
        id: this.id,
        bootstrap: this.bootstrap,
        random: environment.random.fork(),
        timing: environment.timing,
        flowControl: environment.flowControl,
        bugs: environment.bugs,
      },
      state,
      disk: this.crashingDisk(),
      images: this.images,
      machine: this.state,
      network: { send: (messages) => this.sendAll(messages) },
      timers,
      tickMs: simHostTiming.tickMs,
      waitingMax: simHostTiming.waitingMax,
      snapshotEntries: environment.compactEvery,
      observer: {
        sent: (message) => this.beforeSend(message),
        stepped: () => this.afterStep(),
        warn: (what) => {
          if (what.startsWith("the disk is full")) environment.logHeld(this);
        },
      },
      bugs: environment.hostBugs,
      diskFullRetryMs: simHostTiming.diskFullRetryMs,
      fatal: (error) => {
        throw error;
      },
    });
    this.pipeline = pipeline;
    this.sessions = new ClientSessions<KvCommand>({
      pipeline,
      machine: this.state,
      timers,
      encode: encodeProposal,
      newRequestId: () => `r${this.id}${environment.random.nextInt(1_000_000_000)}`,
      leaderCall: this.leaderCall(),
      tickMs: simHostTiming.tickMs,
      proposeTimeoutMs: simHostTiming.proposeTimeoutMs,
      leaderHoldMs: simHostTiming.leaderHoldMs,
      forwardTimeoutMs: simHostTiming.forwardTimeoutMs,
      bugs: environment.hostBugs,
    });
    environment.checker.onRestart(this.id);
    environment.trace.add(`start ${this.id} ${this.incarnation}`);
    this.guarded(this.incarnation, () => pipeline.start());
    const started = this.onNextStart;
    this.onNextStart = null;
    started?.();
  }

  /** The process dies; with a power loss (drawn unless given), the cache goes with it. */
  crash(powerLoss?: boolean): void {
    if (this.pipeline === null) return;
    // Peers' calls under way see their connection reset.
    for (const reset of this.serving.splice(0)) reset();
    this.pipeline.close();
    this.sessions?.close();
    this.pipeline = null;
    this.sessions = null;
    this.deferred = [];
    this.pausedUntilMs = 0;
    const lost =
      powerLoss ??
      this.nextCrashPowerLoss ??
      this.environment.random.chance(this.environment.powerLossChance);
    this.nextCrashPowerLoss = null;
    this.disk.crash(lost);
    if (lost) {
      const recorded = this.disk.durable.snapshotIndex();
      this.images.settle(recorded);
      const image = recorded === 0 ? null : this.images.restorable(recorded);
      this.state.loseUnsyncedState(image);
      this.environment.trace.add(`power loss ${this.id} ${this.state.appliedIndex()}`);
    }
    this.environment.trace.add(`crash ${this.id}`);
    this.environment.crashed(this);
  }

  /** Runs `work` in this incarnation of the process: dropped if it died, held while paused. */
  private guarded(incarnation: number, work: () => void): void {
    if (incarnation !== this.incarnation || this.pipeline === null) return;
    if (this.paused) {
      this.deferred.push(() => this.guarded(incarnation, work));
      return;
    }
    work();
  }

  /** Timers on this member's drifting clock, for one incarnation. */
  private timers(incarnation: number): HostTimers {
    const { queue, random } = this.environment;
    const realMs = (localMs: number) => Math.max(0, localMs / (1 + this.clockDrift));
    return {
      monotonic: () => this.localNow(),
      after: (ms, callback) => {
        let cancelled = false;
        queue.after(realMs(ms), () => {
          if (!cancelled) this.guarded(incarnation, callback);
        });
        return () => {
          cancelled = true;
        };
      },
      every: (ms, callback) => {
        let cancelled = false;
        const fire = () => {
          if (cancelled || incarnation !== this.incarnation) return;
          this.guarded(incarnation, callback);
          queue.after(realMs(ms), fire);
        };
        queue.after(realMs(random.between(1, ms)), fire);
        return () => {
          cancelled = true;
        };
      },
      soon: (callback) => queue.after(0, () => this.guarded(incarnation, callback)),
    };
  }

  /** The disk, with crashes that fall in a flush, right after it, or after its batch. */
  private crashingDisk(): HostLogDisk {
    const disk = this.disk;
    const incarnation = this.incarnation;
    let compacting = false;
    return {
      load: () => disk.load(),
      write: (batch) => {
        compacting ||= batch.compaction !== null;
        return disk.write(batch);
      },
      close: () => {},
      flush: (done, failed) => {
        const window = this.crashWindow(compacting);
        compacting = false;
        const { queue } = this.environment;
        // Scheduled before the flush's own completion, so it falls before it even at 0 ms.
        if (window === "duringFlush") queue.after(0, () => this.crashIf(incarnation));
        disk.flush(
          () => {
            if (window === "afterFlush") return this.crashIf(incarnation);
            this.guarded(incarnation, done);
            if (window === "afterFinish") queue.after(0, () => this.crashIf(incarnation));
          },
          (error) => this.guarded(incarnation, () => failed(error)),
        );
      },
    };
  }

  private crashWindow(compacting: boolean): Crash | null {
    const { random } = this.environment;
    const chance = this.environment.crashChance(this, compacting);
    if (chance === 0 || !random.chance(chance)) return null;
    const window = random.pick(["duringFlush", "afterFlush", "afterFinish"] as const);
    this.environment.crashingInFlush(this);
    return window;
  }

  private crashIf(incarnation: number): void {
    if (incarnation === this.incarnation) this.crash();
  }

  /** A paused process wakes up: everything that arrived meanwhile is handled now. */
  resume(): void {
    if (this.paused) return;
    for (const work of this.deferred.splice(0)) work();
  }

  receive(message: Message): void {
    const pipeline = this.pipeline;
    if (pipeline === null) return;
    const environment = this.environment;
    if (!environment.random.chance(environment.replyInRequestChance)) {
      this.guarded(this.incarnation, () => pipeline.receive([message]));
      return;
    }
    // The answers travel back in the peer's own request, once they may leave.
    const incarnation = this.incarnation;
    environment.pending(1);
    this.guarded(incarnation, () =>
      pipeline.receiveAndReply(message.from, [message]).then(
        (answers) => {
          environment.pending(-1);
          if (incarnation !== this.incarnation) return;
          for (const answer of answers) environment.send(answer);
        },
        (error: unknown) => {
          environment.pending(-1);
          environment.asyncError(error);
        },
      ),
    );
  }

  private sendAll(messages: readonly Message[]): void {
    for (const message of messages) this.environment.send(message);
  }

  private beforeSend(message: Message): void {
    const core = this.core;
    if (core === null) return;
    this.environment.checker.beforeSend(this.id, message, this.disk.durable.durableHardState());
    this.environment.checker.onAcknowledge(core, message);
  }

  private afterStep(): void {
    const core = this.core;
    if (core === null) return;
    this.environment.checker.afterStep(core);
    const { role, term } = core.status();
    if (role === "leader" && this.leaderTerm !== term) {
      this.leaderTerm = term;
      this.environment.becameLeader(this);
    }
  }

  private leaderCall(): LeaderCall {
    return <T>(leader: string, kind: string, body: unknown, timeoutMs?: number) =>
      this.environment.call(
        this.id,
        leader,
        kind,
        body,
        timeoutMs ?? simHostTiming.proposeTimeoutMs,
      ) as Promise<T>;
  }

  /**
   * The leader's side of a peer's call, as shoal's `/internal` routes answer it; null when the
   * process is not running (the connection is refused). A paused process answers once it runs
   * again; one that dies first never answers.
   */
  serve(kind: string, body: unknown, from: string): Promise<unknown> | null {
    const sessions = this.sessions;
    if (sessions === null) return null;
    const route = (): Promise<unknown> => {
      if (kind === "propose") {
        const { request, command } = body as { request: string; command: KvCommand };
        return sessions.proposeForPeer(command, request, from);
      }
      assert(kind === "read-index" || kind === "lease-read", `unknown peer route ${kind}`);
      return sessions.readIndexForPeer(kind, from).then((read) => {
        if (!read.ok) throw new ShoalError(read.code, read.message);
        return read.value;
      });
    };
    return new Promise((resolve, reject) => {
      const reset = () => reject(new ShoalError("E_NOT_READY", `${this.id} reset the connection`));
      this.serving.push(reset);
      const done = () => {
        const at = this.serving.indexOf(reset);
        if (at >= 0) this.serving.splice(at, 1);
      };
      this.guarded(this.incarnation, () =>
        route().then(
          (value) => {
            done();
            resolve(value);
          },
          (error: unknown) => {
            done();
            reject(error);
          },
        ),
      );
    });
  }

  /** Runs `work` on the core now, or after the batch being flushed (a voter keeper's change). */
  withCore(work: (core: RaftCore) => void): void {
    const pipeline = this.pipeline;
    if (pipeline === null) return;
    this.guarded(this.incarnation, () =>
      pipeline.withCore(() => {
        work(pipeline.core);
        pipeline.drain();
      }),
    );
  }

  /** A client's request to this member, over its API: a write, a read at some consistency. */
  request(operation: ClientOperation): void {
    const sessions = this.sessions;
    if (sessions === null) return;
    const incarnation = this.incarnation;
    this.guarded(incarnation, () => this.handle(sessions, operation, incarnation));
  }

  private handle(
    sessions: ClientSessions<KvCommand>,
    operation: ClientOperation,
    incarnation: number,
  ): void {
    if (operation.kind === "write" || operation.kind === "cas") {
      this.track(sessions.propose(commandOf(operation, 0)), incarnation, (result) =>
        this.answered(operation, result),
      );
      return;
    }
    const level: Consistency = operation.kind === "readIndex" ? "linearizable" : "leader";
    this.track(sessions.readAt(level), incarnation, (read) => {
      const { environment } = this;
      if (!read.ok) return environment.complete(operation, "failed");
      if (operation.kind === "fencedWrite") {
        operation.expected = this.machine.get(operation.key);
        return environment.forwardFenced(operation, this.machine.version(operation.key));
      }
      operation.readValue = this.machine.get(operation.key);
      environment.complete(operation, "ok");
    });
  }

  /** Proposes a fenced write that a leader (this one or an earlier one) derived from a read. */
  proposeFenced(operation: ClientOperation, version: number): void {
    const sessions = this.sessions;
    if (sessions === null) return;
    const incarnation = this.incarnation;
    this.guarded(incarnation, () =>
      this.track(sessions.proposeHere(commandOf(operation, version)), incarnation, (result) =>
        this.answered(operation, result),
      ),
    );
  }

  private answered(operation: ClientOperation, result: Result<unknown>): void {
    if (result.ok) {
      const { ok } = result.value as KvResult;
      operation.ok = operation.kind === "cas" || operation.kind === "fencedWrite" ? ok : null;
      this.environment.complete(operation, "ok");
    } else {
      // Anything but a refusal (a timeout, a leader that did not answer) leaves the outcome
      // unknown: the write may still apply, and the client moves on. E_NO_SPACE is a refusal:
      // the linearizability checker holds the host to it (never applied).
      if (result.code === "E_NO_SPACE") this.environment.refusedNoSpace();
      this.environment.complete(operation, refusedCodes.has(result.code) ? "failed" : "unknown");
    }
  }

  /** Follows a client's call; its answer counts only if this process is still the one asked. */
  private track<T>(promise: Promise<T>, incarnation: number, then: (value: T) => void): void {
    const { environment } = this;
    environment.pending(1);
    promise.then(
      (value) => {
        environment.pending(-1);
        if (incarnation === this.incarnation) then(value);
      },
      (error: unknown) => {
        environment.pending(-1);
        environment.asyncError(error);
      },
    );
  }
}

function commandOf(operation: ClientOperation, version: number): KvCommand {
  const { id, key } = operation;
  const value = operation.value ?? "";
  switch (operation.kind) {
    case "cas":
      return { operation: id, kind: "cas", key, expected: operation.expected, value };
    case "fencedWrite":
      return { operation: id, kind: "fenced", key, version, value };
    default:
      return { operation: id, kind: "put", key, value };
  }
}

// One simulated member: the real Raft core, its durable twin stores (log store, state machine,
// snapshot images), a drifting clock, pauses, and crashes that lose whatever was not persisted.
import { assert } from "../../core/assert.ts";
import { batchOf } from "../../raft/log-store.ts";
import { MemoryLogStore } from "../../raft/memory-log-store.ts";
import type { FlowControl, RaftTiming } from "../../raft/raft-core.ts";
import { RaftCore } from "../../raft/raft-core.ts";
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { MemberId, Membership, Message, RaftBugs, Ready } from "../../raft/types.ts";
import type { SafetyChecker } from "./checkers.ts";
import type { EventQueue } from "./event-queue.ts";
import { encodeCommand, KvMachine } from "./kv-machine.ts";
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

export interface MemberEnvironment {
  readonly queue: EventQueue;
  readonly checker: SafetyChecker;
  readonly trace: TraceHash;
  readonly random: SeededRandom;
  readonly timing: RaftTiming;
  readonly flowControl: FlowControl;
  readonly bugs: RaftBugs;
  /** Whether the state machine checks fenced writes' versions (false only in tests). */
  readonly fencing: boolean;
  /** Probability that one ready batch is cut short by a crash (0 outside the fault phase). */
  crashChance(): number;
  /** Entries applied past the last snapshot before the member compacts (0: never). */
  readonly compactEvery: number;
  send(message: Message): void;
  crashed(member: SimMember): void;
  becameLeader(member: SimMember): void;
  complete(operation: ClientOperation, outcome: "ok" | "failed"): void;
  /** A fenced write read its key: its command goes on to be proposed (perhaps much later). */
  forwardFenced(operation: ClientOperation, version: number): void;
}

type CrashWindow = "beforePersist" | "afterPersist" | "afterApply" | null;

export class SimMember {
  core: RaftCore | null = null;
  readonly store = new MemoryLogStore();
  machine: KvMachine;
  /** Durable state machine images by index, what the leader sends as snapshot data. */
  private images = new Map<number, Uint8Array>();
  pausedUntilMs = 0;
  private inbox: Message[] = [];
  private pendingWrites = new Map<number, ClientOperation>();
  private pendingReadIndex = new Map<string, ClientOperation>();
  private waitingReads: { operation: ClientOperation; index: number }[] = [];
  incarnation = 0;
  private leaderTerm = 0;

  constructor(
    readonly id: MemberId,
    private readonly environment: MemberEnvironment,
    readonly clockOffsetMs: number,
    readonly clockDrift: number,
    /** The cluster's first membership for founding members, empty for members who join later. */
    private readonly bootstrap: Membership,
  ) {
    this.machine = new KvMachine(environment.fencing);
  }

  localNow(realMs = this.environment.queue.nowMs): number {
    return this.clockOffsetMs + realMs * (1 + this.clockDrift);
  }

  get running(): boolean {
    return this.core !== null;
  }

  get paused(): boolean {
    return this.environment.queue.nowMs < this.pausedUntilMs;
  }

  start(): void {
    assert(this.core === null, "starting a running member");
    this.incarnation++;
    this.core = new RaftCore({
      id: this.id,
      state: this.store.load(),
      bootstrap: this.bootstrap,
      appliedIndex: this.machine.appliedIndex,
      nowMs: this.localNow(),
      random: this.environment.random.fork(),
      timing: this.environment.timing,
      flowControl: this.environment.flowControl,
      bugs: this.environment.bugs,
    });
    this.environment.checker.onRestart(this.id);
    this.environment.trace.add(`start ${this.id} ${this.incarnation}`);
  }

  crash(): void {
    if (this.core === null) return;
    this.core = null;
    this.inbox = [];
    this.pendingWrites.clear();
    this.pendingReadIndex.clear();
    this.waitingReads = [];
    this.pausedUntilMs = 0;
    this.environment.trace.add(`crash ${this.id}`);
    this.environment.crashed(this);
  }

  tick(): void {
    const core = this.core;
    if (core === null || this.paused) return;
    core.tick(this.localNow());
    this.afterInput(core);
  }

  receive(message: Message): void {
    const core = this.core;
    if (core === null) return;
    if (this.paused) {
      this.inbox.push(message);
      return;
    }
    core.step(message, this.localNow());
    this.afterInput(core);
  }

  /** A paused process wakes up: everything that arrived meanwhile is handled now. */
  resume(): void {
    const core = this.core;
    if (core === null || this.paused) return;
    const inbox = this.inbox;
    this.inbox = [];
    core.tick(this.localNow());
    for (const message of inbox) {
      if (this.core !== core) return;
      core.step(message, this.localNow());
      this.afterInput(core);
    }
    if (this.core === core) this.afterInput(core);
  }

  request(operation: ClientOperation): void {
    const core = this.core;
    if (core === null) return;
    if (this.paused) {
      // The request waits in the socket until the process runs again.
      this.environment.queue.at(this.pausedUntilMs, () => this.request(operation));
      return;
    }
    this.handleRequest(core, operation);
    if (this.core === core) this.afterInput(core);
  }

  private handleRequest(core: RaftCore, operation: ClientOperation): void {
    const environment = this.environment;
    if (operation.kind === "write" || operation.kind === "cas") {
      const data = encodeCommand(
        operation.kind === "write"
          ? {
              operation: operation.id,
              kind: "put",
              key: operation.key,
              value: operation.value ?? "",
            }
          : {
              operation: operation.id,
              kind: "cas",
              key: operation.key,
              expected: operation.expected,
              value: operation.value ?? "",
            },
      );
      const proposed = core.propose(data);
      if (!proposed.ok) environment.complete(operation, "failed");
      else this.pendingWrites.set(operation.id, operation);
    } else if (operation.kind === "readIndex") {
      const asked = core.readIndex(String(operation.id));
      if (!asked.ok) environment.complete(operation, "failed");
      else this.pendingReadIndex.set(String(operation.id), operation);
    } else if (core.leaseValid(this.localNow())) {
      // Lease reads and the read half of fenced writes: served once what is committed applied.
      this.waitingReads.push({ operation, index: core.status().commitIndex });
      this.serveReads();
    } else {
      environment.complete(operation, "failed");
    }
  }

  /** Proposes a fenced write that a leader (this one or an earlier one) derived from a read. */
  proposeFenced(operation: ClientOperation, version: number): void {
    const core = this.core;
    if (core === null) return;
    if (this.paused) {
      this.environment.queue.at(this.pausedUntilMs, () => this.proposeFenced(operation, version));
      return;
    }
    const data = encodeCommand({
      operation: operation.id,
      kind: "fenced",
      key: operation.key,
      version,
      value: operation.value ?? "",
    });
    const proposed = core.propose(data);
    if (!proposed.ok) this.environment.complete(operation, "failed");
    else this.pendingWrites.set(operation.id, operation);
    this.afterInput(core);
  }

  /** The simulator called the core directly (membership change, transfer). */
  afterExternalInput(): void {
    const core = this.core;
    if (core !== null && !this.paused) this.afterInput(core);
  }

  private afterInput(core: RaftCore): void {
    this.environment.checker.afterStep(core);
    const term = core.status().term;
    if (core.status().role === "leader" && this.leaderTerm !== term) {
      this.leaderTerm = term;
      this.environment.becameLeader(this);
    }
    while (this.core === core && core.hasReady()) {
      const ready = core.ready();
      if (!this.handleReady(core, ready)) return;
      core.advance(ready);
      this.environment.checker.afterStep(core);
      this.maybeCompact(core);
    }
  }

  /** Persist, send, apply, answer; returns false when a crash cut the batch short. */
  private handleReady(core: RaftCore, ready: Ready): boolean {
    const window = this.crashWindow();
    if (window === "beforePersist") return this.crashNow();
    this.persist(ready);
    if (window === "afterPersist") return this.crashNow();
    for (const message of [...ready.sendNow, ...ready.messages]) this.sendMessage(core, message);
    const acknowledged = this.apply(ready);
    if (window === "afterApply") return this.crashNow();
    for (const [operation, ok] of acknowledged) {
      operation.ok = operation.kind === "cas" || operation.kind === "fencedWrite" ? ok : null;
      this.environment.complete(operation, "ok");
    }
    for (const readState of ready.readStates) {
      const operation = this.pendingReadIndex.get(readState.context);
      if (operation === undefined) continue;
      this.pendingReadIndex.delete(readState.context);
      this.waitingReads.push({ operation, index: readState.index });
    }
    this.serveReads();
    assert(this.core === core);
    return true;
  }

  private crashWindow(): CrashWindow {
    const chance = this.environment.crashChance();
    if (chance === 0 || !this.environment.random.chance(chance)) return null;
    return this.environment.random.pick(["beforePersist", "afterPersist", "afterApply"] as const);
  }

  private crashNow(): false {
    this.crash();
    return false;
  }

  private persist(ready: Ready): void {
    this.store.save(batchOf(ready));
    if (ready.snapshot !== null) {
      this.machine = KvMachine.restore(ready.snapshot.data, this.environment.fencing);
      assert(this.machine.appliedIndex === ready.snapshot.meta.index, "snapshot image index");
      this.images.set(ready.snapshot.meta.index, ready.snapshot.data);
    }
    const snapshotIndex = this.store.snapshotIndex();
    for (const index of this.images.keys()) {
      if (index < snapshotIndex) this.images.delete(index);
    }
  }

  private sendMessage(core: RaftCore, message: Message): void {
    this.environment.checker.beforeSend(this.id, message, this.store.durableHardState());
    this.environment.checker.onAcknowledge(core, message);
    if (message.type === "snapshot") {
      const data = this.images.get(message.snapshot.index);
      assert(data !== undefined, `no image for snapshot ${message.snapshot.index}`);
      this.environment.send({ ...message, data });
      return;
    }
    this.environment.send(message);
  }

  private apply(ready: Ready): [ClientOperation, boolean][] {
    const acknowledged: [ClientOperation, boolean][] = [];
    for (const entry of ready.committedEntries) {
      const result = this.machine.apply(entry);
      // The checker records which operation the entry carried, to match acknowledgements to it.
      this.environment.checker.onApply(this.id, entry, result?.operation ?? null);
      if (result === null) continue;
      const operation = this.pendingWrites.get(result.operation);
      if (operation === undefined) continue;
      this.pendingWrites.delete(result.operation);
      operation.index = entry.index;
      acknowledged.push([operation, result.ok]);
    }
    return acknowledged;
  }

  private serveReads(): void {
    const applied = this.machine.appliedIndex;
    const waiting: { operation: ClientOperation; index: number }[] = [];
    for (const read of this.waitingReads) {
      if (read.index > applied) {
        waiting.push(read);
        continue;
      }
      const { operation } = read;
      if (operation.kind === "fencedWrite") {
        operation.expected = this.machine.get(operation.key);
        this.environment.forwardFenced(operation, this.machine.version(operation.key));
        continue;
      }
      operation.readValue = this.machine.get(operation.key);
      this.environment.complete(operation, "ok");
    }
    this.waitingReads = waiting;
  }

  private maybeCompact(core: RaftCore): void {
    const every = this.environment.compactEvery;
    if (every === 0 || this.core !== core) return;
    const applied = this.machine.appliedIndex;
    if (applied - core.snapshotMeta.index < every) return;
    this.images.set(applied, this.machine.snapshot());
    core.compact(applied);
  }
}

// A tiny hand-driven cluster of Raft cores for unit tests: messages wait in a queue until a
// test delivers them, time moves only when the test says so, links can be cut.
import { assert } from "../core/assert.ts";
import type { RaftCoreOptions, RaftTiming } from "./raft-core.ts";
import { RaftCore } from "./raft-core.ts";
import { SeededRandom } from "./seeded-random.ts";
import type {
  Entry,
  HardState,
  MemberId,
  Membership,
  Message,
  RaftBugs,
  ReadState,
  SnapshotMeta,
} from "./types.ts";
import { noMember } from "./types.ts";

export const harnessTiming: RaftTiming = {
  heartbeatMs: 100,
  electionTimeoutMsMin: 500,
  electionTimeoutMsMax: 1000,
  clockDriftMax: 0.05,
};

interface Durable {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  snapshotData: Uint8Array | null;
  entries: Entry[];
  applied: Entry[];
  appliedIndex: number;
}

export interface HarnessOptions {
  readonly seed?: number;
  readonly bugs?: RaftBugs;
  readonly learners?: readonly MemberId[];
}

export class CoreHarness {
  nowMs = 0;
  readonly cores = new Map<MemberId, RaftCore>();
  readonly durable = new Map<MemberId, Durable>();
  readonly readStates = new Map<MemberId, ReadState[]>();
  queue: Message[] = [];
  /** Links cut in the direction from -> to, as "from>to". */
  readonly cutLinks = new Set<string>();
  private readonly random: SeededRandom;
  private readonly bugs: RaftBugs;
  readonly bootstrap: Membership;

  constructor(voters: readonly MemberId[], options: HarnessOptions = {}) {
    this.random = new SeededRandom(options.seed ?? 1);
    this.bugs = options.bugs ?? {};
    this.bootstrap = { voters, learners: options.learners ?? [] };
    for (const id of [...voters, ...(options.learners ?? [])]) this.start(id);
  }

  start(id: MemberId, bootstrap: Membership = this.bootstrap): RaftCore {
    const durable = this.durable.get(id) ?? {
      hardState: { term: 0, votedFor: noMember, commitIndex: 0 },
      snapshot: null,
      snapshotData: null,
      entries: [],
      applied: [],
      appliedIndex: 0,
    };
    this.durable.set(id, durable);
    const options: RaftCoreOptions = {
      id,
      state: { hardState: durable.hardState, snapshot: durable.snapshot, entries: durable.entries },
      bootstrap,
      appliedIndex: durable.appliedIndex,
      nowMs: this.nowMs,
      random: this.random.fork(),
      timing: harnessTiming,
      bugs: this.bugs,
    };
    const core = new RaftCore(options);
    this.cores.set(id, core);
    return core;
  }

  /** Loses everything the member did not persist. */
  crash(id: MemberId): void {
    this.cores.delete(id);
    this.queue = this.queue.filter((message) => message.to !== id && message.from !== id);
  }

  core(id: MemberId): RaftCore {
    const core = this.cores.get(id);
    assert(core !== undefined, `no running member ${id}`);
    return core;
  }

  /** Persists, sends and applies everything every member has ready. */
  flush(): void {
    for (const [id, core] of this.cores) {
      while (core.hasReady()) this.handleReady(id, core);
    }
  }

  private handleReady(id: MemberId, core: RaftCore): void {
    const ready = core.ready();
    const durable = this.durable.get(id);
    assert(durable !== undefined);
    if (ready.snapshot !== null) {
      durable.snapshot = ready.snapshot.meta;
      durable.snapshotData = ready.snapshot.data;
      durable.entries = [];
      durable.appliedIndex = ready.snapshot.meta.index;
    }
    if (ready.compaction !== null) {
      const index = ready.compaction.index;
      durable.snapshot = ready.compaction;
      durable.entries = durable.entries.filter((entry) => entry.index > index);
    }
    const first = ready.entries[0];
    if (first !== undefined) {
      durable.entries = durable.entries.filter((entry) => entry.index < first.index);
      durable.entries.push(...ready.entries);
    }
    if (ready.hardState !== null) durable.hardState = ready.hardState;
    for (const message of [...ready.sendNow, ...ready.messages]) {
      if (message.type === "snapshot") {
        this.queue.push({ ...message, data: durable.snapshotData ?? new Uint8Array(0) });
      } else {
        this.queue.push(message);
      }
    }
    for (const entry of ready.committedEntries) {
      durable.applied.push(entry);
      durable.appliedIndex = entry.index;
    }
    const reads = this.readStates.get(id) ?? [];
    reads.push(...ready.readStates);
    this.readStates.set(id, reads);
    core.advance(ready);
  }

  /** Delivers queued messages (and what they cause) until the network is quiet. */
  deliverAll(filter: (message: Message) => boolean = () => true, stepsMax = 10_000): void {
    this.flush();
    for (let step = 0; step < stepsMax && this.queue.length > 0; step++) {
      const message = this.queue.shift() as Message;
      if (!this.cutLinks.has(`${message.from}>${message.to}`) && filter(message)) {
        this.cores.get(message.to)?.step(message, this.nowMs);
      }
      this.flush();
    }
  }

  /** Moves time forward in heartbeat-sized ticks, delivering messages after each. */
  advanceTime(ms: number, tickMs = 10): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs = Math.min(end, this.nowMs + tickMs);
      for (const core of this.cores.values()) core.tick(this.nowMs);
      this.deliverAll();
    }
  }

  /** Makes `id` campaign now (its election timer fires) and lets the election finish. */
  campaign(id: MemberId): void {
    this.nowMs += harnessTiming.electionTimeoutMsMax;
    this.core(id).tick(this.nowMs);
    this.deliverAll();
  }

  isolate(id: MemberId): void {
    for (const other of this.cores.keys()) {
      if (other === id) continue;
      this.cutLinks.add(`${id}>${other}`);
      this.cutLinks.add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.cutLinks.clear();
  }

  /** Cuts the link between two members both ways. */
  cut(left: MemberId, right: MemberId): void {
    this.cutLinks.add(`${left}>${right}`).add(`${right}>${left}`);
  }

  /** Restores the link between two members both ways. */
  connect(left: MemberId, right: MemberId): void {
    this.cutLinks.delete(`${left}>${right}`);
    this.cutLinks.delete(`${right}>${left}`);
  }

  leaders(): MemberId[] {
    return [...this.cores.values()]
      .filter((core) => core.status().role === "leader")
      .map((core) => core.id);
  }

  appliedCommands(id: MemberId): string[] {
    const decoder = new TextDecoder();
    return (this.durable.get(id)?.applied ?? [])
      .filter((entry) => entry.kind === "command")
      .map((entry) => decoder.decode(entry.data));
  }

  propose(id: MemberId, text: string) {
    return this.core(id).propose(new TextEncoder().encode(text));
  }
}

// Benchmark: the Raft core and its log storage. Committed entries per second through a
// three-member core with messages handed over in memory (no I/O), and proposals per second
// through the libSQL log store with fsync, one proposal per save and batched. The goal is that
// the core is never the bottleneck: at least 50,000 committed entries/s on one CPU core, and
// faster than the storage it writes to.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { LibsqlRaftLogStore } from "../src/adapters/raft-log-store-libsql.ts";
import { batchOf } from "../src/raft/log-store.ts";
import { RaftCore } from "../src/raft/raft-core.ts";
import { SeededRandom } from "../src/raft/seeded-random.ts";
import type { Membership, Message, PersistentState } from "../src/raft/types.ts";
import { noMember } from "../src/raft/types.ts";
import { type BenchRow, formatBenchRows, median } from "./bench-row.ts";

const goalCommittedPerSecond = 50_000;
const measuredRuns = 5;
/** Entries committed in one run of the in-memory cluster. */
const clusterEntries = 100_000;
/** Proposals the leader takes before the cluster exchanges messages (a busy leader's batch). */
const clusterBatch = 64;
const compactEvery = 10_000;
const storeProposalsSingle = 300;
const storeProposalsBatched = 6_400;
const storeBatch = 64;
const payload = new TextEncoder().encode(JSON.stringify({ type: "service.update", replicas: 3 }));

const emptyState: PersistentState = {
  hardState: { term: 0, votedFor: noMember, commitIndex: 0 },
  snapshot: null,
  entries: [],
};

/** Three cores whose messages go straight into each other's step(); nothing is stored. */
class MemoryCluster {
  readonly cores: RaftCore[];
  private nowMs = 0;
  private queue: Message[] = [];
  private readonly byId = new Map<string, RaftCore>();

  constructor() {
    const membership: Membership = { voters: ["a", "b", "c"], learners: [] };
    const random = new SeededRandom(1);
    this.cores = membership.voters.map(
      (id) =>
        new RaftCore({
          id,
          state: emptyState,
          bootstrap: membership,
          nowMs: 0,
          random: random.fork(),
        }),
    );
    for (const core of this.cores) this.byId.set(core.id, core);
  }

  electFirst(): RaftCore {
    for (let step = 0; step < 1000; step++) {
      this.tick();
      const leader = this.cores.find((core) => core.status().role === "leader");
      if (leader !== undefined && leader.status().commitIndex === leader.status().lastIndex) {
        return leader;
      }
    }
    throw new Error("no leader elected");
  }

  /** One tick of every core: the leader's commit index reaches followers at a tick or an append. */
  tick(): void {
    this.nowMs += 10;
    for (const core of this.cores) core.tick(this.nowMs);
    this.pump();
  }

  /** Hands out every ready batch and delivers every message until all is quiet. */
  pump(): void {
    for (;;) {
      for (const core of this.cores) this.drain(core);
      if (this.queue.length === 0) return;
      const messages = this.queue;
      this.queue = [];
      for (const message of messages) this.byId.get(message.to)?.step(message, this.nowMs);
    }
  }

  private drain(core: RaftCore): void {
    while (core.hasReady()) {
      const ready = core.ready();
      // A leader's appends leave in sendNow (before its flush), the rest in messages.
      for (const message of [...ready.sendNow, ...ready.messages]) this.queue.push(message);
      core.advance(ready);
      const applied = core.status().appliedIndex;
      if (applied - core.snapshotMeta.index >= compactEvery) core.compact(applied);
    }
  }
}

function timeCluster(batch: number): number {
  const cluster = new MemoryCluster();
  const leader = cluster.electFirst();
  const start = leader.status().commitIndex;
  const target = start + clusterEntries;
  const startedMs = performance.now();
  while (leader.status().lastIndex < target) {
    for (let count = 0; count < batch; count++) {
      const proposed = leader.propose(payload);
      if (!proposed.ok) throw new Error(proposed.message);
    }
    cluster.pump();
  }
  cluster.tick();
  const elapsedMs = performance.now() - startedMs;
  for (const core of cluster.cores) {
    if (core.status().appliedIndex < target) throw new Error(`${core.id} did not apply all`);
  }
  return clusterEntries / (elapsedMs / 1000);
}

/** A one-member core over raft.db: propose, persist (fsync), commit; `batch` proposals a save. */
function timeStore(directory: string, run: number, proposals: number, batch: number): number {
  const store = new LibsqlRaftLogStore(join(directory, `raft-${batch}-${run}.db`));
  try {
    const core = new RaftCore({
      id: "a",
      state: store.load(),
      bootstrap: { voters: ["a"], learners: [] },
      nowMs: 0,
      random: new SeededRandom(run),
    });
    core.tick(10_000);
    const flush = () => {
      while (core.hasReady()) {
        const ready = core.ready();
        store.save(batchOf(ready));
        core.advance(ready);
      }
    };
    flush();
    const startedMs = performance.now();
    for (let done = 0; done < proposals; done += batch) {
      for (let count = 0; count < batch; count++) {
        const proposed = core.propose(payload);
        if (!proposed.ok) throw new Error(proposed.message);
      }
      flush();
    }
    const elapsedMs = performance.now() - startedMs;
    const status = core.status();
    if (status.commitIndex !== status.lastIndex) throw new Error("proposals left uncommitted");
    return proposals / (elapsedMs / 1000);
  } finally {
    store.close();
  }
}

function medianOf(measure: (run: number) => number): number {
  measure(-1);
  return median(Array.from({ length: measuredRuns }, (_, run) => measure(run)));
}

export async function benchRaft(): Promise<BenchRow[]> {
  const core = medianOf(() => timeCluster(clusterBatch));
  const coreUnbatched = medianOf(() => timeCluster(1));
  const directory = mkdtempSync(join(tmpdir(), "shoal-bench-raft-"));
  let single: number;
  let batched: number;
  try {
    single = medianOf((run) => timeStore(directory, run + 1, storeProposalsSingle, 1));
    batched = medianOf((run) => timeStore(directory, run + 1, storeProposalsBatched, storeBatch));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  const coreFaster = (figure: number) =>
    `< core's ${Math.round(figure)}/s (the core is not the bottleneck)`;
  return [
    {
      name: `raft: committed entries, 3-member core, no I/O, ${clusterBatch} per round trip (median of ${measuredRuns})`,
      value: Math.round(core),
      unit: "entries/s",
      goal: `>= ${goalCommittedPerSecond} entries/s`,
      pass: core >= goalCommittedPerSecond,
    },
    {
      name: `raft: committed entries, 3-member core, no I/O, 1 per round trip (median of ${measuredRuns})`,
      value: Math.round(coreUnbatched),
      unit: "entries/s",
      goal: `>= ${goalCommittedPerSecond} entries/s`,
      pass: coreUnbatched >= goalCommittedPerSecond,
    },
    {
      name: `raft: proposals through raft.db with fsync, 1 per save (median of ${measuredRuns})`,
      value: Math.round(single),
      unit: "proposals/s",
      goal: coreFaster(coreUnbatched),
      pass: single < coreUnbatched,
    },
    {
      name: `raft: proposals through raft.db with fsync, ${storeBatch} per save (median of ${measuredRuns})`,
      value: Math.round(batched),
      unit: "proposals/s",
      goal: coreFaster(core),
      pass: batched < core,
    },
  ];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchRaft();
  console.log(formatBenchRows(rows));
  if (!rows.every((row) => row.pass)) process.exitCode = 1;
}

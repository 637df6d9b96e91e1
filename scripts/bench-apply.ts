// Benchmark: propose-and-apply latency on one node, through the real command log of a one-member
// cluster (raft.db fsync'd, state.db applied in one transaction), as a user's write would travel.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RaftCommandLog } from "../src/adapters/raft-command-log.ts";
import { systemClock } from "../src/adapters/system-clock.ts";
import { apiTokenFields } from "../src/testing/cluster-init.ts";
import { type BenchRow, percentile } from "./bench-row.ts";

const warmupCommands = 200;
const measuredCommands = 2000;
const goalP50Ms = 2;

export async function benchApply(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-bench-apply-"));
  const log = await RaftCommandLog.openLone(dir, "bench1", systemClock);
  try {
    await log.propose({ type: "cluster.init", at: 1, clusterId: "bench", ...apiTokenFields("t") });
    const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };
    await log.propose({
      type: "service.create",
      at: 2,
      name: "web",
      replicas: 1,
      containers: [container],
    });
    const samples: number[] = [];
    for (let i = 0; i < warmupCommands + measuredCommands; i++) {
      const started = performance.now();
      const result = await log.propose({
        type: "service.update",
        at: 3 + i,
        name: "web",
        replicas: i % 50,
      });
      if (!result.ok) throw new Error(result.message);
      if (i >= warmupCommands) samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    const p50 = percentile(samples, 50);
    const p99 = percentile(samples, 99);
    return [
      {
        name: "propose+apply p50 (one node)",
        value: p50,
        unit: "ms",
        goal: `< ${goalP50Ms} ms`,
        pass: p50 < goalP50Ms,
      },
      {
        name: "propose+apply p99 (one node)",
        value: p99,
        unit: "ms",
        goal: "(reported)",
        pass: true,
      },
    ];
  } finally {
    log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// `npm run bench`: every speed and memory goal of shoal, measured, as one table with the goal
// beside each figure. Benchmarks, not tests: the machines are shared and noisy, so read medians.
import { benchApply } from "./bench-apply.ts";
import { benchBinary } from "./bench-binary.ts";
import { benchFleet } from "./bench-fleet.ts";
import { benchPlacement } from "./bench-placement.ts";
import { benchRaft } from "./bench-raft.ts";
import { benchReplacement } from "./bench-replacement.ts";
import { type BenchRow, formatBenchRows } from "./bench-row.ts";
import { benchSim } from "./bench-sim.ts";

const rows: BenchRow[] = [];
rows.push(...(await benchApply()));
rows.push(...(await benchPlacement()));
rows.push(...(await benchRaft()));
rows.push(...(await benchSim()));
rows.push(...(await benchBinary()));
if (process.env.SHOAL_BENCH_SKIP_DOCKER === "1") {
  console.error("skipping the Docker benchmark (SHOAL_BENCH_SKIP_DOCKER=1)");
} else {
  rows.push(...(await benchReplacement()));
}
if (process.env.SHOAL_BENCH_SKIP_LAB === "1") {
  console.error("skipping the lab benchmarks (SHOAL_BENCH_SKIP_LAB=1)");
} else if (process.getuid?.() !== 0) {
  console.error("skipping the lab benchmarks: the lab needs root");
} else {
  rows.push(...(await benchFleet()));
}
console.log(formatBenchRows(rows));

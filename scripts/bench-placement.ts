// Benchmark: pure placement of 1,000 tasks over 50 simulated nodes through the real scheduler,
// reported as the median over several runs. The goal (20,000 tasks/s) keeps evaluations cheap
// enough for the leader to run them on every change.
import { pathToFileURL } from "node:url";
import {
  deploymentDefaults,
  drainMsDefault,
  type NodeInfo,
  placementDefaults,
  type Service,
  type TaskDefinition,
} from "../src/core/types.ts";
import { evaluate } from "../src/scheduler/evaluate.ts";
import { node } from "../src/scheduler/test-harness.ts";
import type { SchedulerInput } from "../src/scheduler/types.ts";
import { seededRandom, sequentialIds } from "../src/testing/prng.ts";
import { type BenchRow, formatBenchRows, median } from "./bench-row.ts";

const nodeCount = 50;
const serviceCount = 20;
const replicasPerService = 50;
const taskCount = serviceCount * replicasPerService;
const warmupRuns = 5;
const measuredRuns = 21;
const goalTasksPerSecond = 20_000;

function simulatedNode(index: number): NodeInfo {
  return node(`node-${index.toString().padStart(2, "0")}`, {
    name: `pi-${index}`,
    address: `10.0.0.${index + 1}`,
    cpus: 8,
    memoryMb: 8192,
    labels: { zone: `zone-${index % 3}` },
  });
}

/** Half the services publish a fixed host port, so port checks are part of the measure. */
function simulatedDefinition(index: number): TaskDefinition {
  const ports =
    index % 2 === 0 ? [{ container: 80, host: 8000 + index, protocol: "tcp" as const }] : [];
  const container = { name: "main", image: "shoal-test/busybox:1", env: {}, mounts: [] };
  return {
    family: `svc-${index}`,
    revision: 1,
    containers: [{ ...container, ports, cpu: 0.1, memoryMb: 64, essential: true }],
    createdAt: 0,
  };
}

function simulatedService(index: number): Service {
  return {
    name: `svc-${index}`,
    mode: "replicated",
    replicas: replicasPerService,
    taskDefinition: { family: `svc-${index}`, revision: 1 },
    placement: { ...placementDefaults },
    deployment: { ...deploymentDefaults },
    stopAfterDisconnectMs: null,
    ingress: [],
    drainMs: drainMsDefault,
    rebalanceRequested: false,
    failureStreak: 0,
    lastFailureAt: null,
    createdAt: 0,
    updatedAt: 0,
    version: 1,
  };
}

function benchInput(seed: number): SchedulerInput {
  const indexes = (count: number) => Array.from({ length: count }, (_, index) => index);
  return {
    nodes: indexes(nodeCount).map(simulatedNode),
    services: indexes(serviceCount).map(simulatedService),
    taskDefinitions: indexes(serviceCount).map(simulatedDefinition),
    deployments: [],
    tasks: [],
    now: 1_700_000_000_000,
    newId: sequentialIds("task"),
    random: seededRandom(seed),
  };
}

/** Times one evaluation in milliseconds and checks that it placed every task. */
function timeOneRun(seed: number): number {
  const input = benchInput(seed);
  const started = performance.now();
  const { plan } = evaluate(input);
  const elapsedMs = performance.now() - started;
  const placed = plan.create.filter((planned) => planned.node !== null).length;
  if (placed !== taskCount) throw new Error(`placed ${placed} of ${taskCount} tasks`);
  return elapsedMs;
}

export async function benchPlacement(): Promise<BenchRow[]> {
  for (let run = 0; run < warmupRuns; run += 1) timeOneRun(run);
  const timesMs: number[] = [];
  for (let run = 0; run < measuredRuns; run += 1) timesMs.push(timeOneRun(1000 + run));
  const tasksPerSecond = taskCount / (median(timesMs) / 1000);
  return [
    {
      name: `placement: ${taskCount} tasks over ${nodeCount} nodes (median of ${measuredRuns})`,
      value: Math.round(tasksPerSecond),
      unit: "tasks/s",
      goal: `>= ${goalTasksPerSecond} tasks/s`,
      pass: tasksPerSecond >= goalTasksPerSecond,
    },
  ];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchPlacement();
  console.log(formatBenchRows(rows));
  if (!rows.every((row) => row.pass)) process.exitCode = 1;
}

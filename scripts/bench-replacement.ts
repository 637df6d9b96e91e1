// Benchmark: from `docker kill` of a task's container to its replacement running, on a real
// agent process and the real Docker engine. Median over several rounds.
import type { Task } from "../src/core/types.ts";
import { AgentProcess, docker } from "../src/testing/agent-process.ts";
import { waitFor } from "../src/testing/wait.ts";
import { type BenchRow, median } from "./bench-row.ts";

const rounds = 7;
const goalMs = 2000;
const pollMs = 10;

async function runningTask(agent: AgentProcess, notId: string | null): Promise<Task> {
  return waitFor(
    "a running task",
    async () => {
      const tasks = (await agent.json("GET", "/v1/tasks?service=bench&state=running")) as Task[];
      return tasks.find((t) => t.desired === "running" && t.id !== notId) ?? null;
    },
    30_000,
    pollMs,
  );
}

export async function benchReplacement(): Promise<BenchRow[]> {
  const agent = new AgentProcess();
  try {
    await agent.start();
    const container = { name: "c", image: "shoal-test/busybox:1", command: ["sleep", "3600"] };
    await agent.json("POST", "/v1/services", {
      name: "bench",
      replicas: 1,
      containers: [container],
    });
    let task = await runningTask(agent, null);
    const samples: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Each round waits past the stable-run time so every kill is a first failure, replaced at once.
      const containerId = task.containers[0]?.containerId;
      if (!containerId) throw new Error("the task reports no container");
      const started = performance.now();
      docker("kill", containerId);
      task = await runningTask(agent, task.id);
      samples.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 10_500));
    }
    const middle = median(samples);
    return [
      {
        name: "docker kill -> replacement running (median)",
        value: middle,
        unit: "ms",
        goal: `< ${goalMs} ms`,
        pass: middle < goalMs,
      },
    ];
  } finally {
    await agent.dispose();
  }
}

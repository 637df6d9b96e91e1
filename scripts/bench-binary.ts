// Benchmarks of the release binary (`npm run build` first): its size per target, cold start
// (process start to `/v1/health` answering 200 on a fresh one-node fleet, median of 5) and idle
// resident memory 60 s after start (the median of 3 one-node fleets idling side by side). The
// agents run on loopback without mDNS.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeStatus } from "../src/testing/https.ts";
import { waitFor } from "../src/testing/wait.ts";
import { type BenchRow, median } from "./bench-row.ts";

const root = join(import.meta.dirname, "..");
const binary = join(root, "dist", "shoal-linux-x64");
const firstPort = 7497;
const coldStarts = 5;
const idleFleets = 3;
const idleSeconds = 60;
const goals = { coldStartMs: 1000, idleRssMb: 90 };

/** The binary unpacks its libSQL addon into TMPDIR and leaves it: the data dir, removed after. */
function startAgent(dataDir: string, port: number): ChildProcess {
  const args = ["agent", "--data-dir", dataDir, "--no-mdns", "--bind", "127.0.0.1"];
  const env = { ...process.env, TMPDIR: dataDir };
  return spawn(binary, [...args, "--port", String(port)], { stdio: "ignore", env });
}

async function healthy(port: number): Promise<boolean> {
  return (await probeStatus(`https://127.0.0.1:${port}/v1/health`, 500)) === 200;
}

/** Starts an agent on a fresh data dir and resolves with the ms until health answered 200. */
async function untilHealthy(
  dataDir: string,
  port = firstPort,
): Promise<{ agent: ChildProcess; ms: number }> {
  const started = performance.now();
  const agent = startAgent(dataDir, port);
  // Polled every 5 ms: the poll's period is part of the figure.
  await waitFor("the agent to answer health", () => healthy(port), 30_000, 5);
  return { agent, ms: performance.now() - started };
}

async function stop(agent: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => agent.once("exit", resolve));
  agent.kill("SIGTERM");
  await exited;
}

function residentMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

async function withDataDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-bench-binary-"));
  try {
    return await work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resident memory of one-node fleets idling side by side for `idleSeconds`: their median, MB. */
async function idleResidentMb(): Promise<number> {
  const ports = Array.from({ length: idleFleets }, (_, index) => firstPort + index);
  const samples = await Promise.all(
    ports.map((port) =>
      withDataDir(async (dir) => {
        const { agent } = await untilHealthy(dir, port);
        try {
          await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
          return residentMb(agent.pid ?? 0);
        } finally {
          await stop(agent);
        }
      }),
    ),
  );
  console.error(`idle resident memory (MB): ${samples.map((mb) => mb.toFixed(1)).join(", ")}`);
  return median(samples);
}

export async function benchBinary(): Promise<BenchRow[]> {
  execFileSync(join(root, "node_modules", ".bin", "bun"), [join(root, "scripts", "build.ts")], {
    stdio: "ignore",
  });
  const rows: BenchRow[] = ["x64", "arm64"].map((arch) => ({
    name: `release binary size (linux-${arch})`,
    value: statSync(join(root, "dist", `shoal-linux-${arch}`)).size / (1024 * 1024),
    unit: "MB",
    goal: "(measured)",
    pass: true,
  }));
  const starts: number[] = [];
  for (let round = 0; round < coldStarts; round++) {
    starts.push(
      await withDataDir(async (dir) => {
        const { agent, ms } = await untilHealthy(dir);
        await stop(agent);
        return ms;
      }),
    );
  }
  console.error(`cold starts (ms): ${starts.map((s) => Math.round(s)).join(", ")}`);
  const start = median(starts);
  rows.push({
    name: `cold start to /v1/health 200, one node (median of ${coldStarts})`,
    value: start,
    unit: "ms",
    goal: `< ${goals.coldStartMs} ms`,
    pass: start < goals.coldStartMs,
  });
  const rss = await idleResidentMb();
  rows.push({
    name: `idle resident memory after ${idleSeconds} s, one node (median of ${idleFleets})`,
    value: rss,
    unit: "MB",
    goal: `< ${goals.idleRssMb} MB`,
    pass: rss < goals.idleRssMb,
  });
  return rows;
}

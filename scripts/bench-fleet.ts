// Benchmarks of a real 3-node fleet on the lab (root only): commit latency through the leader's
// API at concurrency 1, writes per second at concurrency 64 (load from wrk), leader failover: from
// kill -9 of the leader's agent to the first successful write through another node, over 10
// kills, node loss: from killing a host to its tasks running (and answering HTTP) on the others,
// over 5 losses, and leader host loss: from killing the leader's host to the next placement.
import { execFile, spawnSync } from "node:child_process";
import http from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "../src/testing/agent-process.ts";
import { measureLoss, restore } from "../src/testing/failover-timeline.ts";
import type { Lab } from "../src/testing/lab.ts";
import {
  formLabFleet,
  LabApi,
  mdnsLab,
  runningTasks,
  webContainers,
} from "../src/testing/lab-fleet.ts";
import { type BenchRow, median, percentile } from "./bench-row.ts";

const execFileAsync = promisify(execFile);

const nodes = ["lab1", "lab2", "lab3"];
const latencyWrites = 300;
const throughputWorkers = 64;
const throughputWarmupSeconds = 10;
const throughputSeconds = 5;
const throughputRuns = 3;
const kills = 10;
const nodeLosses = 5;
const leaderLosses = 3;
const goals = {
  failoverMedianMs: 1000,
  failoverMaxMs: 2000,
  writesPerSecond: 3000,
  nodeLossMedianMs: 4000,
  nodeLossAnsweringMedianMs: 4500,
  /** An election, one fresh nodeDownAfterMs of grace for every node, then the placement. */
  leaderLossPlacedMedianMs: 5000,
};

interface ClusterView {
  leader: { name: string | null } | null;
  voters: string[];
  leaseHeld: boolean;
}

class FleetClient {
  // node:http with keep-alive: the load generator shares the machine's two cores with the
  // fleet, and fetch costs it about three times as much per request.
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: throughputWorkers });

  constructor(
    private readonly lab: Lab,
    readonly token: string,
  ) {}

  send(method: string, node: string, path: string, body: unknown, timeoutMs = 8000) {
    const text = JSON.stringify(body);
    return new Promise<number>((resolve, reject) => {
      const request = http.request(
        `${this.lab.base(node)}${path}`,
        {
          method,
          agent: this.agent,
          headers: {
            authorization: `Bearer ${this.token}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(text),
          },
          signal: AbortSignal.timeout(timeoutMs),
        },
        (response) => {
          response.resume();
          response.on("end", () => resolve(response.statusCode ?? 0));
          response.on("error", reject);
        },
      );
      request.on("error", reject);
      request.end(text);
    });
  }

  post(node: string, path: string, body: unknown, timeoutMs = 8000): Promise<number> {
    return this.send("POST", node, path, body, timeoutMs);
  }

  async get<T>(node: string, path: string): Promise<T> {
    const response = await fetch(`${this.lab.base(node)}${path}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(3000),
    });
    if (response.status !== 200) throw new Error(`${path} on ${node} answered ${response.status}`);
    return (await response.json()) as T;
  }

  cluster(node: string): Promise<ClusterView> {
    return this.get<ClusterView>(node, "/v1/cluster");
  }

  /** The leader's node name once three voters agree on one that holds its lease. */
  async settledLeader(): Promise<string> {
    return waitFor("a settled leader of 3 voters", async () => {
      const views = await Promise.all(nodes.map((n) => this.cluster(n).catch(() => null)));
      const names = new Set(views.map((v) => v?.leader?.name ?? null));
      const [name] = [...names];
      const settled = names.size === 1 && name && views.every((v) => v?.voters.length === 3);
      return settled && views.some((v) => v?.leaseHeld) ? name : null;
    });
  }
}

function service(name: string) {
  return { name, replicas: 0, containers: [{ name: "c", image: "shoal-test/busybox:1" }] };
}

async function formFleet(lab: Lab): Promise<FleetClient> {
  const api = await formLabFleet(lab, 3);
  const client = new FleetClient(lab, api.token);
  await client.settledLeader();
  return client;
}

async function commitLatency(client: FleetClient, leader: string): Promise<BenchRow[]> {
  const samples: number[] = [];
  for (let i = 0; i < latencyWrites; i++) {
    const started = performance.now();
    const status = await client.post(leader, "/v1/services", service(`lat-${i}`));
    if (status !== 201) throw new Error(`a write answered ${status}`);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  const row = (name: string, value: number): BenchRow => ({
    name,
    value,
    unit: "ms",
    goal: "(measured)",
    pass: true,
  });
  return [
    row("3 voters: write via API p50 (concurrency 1)", percentile(samples, 50)),
    row("3 voters: write via API p99 (concurrency 1)", percentile(samples, 99)),
  ];
}

/**
 * Writes per second at concurrency 64: wrk (C, from Debian's `wrk`) keeps 64 PATCHes of 64
 * services in flight through the leader's API; every write is a Raft entry flushed on a quorum.
 * wrk rather than a Node client: at these rates a Node client took a fifth of the two cores the
 * fleet is measured on, wrk a few percent. One warm-up run, then the median of three.
 */
async function throughput(lab: Lab, client: FleetClient, leader: string): Promise<BenchRow> {
  const wrk = ensureWrk();
  for (let w = 0; w < throughputWorkers; w++) {
    const status = await client.post(leader, "/v1/services", service(`tp-${w}`));
    if (status !== 201) throw new Error(`creating tp-${w} answered ${status}`);
  }
  const run = (seconds: number) => wrkRun(wrk, lab.base(leader), client.token, seconds);
  await run(throughputWarmupSeconds);
  const runs: number[] = [];
  for (let i = 0; i < throughputRuns; i++) runs.push(await run(throughputSeconds));
  console.error(`writes/s runs: ${runs.map((r) => Math.round(r)).join(", ")}`);
  const perSecond = median(runs);
  return {
    name: `3 voters: writes/s via API (concurrency ${throughputWorkers}, median of ${throughputRuns})`,
    value: perSecond,
    unit: "writes/s",
    goal: `>= ${goals.writesPerSecond} writes/s`,
    pass: perSecond >= goals.writesPerSecond,
  };
}

/** The path of wrk, installed from Debian's packages when it is missing. */
function ensureWrk(): string {
  const found = () => spawnSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" }).stdout.trim();
  if (found()) return found();
  console.error("installing wrk (Debian's package) for the writes/s benchmark");
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "-q", "wrk"], { stdio: "inherit" }).status === 0;
  if (!install()) {
    spawnSync("apt-get", ["update", "-q"], { stdio: "inherit" });
    if (!install()) throw new Error("wrk is missing and apt-get could not install it");
  }
  return found();
}

/** One wrk run; throws if any write failed, else returns writes per second. */
async function wrkRun(wrk: string, base: string, token: string, seconds: number): Promise<number> {
  const args = [
    "-t1",
    `-c${throughputWorkers}`,
    `-d${seconds}s`,
    "--timeout",
    "8s",
    "-s",
    join(import.meta.dirname, "bench-writes.lua"),
    base,
  ];
  const env = { ...process.env, SHOAL_TOKEN: token, SHOAL_SERVICES: String(throughputWorkers) };
  const { stdout } = await execFileAsync(wrk, args, { env });
  const line = stdout.split("\n").find((l) => l.startsWith("shoal-bench "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const field = (name: string) =>
    Number(new RegExp(`${name}=(\\d+)`).exec(line)?.[1] ?? Number.NaN);
  if (field("non2xx") > 0 || field("socket_errors") > 0) {
    throw new Error(`writes failed under load: ${line}`);
  }
  return field("requests") / (field("duration_us") / 1e6);
}

/** kill -9 of the leader's agent, then writes through another node until one succeeds. */
async function failoverOnce(lab: Lab, client: FleetClient, round: number): Promise<number> {
  const leader = await client.settledLeader();
  const survivor = nodes.find((n) => n !== leader) ?? "lab2";
  const status = (await lab.status()).find((s) => s.name === leader);
  if (!status?.agent.pid) throw new Error(`${leader} has no agent`);
  process.kill(status.agent.pid, "SIGKILL");
  const killed = performance.now();
  for (let attempt = 0; ; attempt++) {
    const code = await client
      .post(survivor, "/v1/services", service(`fo-${round}-${attempt}`), 3000)
      .catch(() => 0);
    if (code === 201) break;
    if (performance.now() - killed > 30_000) throw new Error("no write succeeded within 30 s");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const elapsed = performance.now() - killed;
  await lab.start(leader);
  return elapsed;
}

async function failover(lab: Lab, client: FleetClient): Promise<BenchRow[]> {
  const samples: number[] = [];
  for (let round = 0; round < kills; round++) samples.push(await failoverOnce(lab, client, round));
  samples.sort((a, b) => a - b);
  const median = percentile(samples, 50);
  const max = samples[samples.length - 1] ?? Number.NaN;
  console.error(`failover samples (ms): ${samples.map((s) => Math.round(s)).join(", ")}`);
  return [
    {
      name: `leader kill -9 -> write via another node (median of ${kills})`,
      value: median,
      unit: "ms",
      goal: `< ${goals.failoverMedianMs} ms`,
      pass: median < goals.failoverMedianMs,
    },
    {
      name: `leader kill -9 -> write via another node (max of ${kills})`,
      value: max,
      unit: "ms",
      goal: `< ${goals.failoverMaxMs} ms`,
      pass: max < goals.failoverMaxMs,
    },
  ];
}

const lossReplicas = 3;

/**
 * Hosts lost (agent and engine killed, as when a Pi loses power), with default settings: a
 * worker's host `nodeLosses` times (to its tasks running, and answering HTTP, on the others),
 * then the leader's host `leaderLosses` times (to the next placement, which waits for a new
 * leader and its judgement of the silent node). The same measurement as the failover demo.
 */
async function nodeLoss(lab: Lab, client: FleetClient): Promise<BenchRow[]> {
  const api = new LabApi(lab, client.token);
  const leader = await client.settledLeader();
  await waitFor("3 nodes with their engines", async () => {
    const list = await api.nodes(leader);
    return list.filter((n) => n.status === "ready" && n.engineReady).length === 3 ? list : null;
  });
  await api.call(leader, "POST", "/v1/services", {
    name: "bench-web",
    replicas: lossReplicas,
    containers: webContainers(),
    // A host that comes back gets a task again, so every round starts spread over three nodes.
    placement: { rebalance: true },
  });
  const running: number[] = [];
  const answering: number[] = [];
  for (let round = 0; round < nodeLosses; round++) {
    const times = await loseHost(lab, client, api, "worker");
    running.push(times.runningMs ?? Number.NaN);
    answering.push(times.answeringMs ?? Number.NaN);
  }
  const placed: number[] = [];
  for (let round = 0; round < leaderLosses; round++) {
    placed.push((await loseHost(lab, client, api, "leader")).placedMs ?? Number.NaN);
  }
  const show = (samples: number[]) => samples.map((s) => Math.round(s)).join(", ");
  console.error(`node loss -> running (ms): ${show(running)}; -> answering: ${show(answering)}`);
  console.error(`leader loss -> placement (ms): ${show(placed)}`);
  const row = (name: string, samples: number[], goal: number): BenchRow => {
    const value = median(samples);
    return { name, value, unit: "ms", goal: `< ${goal} ms`, pass: value < goal };
  };
  return [
    row(
      `node loss -> replacement running (median of ${nodeLosses})`,
      running,
      goals.nodeLossMedianMs,
    ),
    row(
      `node loss -> replacement answering HTTP (median of ${nodeLosses})`,
      answering,
      goals.nodeLossAnsweringMedianMs,
    ),
    row(
      `leader host loss -> next placement (median of ${leaderLosses})`,
      placed,
      goals.leaderLossPlacedMedianMs,
    ),
  ];
}

/** One host lost once every task of bench-web runs spread over the three nodes; then back. */
async function loseHost(lab: Lab, client: FleetClient, api: LabApi, role: "leader" | "worker") {
  const leader = await client.settledLeader();
  const spread = await waitFor("bench-web spread over 3 nodes", async () => {
    const service = await api.service(leader, "bench-web");
    const on = new Set(runningTasks(service).map((t) => t.nodeName));
    return on.size === lossReplicas ? service : null;
  });
  const victim =
    role === "leader"
      ? leader
      : nodes.find((n) => n !== leader && runningTasks(spread).some((t) => t.nodeName === n));
  const observer = nodes.find((n) => n !== victim && n !== leader) ?? leader;
  if (!victim) throw new Error("no node but the leader runs a task of bench-web");
  const plan = {
    kind: "kill" as const,
    victim,
    observer,
    service: "bench-web",
    replicas: lossReplicas,
  };
  const times = await measureLoss(lab, api, plan);
  await restore(lab, api, plan);
  return times;
}

export async function benchFleet(): Promise<BenchRow[]> {
  const lab = mdnsLab();
  try {
    const client = await formFleet(lab);
    const leader = await client.settledLeader();
    const rows = await commitLatency(client, leader);
    rows.push(await throughput(lab, client, leader));
    rows.push(...(await failover(lab, client)));
    rows.push(...(await nodeLoss(lab, client)));
    return rows;
  } finally {
    await lab.down();
  }
}

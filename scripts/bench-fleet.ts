// Benchmarks of a real 3-node fleet on the lab (root only): commit latency through the leader's
// API at concurrency 1, writes per second at concurrency 64 (load from wrk), leader failover: from
// kill -9 of the leader's agent to the first successful write through another node, over 10
// kills, and node loss: from killing a host to its tasks running on the others, over 5 losses.
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "../src/testing/agent-process.ts";
import { Lab, labDataDir } from "../src/testing/lab.ts";
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
const goals = {
  failoverMedianMs: 1000,
  failoverMaxMs: 2000,
  writesPerSecond: 3000,
  nodeLossMedianMs: 4000,
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
  await lab.up(3, { agents: 1 });
  const joinToken = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
  await Promise.all(
    ["lab2", "lab3"].map((node) => lab.start(node, { agentArgs: ["--token", joinToken] })),
  );
  const client = new FleetClient(lab, lab.apiToken("lab1"));
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

interface NodeView {
  name: string;
  status: string;
  engineReady: boolean;
}

interface ServiceTasks {
  tasks: { nodeName: string | null; desired: string; state: string }[];
}

const lossReplicas = 3;
const runningOn = (service: ServiceTasks) =>
  service.tasks
    .filter((t) => t.desired === "running" && t.state === "running")
    .map((t) => t.nodeName);

/**
 * A host lost (agent and engine killed, as when a Pi loses power): from the kill to every one of
 * its tasks running again on the other nodes, with default settings.
 */
async function nodeLossOnce(lab: Lab, client: FleetClient): Promise<number> {
  const leader = await client.settledLeader();
  const service = await client.get<ServiceTasks>(leader, "/v1/services/bench-web");
  const victim = nodes.find((n) => n !== leader && runningOn(service).includes(n));
  if (!victim) throw new Error("no node but the leader runs a task of bench-web");
  // lab.kill SIGKILLs every process of the host at once, then waits for them to be gone.
  const killed = performance.now();
  await lab.kill(victim);
  // Polled every 50 ms: the figure is this wait.
  await waitFor(
    "replacement running",
    async () => {
      const now = runningOn(await client.get<ServiceTasks>(leader, "/v1/services/bench-web"));
      return now.length === lossReplicas && !now.includes(victim) ? now : null;
    },
    30_000,
    50,
  );
  const elapsed = performance.now() - killed;
  await lab.start(victim);
  await waitFor(`${victim} ready again`, async () => {
    const list = await client.get<NodeView[]>(leader, "/v1/nodes");
    return list.find((n) => n.name === victim)?.status === "ready" ? list : null;
  });
  return elapsed;
}

async function nodeLoss(lab: Lab, client: FleetClient): Promise<BenchRow> {
  const leader = await client.settledLeader();
  await waitFor("3 nodes with their engines", async () => {
    const list = await client.get<NodeView[]>(leader, "/v1/nodes");
    return list.filter((n) => n.status === "ready" && n.engineReady).length === 3 ? list : null;
  });
  const spec = {
    name: "bench-web",
    replicas: lossReplicas,
    containers: [
      { name: "httpd", image: "shoal-test/busybox:1", command: ["httpd", "-f", "-p", "8080"] },
    ],
  };
  const status = await client.post(leader, "/v1/services", spec);
  if (status !== 201) throw new Error(`creating bench-web answered ${status}`);
  await waitFor("bench-web spread over 3 nodes", async () => {
    const on = runningOn(await client.get<ServiceTasks>(leader, "/v1/services/bench-web"));
    return new Set(on).size === 3 ? on : null;
  });
  const samples: number[] = [];
  for (let round = 0; round < nodeLosses; round++) samples.push(await nodeLossOnce(lab, client));
  console.error(`node loss samples (ms): ${samples.map((s) => Math.round(s)).join(", ")}`);
  const value = median(samples);
  return {
    name: `node loss -> replacement running (median of ${nodeLosses})`,
    value,
    unit: "ms",
    goal: `< ${goals.nodeLossMedianMs} ms`,
    pass: value < goals.nodeLossMedianMs,
  };
}

export async function benchFleet(): Promise<BenchRow[]> {
  const lab = new Lab({ waitSeconds: 45, agentArgs: ["--mdns-interface", "{address}"] });
  try {
    const client = await formFleet(lab);
    const leader = await client.settledLeader();
    const rows = await commitLatency(client, leader);
    rows.push(await throughput(lab, client, leader));
    rows.push(...(await failover(lab, client)));
    rows.push(await nodeLoss(lab, client));
    return rows;
  } finally {
    await lab.down();
  }
}

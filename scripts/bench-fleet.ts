// Benchmarks of a real 3-node fleet on the lab (root only): commit latency through the leader's
// API at concurrency 1, writes per second at concurrency 64, and leader failover: from kill -9 of
// the leader's agent to the first successful write through another node, over 10 kills.
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { waitFor } from "../src/testing/agent-process.ts";
import { Lab, labDataDir } from "../src/testing/lab.ts";
import { type BenchRow, percentile } from "./bench-row.ts";

const nodes = ["lab1", "lab2", "lab3"];
const latencyWrites = 300;
const throughputWorkers = 64;
const throughputSeconds = 5;
const kills = 10;
const goals = { failoverMedianMs: 1000, failoverMaxMs: 2000, writesPerSecond: 3000 };

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
    private readonly token: string,
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

  async cluster(node: string): Promise<ClusterView> {
    const response = await fetch(`${this.lab.base(node)}/v1/cluster`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(3000),
    });
    return (await response.json()) as ClusterView;
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

/** Each worker updates its own service: every write is a Raft entry, fsync'd on a quorum. */
async function throughput(client: FleetClient, leader: string): Promise<BenchRow> {
  for (let w = 0; w < throughputWorkers; w++) {
    const status = await client.post(leader, "/v1/services", service(`tp-${w}`));
    if (status !== 201) throw new Error(`creating tp-${w} answered ${status}`);
  }
  const deadline = performance.now() + throughputSeconds * 1000;
  let done = 0;
  const worker = async (w: number) => {
    while (performance.now() < deadline) {
      const status = await client.send("PATCH", leader, `/v1/services/tp-${w}`, { replicas: 0 });
      if (status !== 200) throw new Error(`a write answered ${status}`);
      done += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: throughputWorkers }, (_, w) => worker(w)));
  const perSecond = done / ((performance.now() - started) / 1000);
  return {
    name: `3 voters: writes/s via API (concurrency ${throughputWorkers})`,
    value: perSecond,
    unit: "writes/s",
    goal: `>= ${goals.writesPerSecond} writes/s`,
    pass: perSecond >= goals.writesPerSecond,
  };
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

export async function benchFleet(): Promise<BenchRow[]> {
  const lab = new Lab({ waitSeconds: 45, agentArgs: ["--mdns-interface", "{address}"] });
  try {
    const client = await formFleet(lab);
    const leader = await client.settledLeader();
    const rows = await commitLatency(client, leader);
    rows.push(await throughput(client, leader));
    rows.push(...(await failover(lab, client)));
    return rows;
  } finally {
    await lab.down();
  }
}

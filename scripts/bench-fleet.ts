// Benchmarks of a real 3-node fleet on the lab (root only): the store against etcd on the same
// nodes (bench-store.ts), leader failover: from
// kill -9 of the leader's agent to the first successful write through another node, over 10
// kills, node loss: from killing a host to its tasks running (and answering HTTP) on the others,
// over 5 losses, and leader host loss: from killing the leader's host to the next placement;
// then the store's growth row on a 10-node lab.
import { readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { limits } from "../src/core/limits.ts";
import { measureLoss, restore } from "../src/testing/failover-timeline.ts";
import { type Lab, labDataDir } from "../src/testing/lab.ts";
import {
  joinLabFleet,
  LabApi,
  mdnsLab,
  runningTasks,
  webContainers,
} from "../src/testing/lab-fleet.ts";
import { waitFor } from "../src/testing/wait.ts";
import { benchIngress } from "./bench-ingress.ts";
import { type BenchRow, median, percentile } from "./bench-row.ts";
import {
  benchGrowth,
  benchTlsCost,
  measureEtcd,
  measureShoal,
  type StoreFigures,
  storeRows,
} from "./bench-store.ts";

const nodes = ["lab1", "lab2", "lab3"];
const kills = 10;
const nodeLosses = 5;
const leaderLosses = 3;
const goals = {
  failoverMedianMs: 1000,
  failoverMaxMs: 2000,
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

export class FleetClient {
  // node:https with keep-alive: the load generator shares the machine's two cores with the
  // fleet, and fetch costs it about three times as much per request. Any node of the CA answers.
  private readonly agent: https.Agent;

  constructor(
    private readonly lab: Lab,
    readonly token: string,
  ) {
    const ca = readFileSync(join(labDataDir("lab1"), "ca.pem"), "utf8");
    this.agent = new https.Agent({
      keepAlive: true,
      timeout: limits.peerIdleSocketMs,
      maxSockets: 64,
      ca: [ca],
      checkServerIdentity: () => undefined,
    });
  }

  send(method: string, node: string, path: string, body: unknown, timeoutMs = 8000) {
    const text = JSON.stringify(body);
    return new Promise<number>((resolve, reject) => {
      const request = https.request(
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
    const response = await this.lab.fetch(node, path, {
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

/** etcd first, on lab1..lab3 with no agent running, then shoal's fleet on the same nodes. */
async function etcdThenFleet(lab: Lab): Promise<{ client: FleetClient; etcd: StoreFigures }> {
  await lab.up(nodes.length, { agents: 0 });
  const etcd = await measureEtcd(nodes);
  return { client: await startFleet(lab), etcd };
}

/** shoal's 3-node fleet on a lab that is up with no agent running; resolves once it is settled. */
export async function startFleet(lab: Lab): Promise<FleetClient> {
  await lab.start("lab1");
  const api = await joinLabFleet(lab, nodes.length);
  const client = new FleetClient(lab, api.token);
  await client.settledLeader();
  return client;
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

/** `count` leader kills, each from kill -9 to a write through another node, in ms. */
export async function failoverSamples(
  lab: Lab,
  client: FleetClient,
  count: number,
): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; round < count; round++) samples.push(await failoverOnce(lab, client, round));
  return samples;
}

async function failover(lab: Lab, client: FleetClient): Promise<BenchRow[]> {
  const samples = await failoverSamples(lab, client, kills);
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
export interface LossSamples {
  readonly running: number[];
  readonly answering: number[];
  readonly placed: number[];
}

/** `workers` worker hosts lost, then `leaders` leader hosts, with bench-web spread over three. */
export async function lossSamples(
  lab: Lab,
  client: FleetClient,
  counts: { workers: number; leaders: number },
): Promise<LossSamples> {
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
  const samples: LossSamples = { running: [], answering: [], placed: [] };
  for (let round = 0; round < counts.workers; round++) {
    const times = await loseHost(lab, client, api, "worker");
    samples.running.push(times.runningMs ?? Number.NaN);
    samples.answering.push(times.answeringMs ?? Number.NaN);
  }
  for (let round = 0; round < counts.leaders; round++) {
    samples.placed.push((await loseHost(lab, client, api, "leader")).placedMs ?? Number.NaN);
  }
  return samples;
}

async function nodeLoss(lab: Lab, client: FleetClient): Promise<BenchRow[]> {
  const { running, answering, placed } = await lossSamples(lab, client, {
    workers: nodeLosses,
    leaders: leaderLosses,
  });
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
  let threeNodeP50Ms: number;
  const rows: BenchRow[] = [];
  try {
    const { client, etcd } = await etcdThenFleet(lab);
    const leader = await client.settledLeader();
    const shoal = await measureShoal(lab, new LabApi(lab, client.token), leader);
    console.error(`shoal: ${JSON.stringify(shoal)}\netcd: ${JSON.stringify(etcd)}`);
    rows.push(...storeRows(shoal, etcd));
    threeNodeP50Ms = shoal.update.p50Ms;
    rows.push(...(await benchTlsCost(lab, new LabApi(lab, client.token))));
    rows.push(...(await failover(lab, client)));
    rows.push(...(await nodeLoss(lab, client)));
    rows.push(...(await benchIngress(lab, client)));
  } finally {
    await lab.down();
  }
  rows.push(...(await benchGrowth(threeNodeP50Ms)));
  return rows;
}

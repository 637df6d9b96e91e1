// The store at its limits, on the lab (root only): shoal's write path against etcd's, both on the
// same 3 lab nodes with the same load generator (wrk, from Debian's packages), one after the
// other, so neither runs beside the other: an update and a create at concurrency 1 (p50, p99),
// writes/s at concurrency 64; then the same update on a 10-node fleet (5 voters, 5 learners), to
// see what growth costs. etcd is Debian's etcd-server (3.4), through its HTTP gateway.
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Lab, labNamespace, nodeAddress } from "../src/testing/lab.ts";
import { formLabFleet, type LabApi, mdnsLab } from "../src/testing/lab-fleet.ts";
import { waitFor } from "../src/testing/wait.ts";
import { type BenchRow, median } from "./bench-row.ts";

const execFileAsync = promisify(execFile);

const goals = {
  /** Concurrency-1 p50 of an update and of a create, ms. */
  writeP50Ms: 2,
  /** shoal's writes/s at concurrency 64 over etcd's. */
  throughputOverEtcd: 1.5,
  /** A 10-node fleet's concurrency-1 update p50 over a 3-node fleet's. */
  growthRatio: 1.2,
  /** The share of writes/s at concurrency 64 that mutual TLS may cost against plain HTTP. */
  tlsCostMax: 0.15,
};
const connectionsMax = 64;
/** The learners' CPU priority in the growth row (niceLearners). */
const learnerNice = 19;
const seconds = { warmup: 8, latency: 10, create: 5, throughput: 5 };
/** Throughput runs per wire in benchTlsCost. */
const tlsCostRounds = 3;

export interface WrkFigures {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface StoreFigures {
  update: WrkFigures;
  create: WrkFigures;
  throughput: WrkFigures;
}

/** The path of `command`, installed from Debian's package `pkg` when it is missing. */
export function ensureDebianTool(command: string, pkg: string): string {
  const found = () =>
    spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).stdout.trim();
  if (found()) return found();
  console.error(`installing ${pkg} (Debian's package) for the benchmarks`);
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "-q", pkg], { stdio: "inherit" }).status === 0;
  if (!install()) {
    spawnSync("apt-get", ["update", "-q"], { stdio: "inherit" });
    if (!install()) throw new Error(`${command} is missing and apt-get could not install ${pkg}`);
  }
  return found();
}

/** One wrk run of `script` against `base`; throws if any request failed. */
export async function wrkRun(
  base: string,
  script: string,
  options: { connections: number; seconds: number; env?: Record<string, string> },
): Promise<WrkFigures> {
  const wrk = ensureDebianTool("wrk", "wrk");
  const args = [
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "8s",
    "-s",
    join(import.meta.dirname, script),
    base,
  ];
  const env = {
    ...process.env,
    SHOAL_SERVICES: String(connectionsMax),
    SHOAL_BENCH_SCRIPTS: import.meta.dirname,
    ...options.env,
  };
  const { stdout } = await execFileAsync(wrk, args, { env });
  const line = stdout.split("\n").find((l) => l.startsWith("shoal-bench "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const field = (name: string) =>
    Number(new RegExp(`${name}=(\\d+)`).exec(line)?.[1] ?? Number.NaN);
  if (field("non2xx") > 0 || field("socket_errors") > 0) {
    throw new Error(`requests failed under load (${script}): ${line}`);
  }
  return {
    perSecond: field("requests") / (field("duration_us") / 1e6),
    p50Ms: field("p50_us") / 1000,
    p99Ms: field("p99_us") / 1000,
  };
}

/** The 64 services the update runs PATCH, created once. */
async function createUpdateTargets(api: LabApi, leader: string): Promise<void> {
  for (let n = 0; n < connectionsMax; n++) {
    await api.call(leader, "POST", "/v1/services", {
      name: `tp-${n}`,
      replicas: 0,
      containers: [{ name: "c", image: "shoal-test/busybox:1" }],
    });
  }
}

/** shoal's figures through the leader's API; a warm-up run first (the JIT is cold at start). */
export async function measureShoal(lab: Lab, api: LabApi, leader: string): Promise<StoreFigures> {
  await createUpdateTargets(api, leader);
  const base = lab.base(leader);
  const env = { SHOAL_TOKEN: api.token };
  const updates = (connections: number, time: number) =>
    wrkRun(base, "bench-writes.lua", { connections, seconds: time, env });
  await updates(connectionsMax, seconds.warmup);
  const update = await updates(1, seconds.latency);
  const throughput = await updates(connectionsMax, seconds.throughput);
  const create = await wrkRun(base, "bench-creates.lua", {
    connections: 1,
    seconds: seconds.create,
    env: { ...env, SHOAL_PREFIX: `create-${Date.now().toString(36)}` },
  });
  return { update, create, throughput };
}

/** A 3-member etcd on lab1..lab3's namespaces, its data beside each node's; stopped by `stop`. */
async function startEtcd(nodes: readonly string[]) {
  const etcd = ensureDebianTool("etcd", "etcd-server");
  const cluster = nodes.map((n) => `${n}=http://${nodeAddress(n)}:2380`).join(",");
  const members: ChildProcess[] = nodes.map((node) => {
    const address = nodeAddress(node);
    const dataDir = `/var/lib/shoal-lab/${node}/etcd`;
    mkdirSync(dataDir, { recursive: true });
    return spawn(
      "ip",
      [
        ...["netns", "exec", labNamespace(node), etcd, "--name", node, "--data-dir", dataDir],
        ...["--listen-client-urls", `http://${address}:2379`],
        ...["--advertise-client-urls", `http://${address}:2379`],
        ...["--listen-peer-urls", `http://${address}:2380`],
        ...["--initial-advertise-peer-urls", `http://${address}:2380`],
        ...["--initial-cluster", cluster, "--initial-cluster-state", "new"],
        ...["--log-level", "error"],
      ],
      { stdio: "ignore" },
    );
  });
  const stop = () => {
    for (const member of members) member.kill("SIGKILL");
  };
  try {
    const leader = await waitFor("etcd's leader", () => etcdLeader(nodes), 30_000);
    return { leader, stop };
  } catch (error) {
    stop();
    throw error;
  }
}

/** The node whose etcd member leads, once one does. */
async function etcdLeader(nodes: readonly string[]): Promise<string | null> {
  for (const node of nodes) {
    const status = await fetch(`http://${nodeAddress(node)}:2379/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(1000),
    })
      .then((r) => r.json() as Promise<{ header?: { member_id?: string }; leader?: string }>)
      .catch(() => null);
    if (status?.leader && status.leader !== "0" && status.header?.member_id === status.leader) {
      return node;
    }
  }
  return null;
}

/** etcd's figures on the lab's first three nodes, before any shoal agent runs there. */
export async function measureEtcd(nodes: readonly string[]): Promise<StoreFigures> {
  const { leader, stop } = await startEtcd(nodes);
  try {
    const base = `http://${nodeAddress(leader)}:2379`;
    const puts = (connections: number, time: number) =>
      wrkRun(base, "bench-etcd.lua", { connections, seconds: time });
    await puts(connectionsMax, seconds.warmup);
    const update = await puts(1, seconds.latency);
    const throughput = await puts(connectionsMax, seconds.throughput);
    // etcd has no create apart from a put: a put of a new key each time is the closest.
    return { update, create: update, throughput };
  } finally {
    stop();
  }
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

const ms = (value: number) => `${value.toFixed(2)} ms`;

/** Rows of shoal's figures, each with etcd's beside it and the ratio, in one table. */
export function storeRows(shoal: StoreFigures, etcd: StoreFigures): BenchRow[] {
  const latency = (what: string, mine: WrkFigures, theirs: WrkFigures): BenchRow[] => [
    {
      name: `3 voters over mutual TLS: ${what} p50, concurrency 1 (etcd put over plain HTTP: ${ms(theirs.p50Ms)}, ${ratio(mine.p50Ms, theirs.p50Ms)})`,
      value: mine.p50Ms,
      unit: "ms",
      goal: `<= ${goals.writeP50Ms} ms`,
      pass: mine.p50Ms <= goals.writeP50Ms,
    },
    {
      name: `3 voters over mutual TLS: ${what} p99, concurrency 1 (etcd put over plain HTTP: ${ms(theirs.p99Ms)}, ${ratio(mine.p99Ms, theirs.p99Ms)})`,
      value: mine.p99Ms,
      unit: "ms",
      goal: "(measured)",
      pass: true,
    },
  ];
  const over = shoal.throughput.perSecond / etcd.throughput.perSecond;
  return [
    ...latency("update (PATCH a service)", shoal.update, etcd.update),
    ...latency("create (POST a service)", shoal.create, etcd.create),
    {
      name: `3 voters over mutual TLS: writes/s, concurrency ${connectionsMax} (etcd over plain HTTP: ${Math.round(etcd.throughput.perSecond)}/s, ${over.toFixed(2)}x)`,
      value: shoal.throughput.perSecond,
      unit: "writes/s",
      goal: `>= ${goals.throughputOverEtcd}x etcd's`,
      pass: over >= goals.throughputOverEtcd,
    },
  ];
}

/**
 * Lowers the CPU priority of every thread of the learners' agents. On a real fleet each node has
 * its own CPU; on the lab, 10 agents share 2 cores, and the learners' applying would take the
 * voters' CPU, which only commits wait for. Returns the learners' names.
 */
async function niceLearners(lab: Lab, api: LabApi, leader: string): Promise<string[]> {
  const { voters } = await api.get<{ voters: string[] }>(leader, "/v1/cluster");
  const learners = (await api.nodes(leader))
    .filter((n) => !voters.includes(n.id))
    .map((n) => n.name);
  for (const status of await lab.status()) {
    const pid = status.agent.pid;
    if (!learners.includes(status.name) || pid === null) continue;
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      spawnSync("renice", ["-n", String(learnerNice), "-p", thread], { stdio: "ignore" });
    }
  }
  return learners;
}

/**
 * The update's concurrency-1 p50 on a fleet of 10 nodes (5 voters, 5 learners): the first 3 run
 * an engine, the others their agent alone, so the 2 cores go to the store, not to engines; then
 * again with the learners' agents at nice 19 (niceLearners), the row's figure.
 */
export async function benchGrowth(threeNodeP50Ms: number): Promise<BenchRow[]> {
  const count = 10;
  const lab = mdnsLab();
  try {
    const api = await formLabFleet(lab, count, { engines: 3 });
    const leader = await api.leaderName("lab1");
    await createUpdateTargets(api, leader);
    const env = { SHOAL_TOKEN: api.token };
    const run = (connections: number, time: number) =>
      wrkRun(lab.base(leader), "bench-writes.lua", { connections, seconds: time, env });
    await run(connectionsMax, seconds.warmup);
    const shared = await run(1, seconds.latency);
    const learners = await niceLearners(lab, api, leader);
    console.error(`growth: learners ${learners.join(", ")} at nice ${learnerNice}`);
    const { p50Ms } = await run(1, seconds.latency);
    const over = p50Ms / threeNodeP50Ms;
    const sharedOver = shared.p50Ms / threeNodeP50Ms;
    const row = (name: string, value: number, ratio: number): BenchRow => ({
      name: `${count} nodes (5 voters): update p50, concurrency 1, ${name} (3 nodes: ${ms(threeNodeP50Ms)}, ${ratio.toFixed(2)}x)`,
      value,
      unit: "ms",
      goal: `<= ${goals.growthRatio}x 3 nodes'`,
      pass: ratio <= goals.growthRatio,
    });
    return [
      row("learners at nice 19", p50Ms, over),
      { ...row("every agent at nice 0", shared.p50Ms, sharedOver), goal: "(measured)", pass: true },
    ];
  } finally {
    await lab.down();
  }
}

/**
 * Every agent of the lab killed and started again at once, over plain HTTP or mutual TLS (the
 * same data dirs); resolves with the leader once every node is ready again.
 */
async function restartAgents(lab: Lab, api: LabApi, plain: boolean): Promise<string> {
  for (const status of await lab.status()) {
    if (status.agent.alive && status.agent.pid !== null) process.kill(status.agent.pid, "SIGKILL");
  }
  await waitFor("every agent gone", async () =>
    (await lab.status()).every((status) => !status.agent.alive),
  );
  lab.plainHttp = plain;
  for (const node of lab.nodes) await lab.start(node);
  // Every node names the same leader, and that leader sees every node ready.
  return waitFor("one leader and every node ready", async () => {
    const named = await Promise.all(lab.nodes.map((node) => api.leaderName(node).catch(() => "")));
    const leader = named[0];
    if (!leader || named.some((name) => name !== leader)) return null;
    const list = await api.nodes(leader).catch(() => []);
    return list.length === lab.nodes.length && list.every((n) => n.status === "ready")
      ? leader
      : null;
  });
}

/**
 * What mutual TLS costs the store: writes/s at concurrency 64 on the same 3 nodes and data,
 * the agents restarted in turn over mutual TLS and over plain HTTP (`--bench-plain-http`, which
 * exists for this row alone), so that the machine's drift falls on both alike; medians of
 * `tlsCostRounds` each. Leaves the fleet on mutual TLS.
 */
export async function benchTlsCost(lab: Lab, api: LabApi): Promise<BenchRow[]> {
  const figures = { tls: [] as number[], plain: [] as number[] };
  const env = { SHOAL_TOKEN: api.token };
  try {
    for (let round = 0; round < tlsCostRounds * 2; round++) {
      const plain = round % 2 === 1;
      const leader = await restartAgents(lab, api, plain);
      const run = (time: number) =>
        wrkRun(lab.base(leader), "bench-writes.lua", {
          connections: connectionsMax,
          seconds: time,
          env,
        });
      await run(seconds.warmup);
      (plain ? figures.plain : figures.tls).push((await run(seconds.throughput)).perSecond);
    }
  } finally {
    // Back on mutual TLS for the rows after this one; a failure here must not hide the first.
    if (lab.plainHttp) {
      await restartAgents(lab, api, false).catch((error) =>
        console.error(`could not put the fleet back on mutual TLS: ${error}`),
      );
    }
  }
  console.error(`writes/s over mutual TLS: ${figures.tls.map(Math.round).join(", ")}`);
  console.error(`writes/s over plain HTTP: ${figures.plain.map(Math.round).join(", ")}`);
  const tls = median(figures.tls);
  const plain = median(figures.plain);
  const cost = 1 - tls / plain;
  return [
    {
      name: `3 voters: what TLS costs writes/s at concurrency ${connectionsMax}, wrk to the leader and mutual between members, wrk on the same cores (plain HTTP, bench only: ${Math.round(plain)}/s; TLS: ${Math.round(tls)}/s; medians of ${tlsCostRounds}, taken in turn)`,
      value: Number((cost * 100).toFixed(1)),
      unit: "%",
      goal: `<= ${goals.tlsCostMax * 100} %`,
      pass: cost <= goals.tlsCostMax,
    },
  ];
}

export { goals as storeGoals };

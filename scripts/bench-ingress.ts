// The ingress rows of `npm run bench`: requests per second and added p50 latency through another
// node's ingress port against requests straight to the task's host port (wrk, taken in turn in
// one run), in HTTP and in TCP mode; and the requests that fail while a worker's host dies under
// a client of a node that runs none of the service's tasks.
import { IngressClient } from "../src/testing/ingress-client.ts";
import { type Lab, nodeAddress } from "../src/testing/lab.ts";
import { LabApi, type LabService, runningTasks } from "../src/testing/lab-fleet.ts";
import { waitFor } from "../src/testing/wait.ts";
import type { FleetClient } from "./bench-fleet.ts";
import { type BenchRow, median } from "./bench-row.ts";
import { wrkRun } from "./bench-store.ts";

const nodes = ["lab1", "lab2", "lab3"];
const rounds = 3;
const connections = 8;
const seconds = 4;
const losses = 3;
const goals = { throughputRatio: 0.8, addedP50Ms: 1, failed: 0 };
const httpd = [
  {
    name: "httpd",
    image: "shoal-test/busybox:1",
    command: ["httpd", "-f", "-p", "80", "-h", "/www"],
  },
];

interface ServiceWithIngress extends LabService {
  ingress: { port: number; nodes: { name: string; listening: boolean }[] }[];
}

export async function benchIngress(lab: Lab, client: FleetClient): Promise<BenchRow[]> {
  const api = new LabApi(lab, client.token);
  const leader = await client.settledLeader();
  const [target, entry] = nodes.filter((n) => n !== leader) as [string, string];
  const rows = [
    ...(await throughput(api, leader, target, entry, "http", 8080)),
    ...(await throughput(api, leader, target, entry, "tcp", 8081)),
  ];
  rows.push(await lossRow(lab, api, client, entry));
  return rows;
}

/** Creates a service with one ingress port and waits until it runs and `entry` listens. */
async function serviceOn(
  api: LabApi,
  leader: string,
  spec: { name: string; replicas: number; constraint: string; port: number; protocol: string },
  entry: string,
): Promise<ServiceWithIngress> {
  await api.call(leader, "POST", "/v1/services", {
    name: spec.name,
    replicas: spec.replicas,
    containers: httpd,
    placement: { constraints: [spec.constraint], rebalance: true },
    ingress: [{ port: spec.port, containerPort: 80, protocol: spec.protocol }],
  });
  return waitFor(`${spec.name} to run, and ${entry} to listen`, async () => {
    const service = await api.get<ServiceWithIngress>(leader, `/v1/services/${spec.name}`);
    const listens = service.ingress[0]?.nodes.some((n) => n.name === entry && n.listening);
    return runningTasks(service).length === spec.replicas && listens ? service : null;
  });
}

async function throughput(
  api: LabApi,
  leader: string,
  target: string,
  entry: string,
  protocol: "http" | "tcp",
  port: number,
): Promise<BenchRow[]> {
  const name = `bench-in-${protocol}`;
  const constraint = `name == ${target}`;
  const service = await serviceOn(
    api,
    leader,
    { name, replicas: 1, constraint, port, protocol },
    entry,
  );
  const hostPort = runningTasks(service)[0]?.containers[0]?.ports[0]?.host;
  if (!hostPort) throw new Error(`${name}'s task publishes no port`);
  const direct = `http://${nodeAddress(target)}:${hostPort}/`;
  const ingress = `http://${nodeAddress(entry)}:${port}/`;
  const figures = {
    direct: [] as number[],
    ingress: [] as number[],
    directP50: [] as number[],
    ingressP50: [] as number[],
  };
  for (let round = 0; round < rounds; round++) {
    const straight = await wrkRun(direct, "bench-get.lua", { connections, seconds });
    const through = await wrkRun(ingress, "bench-get.lua", { connections, seconds });
    figures.direct.push(straight.perSecond);
    figures.directP50.push(straight.p50Ms);
    figures.ingress.push(through.perSecond);
    figures.ingressP50.push(through.p50Ms);
  }
  await api.call(leader, "DELETE", `/v1/services/${name}`);
  console.error(`ingress ${protocol}: ${JSON.stringify(figures)}`);
  const ratio = median(figures.ingress) / median(figures.direct);
  const added = median(figures.ingressP50) - median(figures.directP50);
  const how = `wrk -c${connections} from the host, ${entry} forwarding to a task on ${target}; medians of ${rounds}, taken in turn`;
  return [
    {
      name: `ingress ${protocol}: requests/s through another node's port, of straight to the task's host port (${how}: ingress ${Math.round(median(figures.ingress))}/s, direct ${Math.round(median(figures.direct))}/s)`,
      value: ratio,
      unit: "x",
      goal: `>= ${goals.throughputRatio}x`,
      pass: ratio >= goals.throughputRatio,
    },
    {
      name: `ingress ${protocol}: p50 latency added to requests straight to the task (ingress ${median(figures.ingressP50).toFixed(2)} ms, direct ${median(figures.directP50).toFixed(2)} ms)`,
      value: added,
      unit: "ms",
      goal: `< ${goals.addedP50Ms} ms`,
      pass: added < goals.addedP50Ms,
    },
  ];
}

/**
 * A client on `entry`, which runs none of the service's two tasks, while the host of the other
 * worker (not the leader) is killed `losses` times, each time until its task runs elsewhere.
 */
async function lossRow(
  lab: Lab,
  api: LabApi,
  fleet: FleetClient,
  entry: string,
): Promise<BenchRow> {
  const leader = await fleet.settledLeader();
  const victim = nodes.find((n) => n !== leader && n !== entry) ?? "lab3";
  const name = "bench-in-loss";
  const spec = { name, replicas: 2, constraint: `name != ${entry}`, port: 8082, protocol: "http" };
  await serviceOn(api, leader, spec, entry);
  const totals = { sent: 0, failed: 0, longestGapMs: 0 };
  for (let round = 0; round < losses; round++) {
    await waitFor(`${name} on ${victim} and ${leader}`, async () => {
      const service = await api.service(leader, name);
      return new Set(runningTasks(service).map((t) => t.nodeName)).size === 2;
    });
    const running = new IngressClient(nodeAddress(entry), spec.port).start();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await lab.kill(victim);
    await waitFor(`${name} to run without ${victim}`, async () => {
      const service = await api.service(leader, name);
      const away = runningTasks(service).filter((t) => t.nodeName !== victim);
      return away.length === 2;
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stats = await running.stop();
    console.error(`ingress during ${victim}'s loss: ${JSON.stringify(stats)}`);
    totals.sent += stats.sent;
    totals.failed += stats.failed;
    totals.longestGapMs = Math.max(totals.longestGapMs, stats.longestGapMs);
    await lab.start(victim);
    await waitFor(`${victim} ready again`, async () => {
      const list = await api.nodes(leader);
      return list.find((n) => n.name === victim)?.status === "ready";
    });
  }
  await api.call(leader, "DELETE", `/v1/services/${name}`);
  return {
    name: `ingress: failed new requests while a worker's host dies (${losses} losses, a client of ${entry}, which runs none of the tasks: ${totals.sent} sent, longest gap ${Math.round(totals.longestGapMs)} ms)`,
    value: totals.failed,
    unit: "requests",
    goal: `= ${goals.failed}`,
    pass: totals.failed === goals.failed,
  };
}

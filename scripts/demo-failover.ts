// The failover demo: on a 3-node lab (brought up here, or the one already running), a 3-replica
// web service loses (a) the leader's host, (b) a worker's host, (c) a node to a partition; each
// comes back afterwards. A live timeline shows every milestone as the fleet reaches it, a client
// asks the service's ingress port on a surviving node all through each step, and a summary table
// ends the run. Run it as root: `bash scripts/demo-failover.sh [--keep]`.

import {
  type LossKind,
  type LossTimes,
  measureLoss,
  restore,
} from "../src/testing/failover-timeline.ts";
import { IngressClient, type IngressClientStats } from "../src/testing/ingress-client.ts";
import { type Lab, nodeAddress } from "../src/testing/lab.ts";
import {
  formLabFleet,
  LabApi,
  mdnsLab,
  runningTasks,
  webContainers,
} from "../src/testing/lab-fleet.ts";
import { waitFor } from "../src/testing/wait.ts";

const nodes = ["lab1", "lab2", "lab3"];
const serviceName = "demo-web";
const replicas = 3;
const ingressPort = 8080;
const keep = process.argv.includes("--keep");

interface Step {
  title: string;
  kind: LossKind;
  pick: (leader: string) => string;
}

const steps: Step[] = [
  { title: "kill the leader's host", kind: "kill", pick: (leader) => leader },
  { title: "kill a worker's host", kind: "kill", pick: (leader) => after(leader, 1) },
  { title: "partition a worker", kind: "partition", pick: (leader) => after(leader, 2) },
];

/** The node `offset` places after `node` in lab order: a stable, different choice per step. */
function after(node: string, offset: number): string {
  return nodes[(nodes.indexOf(node) + offset) % nodes.length] ?? "lab3";
}

const clock = (ms: number) => `+${(ms / 1000).toFixed(3).padStart(7)} s`;
const say = (text: string) => process.stdout.write(`${text}\n`);

async function fleet(lab: Lab): Promise<{ api: LabApi; ours: boolean }> {
  const running = await lab.status().catch(() => []);
  if (running.length >= 3 && running.slice(0, 3).every((node) => node.healthy)) {
    say("using the lab that is already running (lab1..lab3)");
    return { api: new LabApi(lab, lab.apiToken("lab1")), ours: false };
  }
  say("bringing up a 3-node lab: network namespaces, a Docker engine and a shoal agent each ...");
  return { api: await formLabFleet(lab, 3), ours: true };
}

async function deploy(api: LabApi): Promise<void> {
  await api.call("lab1", "DELETE", `/v1/services/${serviceName}`).catch(() => {});
  await api.call("lab1", "POST", "/v1/services", {
    name: serviceName,
    replicas,
    containers: webContainers(),
    // A node that comes back gets its task again, so each step starts with one task per node.
    placement: { rebalance: true },
    ingress: [{ port: ingressPort, containerPort: 8080, protocol: "http" }],
  });
  await spread(api);
}

/** Waits until the service runs one task on every node (a returned node gets its task back). */
async function spread(api: LabApi): Promise<void> {
  const on = await waitFor(
    `${serviceName} to spread`,
    async () => {
      const service = await api.service("lab1", serviceName);
      const tasks = runningTasks(service);
      const nodes = new Set(tasks.map((t) => t.nodeName));
      const active = service.tasks.filter((t) => t.desired === "running").length;
      return tasks.length === replicas && nodes.size === replicas && active === replicas && nodes;
    },
    60_000,
  );
  say(`${serviceName}: ${replicas} tasks running, one per node (${[...on].sort().join(", ")})`);
}

interface StepResult {
  times: LossTimes;
  client: IngressClientStats;
}

async function runStep(lab: Lab, api: LabApi, step: Step): Promise<StepResult> {
  await spread(api);
  const leader = await api.leaderName("lab1").catch(() => api.leaderName("lab2"));
  const victim = step.pick(leader);
  const observer = nodes.find((n) => n !== victim && n !== leader) ?? leader;
  const role = victim === leader ? "leader" : "worker";
  say("");
  say(`== ${step.title}: ${victim} (${role}); watching from ${observer}`);
  say(
    `${clock(0)}  ${step.kind === "kill" ? "killing every process of" : "partitioning"} ${victim}`,
  );
  const plan = {
    kind: step.kind,
    victim,
    observer,
    service: serviceName,
    replicas,
    onMilestone: (elapsed: number, what: string) => say(`${clock(elapsed)}  ${what}`),
  };
  const client = new IngressClient(nodeAddress(observer), ingressPort).start();
  const times = await measureLoss(lab, api, plan);
  const back = await restore(lab, api, plan);
  const how = step.kind === "kill" ? "started again" : "healed";
  say(`           ${victim} ${how}: ready after ${Math.round(back)} ms`);
  await settle(api);
  const stats = await client.stop();
  say(
    `           a client of ${observer}:${ingressPort}: ${stats.sent} requests, ${stats.failed} failed`,
  );
  return { times, client: stats };
}

/** Waits until the service runs exactly its replicas again, none twice, after a node returns. */
async function settle(api: LabApi): Promise<void> {
  await waitFor(`${serviceName} to settle`, async () => {
    const service = await api.service("lab1", serviceName);
    const active = service.tasks.filter((t) => t.desired === "running");
    return active.length === replicas && runningTasks(service).length === replicas;
  });
  say(`           ${serviceName} runs exactly ${replicas} tasks`);
}

function summary(rows: { step: Step; result: StepResult }[]): void {
  const cell = (ms: number | null) => (ms === null ? "-" : `${Math.round(ms)} ms`);
  const header = ["step", "new leader", "marked down", "placed", "running", "answering HTTP"];
  header.push("ingress sent", "failed", "longest gap");
  const body = rows.map(({ step, result: { times, client } }) => [
    step.title,
    cell(times.newLeaderMs),
    cell(times.markedDownMs),
    cell(times.placedMs),
    cell(times.runningMs),
    cell(times.answeringMs),
    String(client.sent),
    String(client.failed),
    cell(client.longestGapMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  say("");
  say("== summary: milliseconds from the loss, as seen from a surviving node");
  say(line(header));
  say(line(widths.map((w) => "-".repeat(w))));
  for (const row of body) say(line(row));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root: run it with sudo");
  const lab = mdnsLab();
  const { api, ours } = await fleet(lab);
  try {
    await deploy(api);
    const rows: { step: Step; result: StepResult }[] = [];
    for (const step of steps) rows.push({ step, result: await runStep(lab, api, step) });
    summary(rows);
  } finally {
    if (ours && !keep) {
      say("");
      say("taking the lab down (--keep leaves it running)");
      await lab.down();
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

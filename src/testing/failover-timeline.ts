// Measures one failover on the lab as a person would watch it: a host is killed or partitioned,
// and an observer on a surviving node records when a new leader holds the lease (if the lost node
// led), when the lost node is marked down, when its tasks are placed elsewhere, when they run,
// and when they answer HTTP on their published ports. Shared by `scripts/demo-failover.sh` and
// `npm run bench`, so the demo's table and the benchmark's rows are the same figures.

import { type Lab, labIndex, nodeAddress } from "./lab.ts";
import type { LabApi, LabService, LabTask } from "./lab-fleet.ts";
import { waitFor } from "./wait.ts";

export type LossKind = "kill" | "partition";

export interface LossTimes {
  newLeaderMs: number | null;
  markedDownMs: number | null;
  placedMs: number | null;
  runningMs: number | null;
  answeringMs: number | null;
}

export interface LossPlan {
  kind: LossKind;
  victim: string;
  /** A node that stays up and in the majority: it answers every poll. */
  observer: string;
  service: string;
  /** The desired count of `service`. */
  replicas: number;
  /** Called once for each milestone as it is reached, for a live timeline. */
  onMilestone?: (elapsedMs: number, what: string) => void;
  /** How long to wait for the last milestone before giving up. */
  timeoutMs?: number;
}

const pollMs = 25;

/** Tasks desired running that are not on the lost node. */
function elsewhere(service: LabService, victim: string): LabTask[] {
  return service.tasks.filter(
    (t) => t.desired === "running" && t.nodeName !== null && t.nodeName !== victim,
  );
}

/** Whether a task's published port answers HTTP on its node's lab address. */
async function answers(task: LabTask): Promise<boolean> {
  const port = task.containers[0]?.ports[0]?.host;
  if (!port || !task.nodeName) return false;
  const url = `http://${nodeAddress(labIndex(task.nodeName))}:${port}/`;
  const response = await fetch(url, { signal: AbortSignal.timeout(1000) }).catch(() => null);
  return response !== null;
}

async function allAnswer(tasks: readonly LabTask[]): Promise<boolean> {
  const results = await Promise.all(tasks.map(answers));
  return results.every(Boolean);
}

/** Kills or partitions `victim`, then polls until its tasks answer elsewhere. */
export async function measureLoss(lab: Lab, api: LabApi, plan: LossPlan): Promise<LossTimes> {
  const wasLeader = (await api.leaderName(plan.observer)) === plan.victim;
  const times: LossTimes = {
    newLeaderMs: null,
    markedDownMs: null,
    placedMs: null,
    runningMs: null,
    answeringMs: null,
  };
  const started = performance.now();
  const note = (key: keyof LossTimes, what: string) => {
    if (times[key] !== null) return;
    const elapsed = performance.now() - started;
    times[key] = elapsed;
    plan.onMilestone?.(elapsed, what);
  };
  const loss = plan.kind === "kill" ? lab.kill(plan.victim) : lab.partition(plan.victim);
  const deadline = started + (plan.timeoutMs ?? 60_000);
  while (times.answeringMs === null) {
    if (performance.now() > deadline) {
      await loss;
      throw new Error(`no failover of ${plan.victim} within ${plan.timeoutMs ?? 60_000} ms`);
    }
    await pollOnce(api, plan, wasLeader, times, note);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  await loss;
  return times;
}

async function pollOnce(
  api: LabApi,
  plan: LossPlan,
  wasLeader: boolean,
  times: LossTimes,
  note: (key: keyof LossTimes, what: string) => void,
): Promise<void> {
  try {
    if (wasLeader && times.newLeaderMs === null) {
      const leader = await api.leaderName(plan.observer).catch(() => null);
      if (leader !== null && leader !== plan.victim) note("newLeaderMs", `new leader: ${leader}`);
      if (times.newLeaderMs === null) return;
    }
    if (times.markedDownMs === null) {
      const nodes = await api.nodes(plan.observer);
      if (nodes.find((n) => n.name === plan.victim)?.status !== "down") return;
      note("markedDownMs", `${plan.victim} marked down`);
    }
    const service = await api.service(plan.observer, plan.service);
    const moved = elsewhere(service, plan.victim);
    if (moved.length < plan.replicas) return;
    const where = [...new Set(moved.map((t) => t.nodeName))].join(", ");
    note("placedMs", `${plan.replicas} task(s) placed on ${where}`);
    if (!moved.every((t) => t.state === "running")) return;
    note("runningMs", "every task running");
    if (await allAnswer(moved)) note("answeringMs", "every task answers HTTP");
  } catch {
    // A poll that fails (a leader change under way) is simply taken again.
  }
}

/** Brings the lost node back (start or heal) and waits until the fleet sees it ready. */
export async function restore(lab: Lab, api: LabApi, plan: LossPlan): Promise<number> {
  const started = performance.now();
  if (plan.kind === "kill") await lab.start(plan.victim);
  else await lab.heal();
  await waitFor(
    `${plan.victim} ready again`,
    async () => {
      const nodes = await api.nodes(plan.observer);
      return nodes.find((n) => n.name === plan.victim)?.status === "ready";
    },
    60_000,
    pollMs * 4,
  );
  return performance.now() - started;
}

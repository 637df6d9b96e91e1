// Tasks that fit on no node, gathered over one evaluation so that a service gets at most one
// E_NO_CAPACITY event per evaluation, a summary, rather than one per task (a one-off task, which
// belongs to no service, is reported on its own).
import { hostPathAllowed } from "../core/host-paths.ts";
import { describeDemand, type TaskDemand } from "./demand.ts";
import type { NodeUsage } from "./node-usage.ts";

export interface Waiting {
  /** The service, or null for a one-off task. */
  service: string | null;
  demand: TaskDemand;
  count: number;
  /** Whether a waiting task's reason already carries an earlier E_NO_CAPACITY event. */
  reported: boolean;
  /** Whether this plan creates tasks that wait: news worth a report even when reported. */
  createdWaiting: boolean;
  /** The first waiting task whose reason lacks a report: the one the event names. */
  unreported: string | null;
}

/**
 * Notes one task that fits nowhere. `reason` is the task's current reason, or null for a task
 * this plan creates. The state machine writes an event's message into the reason of the task
 * it names, so a reason starting with E_NO_CAPACITY means its wait was reported.
 */
export function noteWaiting(
  byKey: Map<string, Waiting>,
  service: string | null,
  taskId: string,
  demand: TaskDemand,
  reason: string | null,
): void {
  const key = service === null ? `task:${taskId}` : `service:${service}`;
  let waiting = byKey.get(key);
  if (waiting === undefined) {
    waiting = {
      service,
      demand,
      count: 0,
      reported: false,
      createdWaiting: false,
      unreported: null,
    };
    byKey.set(key, waiting);
  }
  waiting.count += 1;
  if (reason === null) waiting.createdWaiting = true;
  if (reason?.startsWith("E_NO_CAPACITY")) waiting.reported = true;
  else waiting.unreported ??= taskId;
}

/**
 * Report once: a wait already carried by some task's reason is not reported again until the
 * plan adds waiting tasks, or until every reported task has been placed or stopped.
 */
export function needsReport(waiting: Waiting): waiting is Waiting & { unreported: string } {
  return waiting.unreported !== null && (!waiting.reported || waiting.createdWaiting);
}

/** Why tasks wait, e.g. "12 task(s) of web wait: needs 2 cpu, 64 MB, port 80/tcp; 1 node(s) ready". */
export function waitingMessage(
  waiting: Waiting & { unreported: string },
  usages: readonly NodeUsage[],
): string {
  const subject =
    waiting.service === null
      ? `one-off task ${waiting.unreported} waits`
      : `${waiting.count} task(s) of ${waiting.service} wait`;
  const ready = usages.filter((usage) => usage.schedulable).length;
  const { demand } = waiting;
  const duplicate =
    demand.duplicatePort === null ? "" : `; it asks for host port ${demand.duplicatePort} twice`;
  const allowing = usages.filter(
    (usage) =>
      usage.schedulable && demand.hostPaths.every((p) => hostPathAllowed(p, usage.node.hostPaths)),
  ).length;
  const paths =
    demand.hostPaths.length === 0
      ? ""
      : `; it mounts ${demand.hostPaths.join(", ")}, which ${allowing} ready node(s) allow`;
  return `${subject}: needs ${describeDemand(demand)}; ${ready} node(s) ready${duplicate}${paths}`;
}

// A global service runs one task on every eligible node (schedulable, within its constraints),
// following nodes as they come and go. A task on a node that is no longer eligible stops; a node
// without one gets one as soon as it fits. A new revision rolls stop-first, node by node: two
// tasks of a service on one node could not share its host ports. At least one node moves at a
// time, more while the healthy tasks stay above `minHealthyPercent` of the eligible nodes.
import type { Service, Task } from "../core/types.ts";
import { backoffUntil } from "./backoff.ts";
import {
  type Context,
  createTask,
  finishIfSettled,
  planStop,
  rulesOf,
  takePlacement,
  wakeAt,
} from "./evaluation-context.ts";
import type { NodeUsage } from "./node-usage.ts";
import { eligible, fits, type PlacementRules } from "./placement.ts";
import { isHealthy, nodeLeaveReason, rolloutBounds } from "./rollout.ts";

export function evaluateGlobal(context: Context, service: Service, wanted: readonly Task[]): void {
  const rules = rulesOf(context, service);
  const nodes = context.usages.filter((usage) => eligible(usage, rules));
  const byNode = new Map<string, Task[]>();
  for (const task of wanted) {
    const node = task.node;
    const reason =
      node === null
        ? "a global service's task waits for no node"
        : leaveReason(context, rules, node);
    if (node === null || reason !== null) {
      planStop(context, service, task, reason ?? "");
      continue;
    }
    const list = byNode.get(node) ?? [];
    list.push(task);
    byNode.set(node, list);
  }
  const outdated = keepOnePerNode(context, service, byNode);
  rollOutdated(context, service, wanted, outdated, nodes.length);
  // A node whose old task stops in this plan gets its new one at once if it fits beside it.
  const missing = nodes.filter(
    (usage) => !(byNode.get(usage.node.id) ?? []).some((task) => !context.stopped.has(task.id)),
  );
  if (missing.length > 0) startOnNodes(context, service, missing);
  else if (outdated.length === 0) finishIfSettled(context, service, wanted);
}

/**
 * Why a task must leave its node, or null while it may stay: the node is ready and meets the
 * constraints. A node whose engine stopped answering for a moment keeps it (as a replicated task
 * is kept) but gets no new one.
 */
function leaveReason(context: Context, rules: PlacementRules, nodeId: string): string | null {
  const usage = context.usagesById.get(nodeId);
  if (usage === undefined) return "its node is gone";
  const { status, name } = usage.node;
  if (status !== "ready" && status !== "draining") return `node ${name} is ${status}`;
  return nodeLeaveReason(usage, rules);
}

/** Extra tasks on a node stop (newest first); returns the nodes' tasks of an older revision. */
function keepOnePerNode(context: Context, service: Service, byNode: Map<string, Task[]>): Task[] {
  const outdated: Task[] = [];
  for (const list of byNode.values()) {
    list.sort((a, b) => {
      const aCurrent = a.taskDefinition.revision === service.taskDefinition.revision;
      const bCurrent = b.taskDefinition.revision === service.taskDefinition.revision;
      return Number(bCurrent) - Number(aCurrent) || a.createdAt - b.createdAt;
    });
    for (const extra of list.splice(1)) planStop(context, service, extra, "one per node");
    const kept = list[0];
    if (kept && kept.taskDefinition.revision !== service.taskDefinition.revision) {
      outdated.push(kept);
    }
  }
  return outdated;
}

/** Stop-first: unhealthy ones at once, healthy ones while the floor allows, at least one. */
function rollOutdated(
  context: Context,
  service: Service,
  wanted: readonly Task[],
  outdated: Task[],
  eligibleCount: number,
): void {
  if (outdated.length === 0) return;
  const { minHealthy } = rolloutBounds(service, eligibleCount);
  const healthy = wanted.filter((task) => isHealthy(task) && !context.stopped.has(task.id)).length;
  const moving = context.input.tasks.filter(
    (task) => task.service === service.name && task.desired === "stopped",
  ).length;
  let budget = Math.max(1, healthy - minHealthy) - moving;
  const reason = `replaced by revision ${service.taskDefinition.revision}`;
  for (const task of outdated.sort((a, b) => Number(isHealthy(a)) - Number(isHealthy(b)))) {
    if (isHealthy(task) && budget <= 0) continue;
    if (planStop(context, service, task, reason) && isHealthy(task)) budget -= 1;
  }
}

function startOnNodes(context: Context, service: Service, nodes: readonly NodeUsage[]): void {
  const until = backoffUntil(service, context.input.now, context.bounds);
  if (until !== null) {
    wakeAt(context, until);
    return;
  }
  const demand = context.demandFor(service);
  for (const usage of nodes) {
    // A node without room yet gets its task once something there stops.
    if (!fits(usage, demand)) continue;
    if (!takePlacement(context)) return;
    if (!createTask(context, service, demand, usage)) return;
  }
}

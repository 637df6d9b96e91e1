// The arithmetic of moving a service's tasks without dropping below its healthy floor: a
// deployment (tasks of an older revision), a drain (tasks on a draining node), a constraint that
// no longer holds, and a rebalance all replace tasks the same way, ECS's way. New tasks start
// while the count stays within `maxPercent`; old ones stop while the healthy tasks stay at least
// `minHealthyPercent` of the desired count.
import { satisfiesAll } from "../core/constraints.ts";
import type { Service, Task } from "../core/types.ts";
import { compareIds, type NodeUsage } from "./node-usage.ts";
import type { PlacementRules } from "./placement.ts";

/** Running, and every container with a healthcheck passes it. */
export function isHealthy(task: Task): boolean {
  if (task.state !== "running") return false;
  return task.containers.every((c) => c.health === null || c.health === "healthy");
}

export interface Bounds {
  /** Tasks that may run at once during a move. */
  maxActive: number;
  /** Healthy tasks that must stay. */
  minHealthy: number;
}

/**
 * ECS rounds the ceiling down and the floor up. When both sit at the desired count nothing could
 * ever move, so one task of surge is allowed (the settings refuse maxPercent <= minHealthyPercent,
 * but rounding can still meet them for a small count).
 */
export function rolloutBounds(service: Service, desired: number): Bounds {
  const { maxPercent, minHealthyPercent } = service.deployment;
  const minHealthy = Math.ceil((desired * minHealthyPercent) / 100);
  let maxActive = Math.floor((desired * maxPercent) / 100);
  if (maxActive <= desired && minHealthy >= desired) maxActive = desired + 1;
  return { maxActive, minHealthy };
}

/** Why a task must move, or null when it may stay where it is. */
export function outdatedReason(
  service: Service,
  task: Task,
  usages: ReadonlyMap<string, NodeUsage>,
  rules: PlacementRules,
): string | null {
  if (task.taskDefinition.revision !== service.taskDefinition.revision) {
    return `replaced by revision ${service.taskDefinition.revision}`;
  }
  if (task.node === null) return null;
  const usage = usages.get(task.node);
  return usage === undefined ? null : nodeLeaveReason(usage, rules);
}

/** Why a task may not stay on its node: the node drains, or no longer meets the constraints. */
export function nodeLeaveReason(usage: NodeUsage, rules: PlacementRules): string | null {
  if (usage.node.status === "draining") return `node ${usage.node.name} is draining`;
  if (!satisfiesAll(usage.node, rules.constraints)) {
    return `node ${usage.node.name} no longer meets the service's constraints`;
  }
  return null;
}

/**
 * Tasks to move so that the service spreads evenly over its eligible nodes again: while some
 * node holds two or more tasks more than a node that could take one, one task of the fuller
 * node moves (the newest first). Only for spread by node; other strategies are left alone.
 */
export function rebalanceMoves(
  current: readonly Task[],
  candidates: readonly NodeUsage[],
  rules: PlacementRules,
): Task[] {
  if (rules.strategy !== "spread" || rules.spreadBy !== "node" || candidates.length < 2) return [];
  const byNode = new Map<string, Task[]>(candidates.map((usage) => [usage.node.id, []]));
  for (const task of current) {
    if (task.node !== null) byNode.get(task.node)?.push(task);
  }
  // Oldest first, so that pop() takes the newest: older tasks have proven themselves.
  for (const list of byNode.values()) {
    list.sort((a, b) => a.createdAt - b.createdAt || compareIds(a.id, b.id));
  }
  const counts = new Map([...byNode].map(([nodeId, list]) => [nodeId, list.length]));
  const moves: Task[] = [];
  for (let round = 0; round < current.length; round += 1) {
    const ordered = [...counts].sort((a, b) => a[1] - b[1] || compareIds(a[0], b[0]));
    const fewest = ordered[0];
    const most = ordered[ordered.length - 1];
    if (fewest === undefined || most === undefined || most[1] - fewest[1] < 2) break;
    const task = byNode.get(most[0])?.pop();
    if (task === undefined) break;
    moves.push(task);
    counts.set(most[0], most[1] - 1);
    counts.set(fewest[0], fewest[1] + 1);
  }
  return moves;
}

// Which tasks to stop when a service runs more than it should: first tasks still waiting for a
// node (stopping them costs nothing), then tasks on the node most loaded with the service (so
// the rest stays spread), then the newest (older tasks have proven themselves).
import type { Task } from "../core/types.ts";
import { compareIds, type NodeUsage } from "./node-usage.ts";

function newestFirst(a: Task, b: Task): number {
  return b.createdAt - a.createdAt || compareIds(b.id, a.id);
}

/** Unplaced tasks (and tasks on nodes outside the view) first, then one list per node. */
function groupByNode(
  wanted: readonly Task[],
  usages: ReadonlyMap<string, NodeUsage>,
): { unplaced: Task[]; byNode: Map<string, Task[]> } {
  const unplaced: Task[] = [];
  const byNode = new Map<string, Task[]>();
  for (const task of wanted) {
    if (task.node === null || !usages.has(task.node)) {
      unplaced.push(task);
      continue;
    }
    const list = byNode.get(task.node);
    if (list === undefined) byNode.set(task.node, [task]);
    else list.push(task);
  }
  unplaced.sort(newestFirst);
  for (const list of byNode.values()) list.sort(newestFirst);
  return { unplaced, byNode };
}

/** The node whose tasks of this service, then tasks overall, are most; ties by node id. */
function mostLoaded(
  byNode: ReadonlyMap<string, Task[]>,
  totals: Map<string, number>,
): string | null {
  let best: string | null = null;
  let bestSame = -1;
  let bestTotal = -1;
  for (const [nodeId, list] of byNode) {
    if (list.length === 0) continue;
    const total = totals.get(nodeId) ?? 0;
    const better =
      list.length > bestSame ||
      (list.length === bestSame && total > bestTotal) ||
      (list.length === bestSame && total === bestTotal && best !== null && nodeId < best);
    if (!better) continue;
    best = nodeId;
    bestSame = list.length;
    bestTotal = total;
  }
  return best;
}

/**
 * Picks `count` of the service's wanted tasks to stop; the usages stay as they are (the caller
 * uncounts what it does stop).
 */
export function chooseTasksToStop(
  wanted: readonly Task[],
  count: number,
  usages: ReadonlyMap<string, NodeUsage>,
): Task[] {
  const { unplaced, byNode } = groupByNode(wanted, usages);
  const chosen = unplaced.slice(0, count);
  const totals = new Map([...usages].map(([id, usage]) => [id, usage.wantedTasks]));
  while (chosen.length < count) {
    const nodeId = mostLoaded(byNode, totals);
    if (nodeId === null) break;
    const task = byNode.get(nodeId)?.shift();
    if (task === undefined) break;
    chosen.push(task);
    totals.set(nodeId, (totals.get(nodeId) ?? 1) - 1);
  }
  return chosen;
}

// Feasibility and ranking: which nodes can take a task, and which of them should.
// Ranking spreads by node (fewest tasks of the same service, then fewest overall) and breaks
// the remaining ties with the evaluation's seeded randomness.
import { assert } from "../core/assert.ts";
import type { TaskDemand } from "./demand.ts";
import type { NodeUsage } from "./node-usage.ts";

export function fits(usage: NodeUsage, demand: TaskDemand): boolean {
  if (!usage.schedulable || demand.duplicatePort !== null) return false;
  if (usage.cpuMilliFree < demand.cpuMilli || usage.memoryMbFree < demand.memoryMb) return false;
  for (const port of demand.ports) {
    if (usage.portsUsed.has(port)) return false;
  }
  return true;
}

/** Lower is better: same-service tasks first, then all tasks on the node. */
function spreadScore(usage: NodeUsage, service: string | null): [number, number] {
  const sameService = service === null ? 0 : (usage.activeByService.get(service) ?? 0);
  return [sameService, usage.activeTasks];
}

/** The best feasible node for a task, or null when none fits. Calls `random` only on a tie. */
export function chooseNode(
  usages: readonly NodeUsage[],
  demand: TaskDemand,
  service: string | null,
  random: () => number,
): NodeUsage | null {
  let best: NodeUsage[] = [];
  let bestSame = Number.POSITIVE_INFINITY;
  let bestTotal = Number.POSITIVE_INFINITY;
  for (const usage of usages) {
    if (!fits(usage, demand)) continue;
    const [same, total] = spreadScore(usage, service);
    if (same < bestSame || (same === bestSame && total < bestTotal)) {
      best = [usage];
      bestSame = same;
      bestTotal = total;
    } else if (same === bestSame && total === bestTotal) {
      best.push(usage);
    }
  }
  if (best.length <= 1) return best[0] ?? null;
  return best[tieIndex(random(), best.length)] ?? null;
}

export function tieIndex(draw: number, count: number): number {
  assert(draw >= 0 && draw < 1, `random() must return a number in [0, 1), got ${draw}`);
  return Math.min(count - 1, Math.floor(draw * count));
}

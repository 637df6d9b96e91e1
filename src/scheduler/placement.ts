// Feasibility and ranking: which nodes can take a task, and which of them should.
// Feasible: schedulable, within the service's constraints, with the cpu, memory and host ports
// free. Ranking: `spread` puts a task where its service has fewest tasks, counted over the
// spread attribute's value (the node itself by default), then on the node, then all tasks on the
// node; `binpack` puts it where the least memory stays free. The evaluation's seeded randomness
// breaks the remaining ties.
import { assert } from "../core/assert.ts";
import { attributeOf, type Constraint, parseAll, satisfiesAll } from "../core/constraints.ts";
import { hostPathAllowed } from "../core/host-paths.ts";
import type { NodeInfo, PlacementStrategy, Service } from "../core/types.ts";
import type { TaskDemand } from "./demand.ts";
import type { NodeUsage } from "./node-usage.ts";

/** How one service (or a one-off task, with the defaults) is placed. */
export interface PlacementRules {
  service: string | null;
  constraints: Constraint[];
  strategy: PlacementStrategy;
  spreadBy: string;
}

export function rulesFor(service: Service): PlacementRules {
  return {
    service: service.name,
    constraints: parseAll(service.placement.constraints),
    strategy: service.placement.strategy,
    spreadBy: service.placement.spreadBy,
  };
}

export function oneOffRules(): PlacementRules {
  return { service: null, constraints: [], strategy: "spread", spreadBy: "node" };
}

/** Whether the node may run the service at all: schedulable and within its constraints. */
export function eligible(usage: NodeUsage, rules: PlacementRules): boolean {
  return usage.schedulable && satisfiesAll(usage.node, rules.constraints);
}

const nothingReleased: TaskDemand = {
  cpuMilli: 0,
  memoryMb: 0,
  ports: [],
  duplicatePort: null,
  hostPaths: [],
};

/** Whether `demand` fits on the node, counting the room of a task that stops first (`released`). */
export function fits(usage: NodeUsage, demand: TaskDemand, released = nothingReleased): boolean {
  if (!usage.schedulable || demand.duplicatePort !== null) return false;
  if (!demand.hostPaths.every((path) => hostPathAllowed(path, usage.node.hostPaths))) return false;
  if (usage.cpuMilliFree + released.cpuMilli < demand.cpuMilli) return false;
  if (usage.memoryMbFree + released.memoryMb < demand.memoryMb) return false;
  return demand.ports.every((port) => !usage.portsUsed.has(port) || released.ports.includes(port));
}

/** The value a node spreads under; a node lacking the attribute spreads under its own bucket. */
function spreadValue(node: NodeInfo, spreadBy: string): string {
  if (spreadBy === "node") return `node:${node.id}`;
  const value = attributeOf(node, spreadBy);
  return value === null ? "missing:" : `value:${value}`;
}

function sameServiceOn(usage: NodeUsage, service: string | null): number {
  return service === null ? 0 : (usage.wantedByService.get(service) ?? 0);
}

/** Tasks of the service per spread value, over every node (a full node's tasks count too). */
function countsByValue(usages: readonly NodeUsage[], rules: PlacementRules): Map<string, number> {
  const counts = new Map<string, number>();
  for (const usage of usages) {
    const value = spreadValue(usage.node, rules.spreadBy);
    counts.set(value, (counts.get(value) ?? 0) + sameServiceOn(usage, rules.service));
  }
  return counts;
}

/** Lower is better, compared element by element. */
function score(
  usage: NodeUsage,
  demand: TaskDemand,
  rules: PlacementRules,
  byValue: Map<string, number>,
): number[] {
  if (rules.strategy === "binpack") return [usage.memoryMbFree - demand.memoryMb];
  const same = sameServiceOn(usage, rules.service);
  const valueCount =
    rules.spreadBy === "node" ? same : (byValue.get(spreadValue(usage.node, rules.spreadBy)) ?? 0);
  return [valueCount, same, usage.wantedTasks];
}

function compareScores(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i += 1) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** The best feasible node for a task, or null when none fits. Calls `random` only on a tie. */
export function chooseNode(
  usages: readonly NodeUsage[],
  demand: TaskDemand,
  rules: PlacementRules,
  random: () => number,
): NodeUsage | null {
  const candidates = usages.filter((usage) => eligible(usage, rules) && fits(usage, demand));
  if (candidates.length <= 1) return candidates[0] ?? null;
  const byAttribute = rules.strategy === "spread" && rules.spreadBy !== "node";
  const byValue = byAttribute ? countsByValue(usages, rules) : new Map<string, number>();
  let best: NodeUsage[] = [];
  let bestScore: number[] | null = null;
  for (const usage of candidates) {
    const current = score(usage, demand, rules, byValue);
    const order = bestScore === null ? -1 : compareScores(current, bestScore);
    if (order < 0) {
      best = [usage];
      bestScore = current;
    } else if (order === 0) {
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

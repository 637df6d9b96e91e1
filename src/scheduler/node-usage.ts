// Per-node bookkeeping for one evaluation: capacity, what placed tasks already reserve, and the
// counts that ranking spreads over. Built once per evaluation and updated as the plan places
// tasks, so placement never rescans the task list.
import { assert } from "../core/assert.ts";
import { isTerminal, type NodeInfo, type Task } from "../core/types.ts";
import { cpuToMilli, type TaskDemand } from "./demand.ts";

export interface NodeUsage {
  node: NodeInfo;
  /** Ready, with a working engine and room on its disk: the only nodes that take new tasks. */
  schedulable: boolean;
  cpuMilliFree: number;
  memoryMbFree: number;
  portsUsed: Set<string>;
  /** Tasks desired running on this node, for spreading. */
  wantedTasks: number;
  /** Tasks desired running on this node, per service name, for spreading. */
  wantedByService: Map<string, number>;
}

export type DemandLookup = (task: Pick<Task, "taskDefinition">) => TaskDemand;

export function isSchedulable(node: NodeInfo): boolean {
  return node.status === "ready" && node.engineReady && !node.diskFull;
}

function emptyUsage(node: NodeInfo): NodeUsage {
  return {
    node,
    schedulable: isSchedulable(node),
    cpuMilliFree: cpuToMilli(node.cpus),
    memoryMbFree: node.memoryMb,
    portsUsed: new Set(),
    wantedTasks: 0,
    wantedByService: new Map(),
  };
}

/** Takes a task's reservation from its node; `counted` says whether it counts for spreading. */
export function reserve(
  usage: NodeUsage,
  demand: TaskDemand,
  service: string | null,
  counted: boolean,
): void {
  usage.cpuMilliFree -= demand.cpuMilli;
  usage.memoryMbFree -= demand.memoryMb;
  for (const port of demand.ports) usage.portsUsed.add(port);
  if (!counted) return;
  usage.wantedTasks += 1;
  if (service !== null) {
    usage.wantedByService.set(service, (usage.wantedByService.get(service) ?? 0) + 1);
  }
}

/**
 * Usage of every node, in node id order. A task that is stopping (desired stopped, not yet
 * terminal) still holds its cpu, memory and ports until its containers are gone, so it reserves
 * them too; it just no longer counts for spreading.
 */
export function buildUsages(
  nodes: readonly NodeInfo[],
  tasks: readonly Task[],
  demandFor: DemandLookup,
): { ordered: NodeUsage[]; byId: Map<string, NodeUsage> } {
  const ordered = [...nodes].sort((a, b) => compareIds(a.id, b.id)).map(emptyUsage);
  const byId = new Map<string, NodeUsage>();
  for (const usage of ordered) {
    assert(!byId.has(usage.node.id), `duplicate node ${usage.node.id} in scheduler input`);
    byId.set(usage.node.id, usage);
  }
  for (const task of tasks) {
    if (task.node === null || isTerminal(task.state)) continue;
    const usage = byId.get(task.node);
    // A task on a node that left the view reserves nothing anyone can place against.
    if (usage === undefined) continue;
    reserve(usage, demandFor(task), task.service, task.desired === "running");
  }
  return { ordered, byId };
}

/** Plain code-unit order: deterministic and independent of the host's locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Records decisions into a Plan together with the row versions they were derived from, so that
// every placement or stop carries its fencing reads; and keeps the plan within a byte budget, so
// that the command carrying it always fits in the log.
import { assert } from "../core/assert.ts";
import type { NodeInfo, Plan, PlannedTask, Service, Task } from "../core/types.ts";
import {
  assignBytes,
  createBytes,
  eventBytes,
  jsonTextBytes,
  planEnvelopeBytes,
  readBytes,
  stopBytes,
} from "./plan-size.ts";

export interface PlanDraft {
  plan: Plan;
  /** A conservative estimate of the encoded `plan.apply` command carrying the plan so far. */
  bytes: number;
  bytesMax: number;
}

export function emptyPlan(): Plan {
  return {
    create: [],
    assign: [],
    stop: [],
    events: [],
    completeDeployments: [],
    rebalanced: [],
    reads: { services: {}, tasks: {}, nodes: {} },
  };
}

export function emptyDraft(bytesMax: number): PlanDraft {
  assert(bytesMax > planEnvelopeBytes, `plan budget too small: ${bytesMax} bytes`);
  return { plan: emptyPlan(), bytes: planEnvelopeBytes, bytesMax };
}

/** Takes `bytes` of the budget, or returns false (taking nothing) when they do not fit. */
function take(draft: PlanDraft, bytes: number): boolean {
  if (draft.bytes + bytes > draft.bytesMax) return false;
  draft.bytes += bytes;
  return true;
}

function serviceReadBytes(plan: Plan, name: string): number {
  return plan.reads.services[name] === undefined ? readBytes(name) : 0;
}

function nodeReadBytes(plan: Plan, node: NodeInfo | null): number {
  return node === null || plan.reads.nodes[node.id] !== undefined ? 0 : readBytes(node.id);
}

/** A placement reads its node: a node drained, relabelled or marked down since refuses it. */
function readNode(plan: Plan, node: NodeInfo | null): void {
  if (node !== null) plan.reads.nodes[node.id] = node.rowVersion;
}

/** Each record returns false, recording nothing, when the entry would exceed the budget. */
export function recordCreate(
  draft: PlanDraft,
  service: Service,
  task: PlannedTask,
  node: NodeInfo | null,
): boolean {
  const bytes =
    createBytes(task.id, task.service, task.taskDefinition.family, task.node) +
    serviceReadBytes(draft.plan, service.name) +
    nodeReadBytes(draft.plan, node);
  if (!take(draft, bytes)) return false;
  draft.plan.create.push(task);
  draft.plan.reads.services[service.name] = service.version;
  readNode(draft.plan, node);
  return true;
}

export function recordAssign(draft: PlanDraft, task: Task, node: NodeInfo): boolean {
  const bytes =
    assignBytes(task.id, node.id) + readBytes(task.id) + nodeReadBytes(draft.plan, node);
  if (!take(draft, bytes)) return false;
  draft.plan.assign.push({ taskId: task.id, node: node.id });
  draft.plan.reads.tasks[task.id] = task.version;
  readNode(draft.plan, node);
  return true;
}

/** A service whose deployment finished, or whose rebalance is done: one name in a list. */
export function recordServiceDone(
  draft: PlanDraft,
  service: Service,
  list: "completeDeployments" | "rebalanced",
): boolean {
  const bytes = jsonTextBytes(service.name) + 1 + serviceReadBytes(draft.plan, service.name);
  if (!take(draft, bytes)) return false;
  draft.plan[list].push(service.name);
  draft.plan.reads.services[service.name] = service.version;
  return true;
}

export function recordStop(
  draft: PlanDraft,
  service: Service,
  task: Task,
  reason: string,
): boolean {
  const bytes =
    stopBytes(task.id, reason) + readBytes(task.id) + serviceReadBytes(draft.plan, service.name);
  if (!take(draft, bytes)) return false;
  draft.plan.stop.push({ taskId: task.id, reason });
  draft.plan.reads.services[service.name] = service.version;
  draft.plan.reads.tasks[task.id] = task.version;
  return true;
}

export function recordNoCapacity(
  draft: PlanDraft,
  message: string,
  service: string | null,
  task: string | null,
): boolean {
  if (!take(draft, eventBytes("E_NO_CAPACITY", message, service, task))) return false;
  draft.plan.events.push({ type: "E_NO_CAPACITY", message, service, task });
  return true;
}

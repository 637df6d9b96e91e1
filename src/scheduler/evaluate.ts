// One scheduler evaluation: a pure, deterministic function from a view of state to a plan.
// Stops surplus tasks, places tasks waiting for a node, and creates the tasks services lack,
// within the per-plan placement and byte bounds and each service's restart backoff.
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";
import { isTerminal, type Service, type Task, type TaskDefinition } from "../core/types.ts";
import { backoffUntil } from "./backoff.ts";
import { demandOf, type TaskDemand } from "./demand.ts";
import {
  buildUsages,
  compareIds,
  type DemandLookup,
  type NodeUsage,
  reserve,
} from "./node-usage.ts";
import { chooseNode } from "./placement.ts";
import {
  emptyDraft,
  type PlanDraft,
  recordAssign,
  recordCreate,
  recordNoCapacity,
  recordStop,
} from "./plan-builder.ts";
import { chooseTasksToStop } from "./scale-down.ts";
import type { Evaluation, SchedulerInput, SchedulerLimits } from "./types.ts";
import { needsReport, noteWaiting, type Waiting, waitingMessage } from "./waiting.ts";

/** The reason a plan gives tasks it stops because their service has too many. */
export const scaledDownReason = "scaled down";

interface Context {
  input: SchedulerInput;
  bounds: SchedulerLimits;
  draft: PlanDraft;
  /** Set once the plan's byte budget is spent: nothing more goes in, the rest waits. */
  full: boolean;
  /** Tasks that fit nowhere, per service (or one-off task), reported once at the end. */
  waiting: Map<string, Waiting>;
  demandFor: DemandLookup;
  usages: NodeUsage[];
  usagesById: Map<string, NodeUsage>;
  placementsLeft: number;
  nextEvaluationAt: number | null;
  stopped: Set<string>;
  knownTaskIds: Set<string>;
}

export function evaluate(input: SchedulerInput, bounds: SchedulerLimits = limits): Evaluation {
  assert(bounds.placementsPerPlanMax > 0, "placementsPerPlanMax must be positive");
  const context = createContext(input, bounds);
  const activeByService = groupActiveTasks(input.tasks);
  const services = [...input.services].sort((a, b) => compareIds(a.name, b.name));
  for (const service of services) {
    scaleDown(context, service, activeByService.get(service.name) ?? []);
  }
  assignPending(context);
  for (const service of services) {
    scaleUp(context, service, activeByService.get(service.name)?.length ?? 0);
  }
  reportWaiting(context);
  return { plan: context.draft.plan, nextEvaluationAt: context.nextEvaluationAt };
}

function createContext(input: SchedulerInput, bounds: SchedulerLimits): Context {
  const demandFor = demandLookup(input.taskDefinitions);
  const { ordered, byId } = buildUsages(input.nodes, input.tasks, demandFor);
  return {
    input,
    bounds,
    // Half the command bound: the estimate is conservative, the rest is margin.
    draft: emptyDraft(Math.floor(bounds.commandBytesMax / 2)),
    full: false,
    waiting: new Map(),
    demandFor,
    usages: ordered,
    usagesById: byId,
    placementsLeft: bounds.placementsPerPlanMax,
    nextEvaluationAt: null,
    stopped: new Set(),
    knownTaskIds: new Set(input.tasks.map((task) => task.id)),
  };
}

/** Demand per task definition, computed once per definition and evaluation. */
function demandLookup(definitions: readonly TaskDefinition[]): DemandLookup {
  const byKey = new Map<string, TaskDemand>();
  for (const definition of definitions) {
    byKey.set(`${definition.family}:${definition.revision}`, demandOf(definition));
  }
  return ({ taskDefinition }) => {
    const key = `${taskDefinition.family}:${taskDefinition.revision}`;
    const demand = byKey.get(key);
    assert(demand !== undefined, `scheduler input lacks task definition ${key}`);
    return demand;
  };
}

export function isActive(task: Task): boolean {
  return task.desired === "running" && !isTerminal(task.state);
}

function groupActiveTasks(tasks: readonly Task[]): Map<string, Task[]> {
  const byService = new Map<string, Task[]>();
  for (const task of tasks) {
    if (task.service === null || !isActive(task)) continue;
    const list = byService.get(task.service);
    if (list === undefined) byService.set(task.service, [task]);
    else list.push(task);
  }
  return byService;
}

/** Scaling down is never delayed by backoff nor bounded by the placement budget, only by bytes. */
function scaleDown(context: Context, service: Service, active: readonly Task[]): void {
  const surplus = active.length - service.replicas;
  if (surplus <= 0 || context.full) return;
  const chosen = chooseTasksToStop(service.name, active, surplus, context.usagesById);
  for (const task of chosen) {
    if (!recordStop(context.draft, service, task, scaledDownReason)) {
      markFull(context);
      return;
    }
    context.stopped.add(task.id);
  }
}

/** Places tasks that wait for a node, oldest first: they have waited longest. */
function assignPending(context: Context): void {
  const pending = context.input.tasks
    .filter((task) => task.node === null && isActive(task) && !context.stopped.has(task.id))
    .sort((a, b) => a.createdAt - b.createdAt || compareIds(a.id, b.id));
  for (const task of pending) {
    if (context.full || !takePlacement(context)) return;
    const demand = context.demandFor(task);
    const usage = chooseNode(context.usages, demand, task.service, context.input.random);
    if (usage === null) {
      // The budget counts only what the plan does; a task that stays pending used none.
      context.placementsLeft += 1;
      noteWaiting(context.waiting, task.service, task.id, demand, task.reason);
      continue;
    }
    if (!recordAssign(context.draft, task, usage.node.id)) {
      markFull(context);
      return;
    }
    reserve(usage, demand, task.service, true);
  }
}

/** One E_NO_CAPACITY event per service (or one-off task) whose wait is news. */
function reportWaiting(context: Context): void {
  for (const waiting of context.waiting.values()) {
    if (context.full) return;
    if (!needsReport(waiting)) continue;
    const message = waitingMessage(waiting, context.usages);
    // The state machine writes the message into the named task's reason: the mark of a report.
    if (!recordNoCapacity(context.draft, message, waiting.service, waiting.unreported)) {
      markFull(context);
    }
  }
}

function scaleUp(context: Context, service: Service, activeCount: number): void {
  const missing = service.replicas - activeCount;
  if (missing <= 0 || context.full) return;
  const until = backoffUntil(service, context.input.now, context.bounds);
  if (until !== null) {
    wakeAt(context, until);
    return;
  }
  const demand = context.demandFor(service);
  // Usage only shrinks within a plan, so once one task of the service fits nowhere, none will.
  let nothingFits = false;
  for (let created = 0; created < missing; created += 1) {
    if (!takePlacement(context)) return;
    const usage: NodeUsage | null = nothingFits
      ? null
      : chooseNode(context.usages, demand, service.name, context.input.random);
    nothingFits = usage === null;
    if (!createTask(context, service, demand, usage)) return;
  }
}

/** Returns false when the task does not fit in the plan's byte budget (nothing is created). */
function createTask(
  context: Context,
  service: Service,
  demand: TaskDemand,
  usage: NodeUsage | null,
): boolean {
  const id = context.input.newId();
  assert(id.length > 0 && !context.knownTaskIds.has(id), `newId() returned a used id: ${id}`);
  const { family, revision } = service.taskDefinition;
  const node = usage === null ? null : usage.node.id;
  const planned = { id, service: service.name, taskDefinition: { family, revision }, node };
  if (!recordCreate(context.draft, service, planned)) {
    markFull(context);
    return false;
  }
  context.knownTaskIds.add(id);
  if (usage === null) noteWaiting(context.waiting, service.name, id, demand, null);
  else reserve(usage, demand, service.name, true);
  return true;
}

/** Takes one unit of the per-plan placement budget; when none is left, asks to run again now. */
function takePlacement(context: Context): boolean {
  if (context.placementsLeft > 0) {
    context.placementsLeft -= 1;
    return true;
  }
  wakeAt(context, context.input.now);
  return false;
}

/** The byte budget is spent: the plan stops growing and the rest waits for the next run, now. */
function markFull(context: Context): void {
  context.full = true;
  wakeAt(context, context.input.now);
}

function wakeAt(context: Context, at: number): void {
  if (context.nextEvaluationAt === null || at < context.nextEvaluationAt) {
    context.nextEvaluationAt = at;
  }
}

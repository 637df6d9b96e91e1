// The state of one evaluation while it runs, and the steps every phase shares: recording a
// task's start or stop into the plan within its budgets, and marking a rollout done.
import { assert } from "../core/assert.ts";
import type { Service, Task } from "../core/types.ts";
import type { TaskDemand } from "./demand.ts";
import { type DemandLookup, type NodeUsage, reserve } from "./node-usage.ts";
import { type PlacementRules, rulesFor } from "./placement.ts";
import { type PlanDraft, recordCreate, recordServiceDone, recordStop } from "./plan-builder.ts";
import { isHealthy } from "./rollout.ts";
import type { SchedulerInput, SchedulerLimits } from "./types.ts";
import { noteWaiting, type Waiting } from "./waiting.ts";

export interface Context {
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
  rules: Map<string, PlacementRules>;
  /** Services with a deployment in progress. */
  deploying: Set<string>;
}

export function rulesOf(context: Context, service: Service): PlacementRules {
  return context.rules.get(service.name) ?? rulesFor(service);
}

/** Adds stopping `task` to the plan (the state machine's `stopTask` carries it out). */
export function planStop(context: Context, service: Service, task: Task, reason: string): boolean {
  if (context.full) return false;
  if (!recordStop(context.draft, service, task, reason)) {
    markFull(context);
    return false;
  }
  context.stopped.add(task.id);
  const usage = task.node === null ? undefined : context.usagesById.get(task.node);
  if (usage !== undefined) uncount(usage, service.name);
  return true;
}

/** A stopping task keeps its reservation until its containers are gone, but no longer spreads. */
function uncount(usage: NodeUsage, service: string): void {
  usage.wantedTasks -= 1;
  usage.wantedByService.set(service, (usage.wantedByService.get(service) ?? 1) - 1);
}

export function finishIfSettled(context: Context, service: Service, wanted: readonly Task[]): void {
  const settled = wanted.every((task) => context.stopped.has(task.id) || isHealthy(task));
  if (!settled || context.full) return;
  if (context.deploying.has(service.name)) {
    if (!recordServiceDone(context.draft, service, "completeDeployments")) markFull(context);
  }
  if (service.rebalanceRequested && !context.full) {
    if (!recordServiceDone(context.draft, service, "rebalanced")) markFull(context);
  }
}

/** Returns false when the task does not fit in the plan's byte budget (nothing is created). */
export function createTask(
  context: Context,
  service: Service,
  demand: TaskDemand,
  usage: NodeUsage | null,
): boolean {
  const id = context.input.newId();
  assert(id.length > 0 && !context.knownTaskIds.has(id), `newId() returned a used id: ${id}`);
  const { family, revision } = service.taskDefinition;
  const node = usage === null ? null : usage.node;
  const planned = {
    id,
    service: service.name,
    taskDefinition: { family, revision },
    node: node?.id ?? null,
  };
  if (!recordCreate(context.draft, service, planned, node)) {
    markFull(context);
    return false;
  }
  context.knownTaskIds.add(id);
  if (usage === null) noteWaiting(context.waiting, service.name, id, demand, null);
  else reserve(usage, demand, service.name, true);
  return true;
}

/** Takes one unit of the per-plan placement budget; when none is left, asks to run again now. */
export function takePlacement(context: Context): boolean {
  if (context.placementsLeft > 0) {
    context.placementsLeft -= 1;
    return true;
  }
  wakeAt(context, context.input.now);
  return false;
}

/** The byte budget is spent: the plan stops growing and the rest waits for the next run, now. */
export function markFull(context: Context): void {
  context.full = true;
  wakeAt(context, context.input.now);
}

export function wakeAt(context: Context, at: number): void {
  if (context.nextEvaluationAt === null || at < context.nextEvaluationAt) {
    context.nextEvaluationAt = at;
  }
}

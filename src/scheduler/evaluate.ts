// One scheduler evaluation: a pure, deterministic function from a view of state to a plan.
// Stops what must stop, places tasks waiting for a node, starts what services lack (rolling
// moves within their deployment bounds), keeps a global service on every eligible node, and
// marks deployments and rebalances done; all within the per-plan placement and byte bounds and
// each service's restart backoff.
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";
import { isTerminal, type Service, type Task, type TaskDefinition } from "../core/types.ts";
import { backoffUntil } from "./backoff.ts";
import { demandOf, type TaskDemand } from "./demand.ts";
import {
  type Context,
  createTask,
  finishIfSettled,
  markFull,
  planStop,
  rulesOf,
  takePlacement,
  wakeAt,
} from "./evaluation-context.ts";
import { evaluateGlobal } from "./global.ts";
import {
  buildUsages,
  compareIds,
  type DemandLookup,
  type NodeUsage,
  reserve,
} from "./node-usage.ts";
import { chooseNode, eligible, fits, oneOffRules, rulesFor } from "./placement.ts";
import { emptyDraft, recordAssign, recordNoCapacity } from "./plan-builder.ts";
import { isHealthy, outdatedReason, rebalanceMoves, rolloutBounds } from "./rollout.ts";
import { chooseTasksToStop } from "./scale-down.ts";
import type { Evaluation, SchedulerInput, SchedulerLimits } from "./types.ts";
import { needsReport, noteWaiting, waitingMessage } from "./waiting.ts";

/** The reason a plan gives tasks it stops because their service has too many. */
export const scaledDownReason = "scaled down";

/** What the stop phase leaves a replicated service for the start phase. */
interface Tally {
  current: number;
  outdatedLeft: number;
}

export function evaluate(input: SchedulerInput, bounds: SchedulerLimits = limits): Evaluation {
  assert(bounds.placementsPerPlanMax > 0, "placementsPerPlanMax must be positive");
  const context = createContext(input, bounds);
  const wantedByService = groupWantedTasks(input.tasks);
  const services = [...input.services].sort((a, b) => compareIds(a.name, b.name));
  const replicated = services.filter((service) => service.mode === "replicated");
  const tallies = new Map<string, Tally>();
  for (const service of replicated) {
    tallies.set(service.name, stopPhase(context, service, wantedByService.get(service.name) ?? []));
  }
  assignPending(context);
  for (const service of replicated) {
    const tally = tallies.get(service.name);
    if (tally) startPhase(context, service, tally, wantedByService.get(service.name) ?? []);
  }
  for (const service of services) {
    if (service.mode === "global") {
      evaluateGlobal(context, service, wantedByService.get(service.name) ?? []);
    }
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
    rules: new Map(input.services.map((service) => [service.name, rulesFor(service)])),
    deploying: new Set(input.deployments.map((d) => d.service)),
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

/**
 * A task the service still wants: desired running and not yet ended. It counts toward the
 * desired count. (The store's "active" tasks are wider: also those still stopping.)
 */
export function isWanted(task: Task): boolean {
  return task.desired === "running" && !isTerminal(task.state);
}

function groupWantedTasks(tasks: readonly Task[]): Map<string, Task[]> {
  const byService = new Map<string, Task[]>();
  for (const task of tasks) {
    if (task.service === null || !isWanted(task)) continue;
    const list = byService.get(task.service);
    if (list === undefined) byService.set(task.service, [task]);
    else list.push(task);
  }
  return byService;
}

/** The tasks that must move (with why), and those that may stay. */
function partition(
  context: Context,
  service: Service,
  wanted: readonly Task[],
): { current: Task[]; outdated: { task: Task; reason: string }[] } {
  const rules = rulesOf(context, service);
  const current: Task[] = [];
  const outdated: { task: Task; reason: string }[] = [];
  for (const task of wanted) {
    const reason = outdatedReason(service, task, context.usagesById, rules);
    if (reason === null) current.push(task);
    else outdated.push({ task, reason });
  }
  if (outdated.length === 0 && (service.rebalanceRequested || service.placement.rebalance)) {
    const demand = context.demandFor(service);
    const candidates = context.usages.filter(
      (usage) =>
        eligible(usage, rules) &&
        (fits(usage, demand) || (usage.wantedByService.get(service.name) ?? 0) > 0),
    );
    for (const task of rebalanceMoves(current, candidates, rules)) {
      current.splice(current.indexOf(task), 1);
      outdated.push({ task, reason: "rebalanced" });
    }
  }
  return { current, outdated };
}

/**
 * Stops what the service has too many of, and what must move, while the healthy tasks stay at
 * the floor (unhealthy ones first: stopping them costs no health). Never delayed by backoff nor
 * bounded by the placement budget, only by bytes.
 */
function stopPhase(context: Context, service: Service, wanted: readonly Task[]): Tally {
  const { current, outdated } = partition(context, service, wanted);
  const desired = service.replicas;
  const healthy = wanted.filter(isHealthy).length;
  // Healthy tasks that may stop and leave the floor standing; unhealthy ones always may.
  let budget = healthy - rolloutBounds(service, desired).minHealthy;
  const surplus = current.length - desired;
  if (surplus > 0) {
    // While a move's new task is not yet healthy, the task it replaces waits (a rebalance).
    for (const task of chooseTasksToStop(current, surplus, context.usagesById)) {
      if (isHealthy(task) && budget <= 0) continue;
      if (!planStop(context, service, task, scaledDownReason)) break;
      current.splice(current.indexOf(task), 1);
      if (isHealthy(task)) budget -= 1;
    }
  }
  const blocker = budget <= 0 ? blockingTask(context, service, current, outdated) : null;
  if (blocker !== null && planStop(context, service, blocker.task, blocker.reason)) {
    outdated.splice(outdated.indexOf(blocker), 1);
  }
  const ordered = [...outdated].sort(
    (a, b) => Number(isHealthy(a.task)) - Number(isHealthy(b.task)),
  );
  let outdatedLeft = 0;
  for (const { task, reason } of ordered) {
    const healthy = isHealthy(task);
    if ((healthy && budget <= 0) || !planStop(context, service, task, reason)) {
      outdatedLeft += 1;
      continue;
    }
    if (healthy) budget -= 1;
  }
  return { current: current.length, outdatedLeft };
}

/**
 * A replacement that fits on no node because an old task holds what it needs (its fixed host
 * port, or the memory of a full node) would wait forever for that task to stop: that one task
 * stops first, one at a time. Only an old task whose node would then fit the replacement; a
 * replacement that fits nowhere anyway leaves every old task running.
 */
function blockingTask(
  context: Context,
  service: Service,
  current: readonly Task[],
  outdated: { task: Task; reason: string }[],
): { task: Task; reason: string } | null {
  if (!current.some((task) => task.node === null) || stoppingAny(context, service)) return null;
  const demand = context.demandFor(service);
  const rules = rulesOf(context, service);
  return (
    outdated.find(({ task }) => {
      const usage = task.node === null ? undefined : context.usagesById.get(task.node);
      return (
        usage !== undefined &&
        eligible(usage, rules) &&
        fits(usage, demand, context.demandFor(task))
      );
    }) ?? null
  );
}

function stoppingAny(context: Context, service: Service): boolean {
  return context.input.tasks.some(
    (task) => task.service === service.name && task.desired === "stopped" && task.node !== null,
  );
}

/** Places tasks that wait for a node, oldest first: they have waited longest. */
function assignPending(context: Context): void {
  const pending = context.input.tasks
    .filter((task) => task.node === null && isWanted(task) && !context.stopped.has(task.id))
    .sort((a, b) => a.createdAt - b.createdAt || compareIds(a.id, b.id));
  const services = new Map(context.input.services.map((service) => [service.name, service]));
  for (const task of pending) {
    if (context.full || !takePlacement(context)) return;
    const demand = context.demandFor(task);
    const service = task.service === null ? undefined : services.get(task.service);
    const rules = service === undefined ? oneOffRules() : rulesOf(context, service);
    const usage = chooseNode(context.usages, demand, rules, context.input.random);
    if (usage === null) {
      // The budget counts only what the plan does; a task that stays pending used none.
      context.placementsLeft += 1;
      noteWaiting(context.waiting, task.service, task.id, demand, task.reason);
      continue;
    }
    if (!recordAssign(context.draft, task, usage.node)) {
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

/**
 * Starts what the service lacks, within the rollout's ceiling while tasks still move; and marks
 * a deployment or rebalance done once nothing is left to move and every task is healthy.
 */
function startPhase(
  context: Context,
  service: Service,
  tally: Tally,
  wanted: readonly Task[],
): void {
  const desired = service.replicas;
  const { maxActive } = rolloutBounds(service, desired);
  const room = tally.outdatedLeft > 0 ? maxActive - tally.current - tally.outdatedLeft : desired;
  const missing = Math.min(desired - tally.current, room);
  if (missing > 0) {
    scaleUp(context, service, missing);
    return;
  }
  if (tally.outdatedLeft > 0 || desired - tally.current > 0) return;
  finishIfSettled(context, service, wanted);
}

function scaleUp(context: Context, service: Service, missing: number): void {
  if (context.full) return;
  const until = backoffUntil(service, context.input.now, context.bounds);
  if (until !== null) {
    wakeAt(context, until);
    return;
  }
  const demand = context.demandFor(service);
  const rules = rulesOf(context, service);
  // Usage only shrinks within a plan, so once one task of the service fits nowhere, none will.
  let nothingFits = false;
  for (let created = 0; created < missing; created += 1) {
    if (!takePlacement(context)) return;
    const usage: NodeUsage | null = nothingFits
      ? null
      : chooseNode(context.usages, demand, rules, context.input.random);
    nothingFits = usage === null;
    if (!createTask(context, service, demand, usage)) return;
  }
}

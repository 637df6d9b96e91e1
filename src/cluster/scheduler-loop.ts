// The leader's scheduling loop, a leader duty: after every applied change, on a periodic sweep
// and when a restart backoff expires, it evaluates the scheduler over the committed state and
// proposes the plan. Plumbing only: decisions are the scheduler's, fencing is the state machine's.
import type { IdGenerator } from "../core/ids.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { Plan } from "../core/types.ts";
import { evaluate } from "../scheduler/evaluate.ts";
import type { SchedulerInput } from "../scheduler/types.ts";
import type { AppliedEntry } from "../state/command-log.ts";
import type { StateView } from "../state/views.ts";
import type { LeaderDuty } from "./leadership.ts";
import type { MemberLog } from "./ports.ts";

export interface SchedulerLoopOptions {
  log: Pick<MemberLog, "view" | "onApplied" | "proposeHere">;
  /** Wall time for plans; the timers' monotonic clock measures evaluations. */
  now: () => number;
  timers: Timers;
  newId: IdGenerator;
  random: () => number;
  logger: Logger;
}

/** A plan with nothing in it is not proposed; one that only completes a deployment is not empty. */
export function isEmptyPlan(plan: Plan): boolean {
  const { create, assign, stop, events, completeDeployments, rebalanced } = plan;
  const parts = [create, assign, stop, events, completeDeployments, rebalanced];
  return parts.every((part) => part.length === 0);
}

/**
 * Whether an applied entry may give the scheduler work. A refused command changed nothing, an
 * applied plan is the scheduler's own (a refused one was stale: evaluate again), and an update
 * that left a service's count and revision alone places nothing new.
 */
export function needsEvaluation(entry: AppliedEntry): boolean {
  if (entry.command.type === "plan.apply") return !entry.result.ok;
  // What a node's ingress listens on changes no placement.
  if (entry.command.type === "node.ingress") return false;
  if (!entry.result.ok) return false;
  if (entry.command.type === "service.update") {
    return (entry.result.value as { rescheduled?: boolean }).rescheduled !== false;
  }
  return true;
}

/** How long writes wait to share an evaluation, after one that took `lastEvaluationMs`. */
export function coalesceDelayMs(lastEvaluationMs: number): number {
  const busy = lastEvaluationMs * limits.schedulerBusyFactor;
  return Math.min(limits.schedulerCoalesceMaxMs, Math.max(limits.schedulerCoalesceMs, busy));
}

export function schedulerInput(
  view: StateView,
  now: number,
  newId: IdGenerator,
  random: () => number,
): SchedulerInput {
  const tasks = view.activeTasks();
  const services = view.services();
  const taskDefinitions = view.referencedTaskDefinitions(tasks);
  const deployments = view.deploymentsInProgress();
  const nodes = view.nodes();
  return { nodes, services, taskDefinitions, tasks, deployments, now, newId, random };
}

export class SchedulerLoop implements LeaderDuty {
  readonly name = "scheduler";
  private cancelTimer: (() => void) | null = null;
  private cancelSweep: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private evaluating = false;
  private again = false;
  private timerDueAt = 0;
  /** How long the last evaluation took (its synchronous part: reading the fleet, deciding). */
  private lastEvaluationMs = 0;

  constructor(private readonly options: SchedulerLoopOptions) {}

  establish(): void {
    // Many writes applied close together need one evaluation, not one each: each reads the
    // whole fleet, so a burst of writes waits a few milliseconds (more when evaluations grow
    // long) and shares it.
    this.unsubscribe = this.options.log.onApplied((entry) => {
      if (needsEvaluation(entry)) this.trigger(coalesceDelayMs(this.lastEvaluationMs));
    });
    this.cancelSweep = this.options.timers.every(limits.schedulerSweepMs, () => this.trigger());
    this.trigger();
  }

  revoke(): void {
    this.unsubscribe?.();
    this.cancelSweep?.();
    this.cancelTimer?.();
    this.unsubscribe = null;
    this.cancelSweep = null;
    this.cancelTimer = null;
  }

  /** Whether the duty runs: between `establish` and `revoke`. */
  get running(): boolean {
    return this.cancelSweep !== null;
  }

  /** Runs one evaluation soon; triggers that arrive while one runs coalesce into one more. */
  trigger(delayMs = 0): void {
    if (!this.running) return;
    if (this.evaluating) {
      this.again = true;
      return;
    }
    const dueAt = this.options.timers.monotonic() + delayMs;
    // An evaluation already due sooner serves this trigger too.
    if (this.cancelTimer && this.timerDueAt <= dueAt) return;
    this.cancelTimer?.();
    this.timerDueAt = dueAt;
    this.cancelTimer = this.options.timers.after(delayMs, () => void this.runOnce());
  }

  private async runOnce(): Promise<void> {
    this.cancelTimer = null;
    if (!this.running) return;
    this.evaluating = true;
    let wakeAt: number | null = null;
    try {
      wakeAt = await this.evaluateAndPropose();
    } catch (error) {
      this.options.logger.error({ err: error }, "scheduling failed");
    } finally {
      this.evaluating = false;
    }
    if (this.again) {
      // Writes that came during the evaluation wait their turn as any write does: run at once,
      // a long evaluation would follow itself back to back and starve the writes.
      this.again = false;
      this.trigger(coalesceDelayMs(this.lastEvaluationMs));
    } else if (wakeAt !== null) {
      this.trigger(Math.max(0, wakeAt - this.options.now()));
    }
  }

  /** Proposes the plan of one evaluation; returns when the scheduler wants to run again. */
  private async evaluateAndPropose(): Promise<number | null> {
    const { timers, newId, random, log } = this.options;
    const now = this.options.now();
    const started = timers.monotonic();
    const { plan, nextEvaluationAt } = evaluate(schedulerInput(log.view(), now, newId, random));
    this.lastEvaluationMs = timers.monotonic() - started;
    if (isEmptyPlan(plan)) return nextEvaluationAt;
    // Proposed here only: a plan of a lease just lost is refused, never forwarded to the next
    // leader, which plans for itself.
    const result = await log.proposeHere({ type: "plan.apply", at: now, plan });
    // A stale plan lost a race with another change; the next evaluation sees that change. A
    // leader whose disk is full refuses at once: the sweep tries again, not a busy loop.
    if (!result.ok && result.code !== "E_NO_SPACE") this.again = true;
    return nextEvaluationAt;
  }
}

// Restart backoff, so that a crashing image does not hot-loop: the first failure is replaced at
// once, later ones after a delay that doubles per consecutive failure up to a ceiling.
import type { Service } from "../core/types.ts";
import type { SchedulerLimits } from "./types.ts";

/** Delay before replacing a failed task, given the service's failure streak. */
export function restartDelayMs(failureStreak: number, bounds: SchedulerLimits): number {
  if (failureStreak <= 1) return 0;
  const doubled = bounds.restartBackoffMsMin * 2 ** (failureStreak - 2);
  return Math.min(bounds.restartBackoffMsMax, doubled);
}

/** When the service may create tasks again, or null when it may now. */
export function backoffUntil(
  service: Service,
  now: number,
  bounds: SchedulerLimits,
): number | null {
  if (service.lastFailureAt === null) return null;
  const delay = restartDelayMs(service.failureStreak, bounds);
  const until = service.lastFailureAt + delay;
  return now < until ? until : null;
}

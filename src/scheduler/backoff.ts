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

/**
 * When the service may create tasks again, or null when it may now. No backoff lasts longer
 * than restartBackoffMsMax from its failure, so a wait longer than that from now means the wall
 * clock stepped back since (a node without a real-time clock correcting itself after boot). The
 * step is not known, and clamping the wait would not end it (each evaluation would clamp again
 * from its own now), so such a backoff counts as expired; the next failure is stamped by the
 * corrected clock and backs off normally again.
 */
export function backoffUntil(
  service: Service,
  now: number,
  bounds: SchedulerLimits,
): number | null {
  if (service.lastFailureAt === null) return null;
  const delay = restartDelayMs(service.failureStreak, bounds);
  const until = service.lastFailureAt + delay;
  if (until - now > bounds.restartBackoffMsMax) return null;
  return now < until ? until : null;
}

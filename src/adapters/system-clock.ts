// The real clock: wall time for timestamps, a monotonic clock for intervals.
import type { Clock } from "../core/clock.ts";

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

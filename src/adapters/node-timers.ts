// The timers port over Node's timers, on a clock's monotonic time.
import type { Clock } from "../core/clock.ts";
import type { Timers } from "../core/timers.ts";

export function nodeTimers(clock: Clock): Timers {
  return {
    monotonic: () => clock.monotonic(),
    after(ms, callback) {
      const timer = setTimeout(callback, ms);
      return () => clearTimeout(timer);
    },
    every(ms, callback) {
      const timer = setInterval(callback, ms);
      return () => clearInterval(timer);
    },
    soon: (callback) => setImmediate(callback),
  };
}

// Time as a port: wall time stamps records, monotonic time measures intervals.
// Inner layers never read a clock; they receive times as arguments.

export interface Clock {
  /** Milliseconds since the epoch, for timestamps people read. */
  now(): number;
  /** Milliseconds on a clock that never goes back, for intervals and leases. */
  monotonic(): number;
}

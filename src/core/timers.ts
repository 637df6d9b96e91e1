// Timers as a port, on a clock that never goes back: the Raft host, the cluster room's duties and
// their tests run the same code over Node's timers (adapters/node-timers.ts) or a manual twin
// (testing/manual-timers.ts).

/** Timers on a monotonic clock; each returns a function that cancels it. */
export interface Timers {
  /** Milliseconds on a clock that never goes back (the core's and the lease's time). */
  monotonic(): number;
  after(ms: number, callback: () => void): () => void;
  every(ms: number, callback: () => void): () => void;
  /** Runs `callback` once the current turn is over (work arriving together shares a batch). */
  soon(callback: () => void): void;
}

// The timers port's twin for unit tests: virtual time that moves only when a test advances it,
// with the promises that timers start let settle between steps.
import type { Timers } from "../core/timers.ts";

/** Virtual time: timers run only when the test advances the clock. */
export class ManualTimers implements Timers {
  nowMs = 0;
  private timers: { atMs: number; periodMs: number | null; callback: () => void }[] = [];
  private turn: (() => void)[] = [];

  monotonic = () => this.nowMs;

  after(ms: number, callback: () => void): () => void {
    return this.add({ atMs: this.nowMs + ms, periodMs: null, callback });
  }

  every(ms: number, callback: () => void): () => void {
    return this.add({ atMs: this.nowMs + ms, periodMs: ms, callback });
  }

  /** Timers started and neither cancelled nor, if one-shot, run: a stopped duty leaves none. */
  get pending(): number {
    return this.timers.length;
  }

  soon(callback: () => void): void {
    this.turn.push(callback);
  }

  private add(timer: (typeof this.timers)[number]): () => void {
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Runs what was handed to `soon` so far, and nothing it hands on. */
  runTurn(): void {
    for (const callback of this.turn.splice(0)) callback();
  }

  /** Runs what is due now, then lets promises settle, until nothing more happens. */
  async settle(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      const due = this.timers.filter((t) => t.atMs <= this.nowMs);
      const soon = this.turn.splice(0);
      if (due.length === 0 && soon.length === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.turn.length === 0) return;
        continue;
      }
      for (const timer of due) {
        if (timer.periodMs === null) this.timers = this.timers.filter((t) => t !== timer);
        else timer.atMs += timer.periodMs;
        timer.callback();
      }
      for (const callback of soon) callback();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async advance(ms: number, stepMs = 10): Promise<void> {
    for (let passed = 0; passed < ms; passed += stepMs) {
      this.nowMs += stepMs;
      await this.settle();
    }
  }
}

// Work done in rounds on a timer, one round at a time: a round still running when the next is
// due makes that one wait its turn, and a failed round is logged and tried again next time.
import type { Timers } from "../core/timers.ts";

export class Rounds {
  private cancel: (() => void) | null = null;
  private busy = false;

  constructor(
    private readonly timers: Timers,
    private readonly everyMs: number,
    private readonly work: () => Promise<void>,
    private readonly failed: (error: unknown) => void,
  ) {}

  /** Starts the timer, with a first round now. */
  start(): void {
    if (this.cancel) return;
    this.cancel = this.timers.every(this.everyMs, () => void this.round());
    void this.round();
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }

  /** Between `start` and `stop`. */
  get running(): boolean {
    return this.cancel !== null;
  }

  /** One round now, unless one runs or the rounds are stopped. */
  async round(): Promise<void> {
    if (this.busy || this.cancel === null) return;
    this.busy = true;
    try {
      await this.work();
    } catch (error) {
      this.failed(error);
    } finally {
      this.busy = false;
    }
  }
}

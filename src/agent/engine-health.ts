// Whether this node's container engine answers, as the agent last told the leader: reported once
// per change, and a back-off for the passes while it does not answer.

import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import { errorMessage } from "./engine-errors.ts";
import type { AgentReporter } from "./ports.ts";

/** The wait before the next pass after `attempt` passes in a row found the engine down. */
export function engineRetryDelayMs(attempt: number): number {
  return Math.min(limits.dockerRetryMsMax, limits.dockerRetryMsMin * 2 ** attempt);
}

export class EngineHealth {
  /** The engine state last reported; null before the first report. */
  private ready: boolean | null = null;
  private retryAttempt = 0;

  constructor(
    private readonly reporter: AgentReporter,
    private readonly logger: Logger,
  ) {}

  /** The engine answered a pass: reports it ready when that is news. */
  async answers(): Promise<void> {
    this.retryAttempt = 0;
    if (this.ready === true) return;
    if (this.ready === false) this.logger.info({}, "docker engine answers again");
    await this.report(true, "");
  }

  /** Reports the engine down (once), and returns how long to wait before the next try. */
  async unreachable(error: unknown): Promise<number> {
    const message = errorMessage(error);
    const delayMs = engineRetryDelayMs(this.retryAttempt);
    this.retryAttempt = Math.min(this.retryAttempt + 1, 30);
    if (this.ready !== false) {
      this.logger.error(
        { err: message, retryMs: delayMs },
        `docker engine unreachable: ${message}`,
      );
      await this.report(false, message);
    }
    return delayMs;
  }

  private async report(ready: boolean, message: string): Promise<void> {
    try {
      await this.reporter.reportEngine(ready, message);
      this.ready = ready;
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, "engine report failed; will retry");
    }
  }
}

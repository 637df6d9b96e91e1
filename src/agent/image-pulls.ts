// The agent's image pulls: they run beside the reconcile loop, one per image and at most
// `imagePullsInFlightMax` at once, and each end triggers a pass. When each image's last pull
// ended is remembered, so an image still missing soon after fails its task without another pull.

import type { Clock } from "../core/clock.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import { errorMessage, isEngineDown } from "./engine-errors.ts";

import type { ContainerRuntime } from "./runtime.ts";

interface Pull {
  controller: AbortController;
  /** Settles when the pull has ended and its outcome is recorded. */
  done: Promise<void>;
}

export interface ImagePullsOptions {
  runtime: ContainerRuntime;
  logger: Logger;
  clock: Clock;
  /** Called when a pull has ended, whatever its outcome: a pass then creates the container. */
  onEnded: () => void;
}

export class ImagePulls {
  private readonly pulls = new Map<string, Pull>();
  /** When each image's last pull ended (monotonic ms); the oldest is forgotten first. */
  private readonly endedMs = new Map<string, number>();
  private aborted = false;

  constructor(private readonly options: ImagePullsOptions) {}

  /** The images being pulled now. */
  inFlight(): ReadonlySet<string> {
    return new Set(this.pulls.keys());
  }

  /** When each image's last pull ended, for the task decision. */
  endings(): ReadonlyMap<string, number> {
    return this.endedMs;
  }

  /** Starts a pull that no pass awaits; its end calls `onEnded`. */
  begin(taskId: string, image: string): void {
    const { runtime, logger, clock } = this.options;
    logger.info({ task: taskId, image }, `pulling image ${image}`);
    const controller = new AbortController();
    const startedMs = clock.monotonic();
    const done = runtime
      .pull(image, controller.signal)
      .then(
        () => this.ended(image, startedMs, null),
        (error: unknown) => this.ended(image, startedMs, error),
      )
      .finally(() => {
        this.pulls.delete(image);
        this.options.onEnded();
      });
    this.pulls.set(image, { controller, done });
  }

  /** Aborts every running pull; resolves when they have ended. */
  async abortAll(): Promise<void> {
    this.aborted = true;
    const pulls = [...this.pulls.values()];
    for (const pull of pulls) pull.controller.abort();
    await Promise.allSettled(pulls.map((pull) => pull.done));
  }

  private ended(image: string, startedMs: number, error: unknown): void {
    // Aborted by abortAll(): there is nothing left to decide.
    if (this.aborted) return;
    const { logger, clock } = this.options;
    const tookMs = Math.round(clock.monotonic() - startedMs);
    if (error === null) {
      logger.info({ image, tookMs }, `pulled image ${image}`);
    } else if (isEngineDown(error)) {
      // Not the image's fault: the passes wait for the engine, then pull again.
      logger.warn({ image, err: errorMessage(error) }, "image pull cut off");
      return;
    } else {
      const message = errorMessage(error);
      logger.warn({ image, tookMs, err: message }, `pull of image ${image} failed: ${message}`);
    }
    this.rememberEnd(image);
  }

  private rememberEnd(image: string): void {
    this.endedMs.delete(image);
    this.endedMs.set(image, this.options.clock.monotonic());
    if (this.endedMs.size > limits.imagePullOutcomesRememberedMax) {
      const oldest = this.endedMs.keys().next().value;
      if (oldest !== undefined) this.endedMs.delete(oldest);
    }
  }
}

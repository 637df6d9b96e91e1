// What a node cut off from the leader remembers of its own crashed containers: how often it
// restarted each task's (for the backoff, and for the report once back in touch), and which tasks
// it stopped itself after stopAfterDisconnectMs (so their exit is not reported as a crash).
import { limits } from "../core/limits.ts";

export interface OfflineRestart {
  count: number;
  /** Monotonic ms of the last restart. */
  lastMs: number;
}

/** How long a task restarted `prior` times must still wait before the next restart; 0 for now. */
export function offlineRestartWaitMs(prior: OfflineRestart | null, nowMs: number): number {
  if (prior === null) return 0;
  const delayMs = Math.min(
    limits.offlineRestartMsMax,
    limits.offlineRestartMsMin * 2 ** (prior.count - 1),
  );
  return prior.lastMs + delayMs - nowMs;
}

export class OfflineRestarts {
  private readonly restarts = new Map<string, OfflineRestart>();
  private readonly stoppedWhileCutOff = new Set<string>();

  of(taskId: string): OfflineRestart | null {
    return this.restarts.get(taskId) ?? null;
  }

  record(taskId: string, restart: OfflineRestart): void {
    this.restarts.set(taskId, restart);
  }

  markStopped(taskId: string): void {
    this.stoppedWhileCutOff.add(taskId);
  }

  stoppedHere(taskId: string): boolean {
    return this.stoppedWhileCutOff.has(taskId);
  }

  /** Forgets the tasks this pass no longer saw: the memory is bounded by the node's tasks. */
  keepOnly(seen: ReadonlySet<string>): void {
    for (const taskId of this.restarts.keys()) {
      if (!seen.has(taskId)) this.restarts.delete(taskId);
    }
    for (const taskId of this.stoppedWhileCutOff) {
      if (!seen.has(taskId)) this.stoppedWhileCutOff.delete(taskId);
    }
  }
}

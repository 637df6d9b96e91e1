// Sends a task's report only when it says something new: against the last report sent for the
// task, or, before any, against what the store already holds. Unchanged state is never sent twice.
import type { Logger } from "../core/logger.ts";
import type { Task, TaskReport } from "../core/types.ts";
import { errorMessage } from "./engine-errors.ts";
import type { AgentReporter } from "./ports.ts";
import { reportFromTask, reportKey } from "./task-containers.ts";

export class ReportDedup {
  private readonly lastReported = new Map<string, { key: string; state: TaskReport["state"] }>();

  constructor(
    private readonly nodeId: string,
    private readonly reporter: AgentReporter,
    private readonly logger: Logger,
  ) {}

  /** The state last reported for a task, or null before any report (or once forgotten). */
  lastState(taskId: string): TaskReport["state"] | null {
    return this.lastReported.get(taskId)?.state ?? null;
  }

  /** Sends `report` when it differs from the last one; true once it is known to the store. */
  async send(task: Task, report: TaskReport): Promise<boolean> {
    const key = reportKey(report);
    const previous =
      this.lastReported.get(task.id)?.key ?? reportKey(reportFromTask(task, this.nodeId));
    if (key === previous) return true;
    try {
      await this.reporter.reportTasks([report]);
    } catch (error) {
      this.logger.warn(
        { task: task.id, err: errorMessage(error) },
        "task report failed; will retry",
      );
      return false;
    }
    this.lastReported.set(task.id, { key, state: report.state });
    return true;
  }

  /** Forgets the tasks this pass no longer saw. */
  keepOnly(seen: ReadonlySet<string>): void {
    for (const taskId of this.lastReported.keys()) {
      if (!seen.has(taskId)) this.lastReported.delete(taskId);
    }
  }
}

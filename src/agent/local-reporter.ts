// Reports what the agent observes by proposing it to the command log: on the leader it is
// proposed there, elsewhere the log forwards it to the leader over the peer channel.
import type { Clock } from "../core/clock.ts";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { TaskReport } from "../core/types.ts";
import type { CommandLog } from "../state/command-log.ts";

const clip = (text: string): string => text.slice(0, limits.commandTextBytesMax / 4);

import type { AgentReporter } from "./ports.ts";

export function localReporter(log: CommandLog, clock: Clock, nodeId: string): AgentReporter {
  return {
    async reportTasks(reports: TaskReport[]): Promise<void> {
      for (let start = 0; start < reports.length; start += limits.reportBatchMax) {
        const batch = reports
          .slice(start, start + limits.reportBatchMax)
          .map((report) => ({ ...report, reason: clip(report.reason) }));
        const result = await log.propose({ type: "task.report", at: clock.now(), reports: batch });
        if (!result.ok) throw new ShoalError(result.code, result.message);
      }
    },
    async reportEngine(ready: boolean, message: string): Promise<void> {
      const result = await log.propose({
        type: "node.engine",
        at: clock.now(),
        nodeId,
        ready,
        message,
      });
      if (!result.ok) throw new ShoalError(result.code, result.message);
    },
  };
}

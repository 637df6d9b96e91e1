// The node's report of its ingress: when what it listens on differs from what its row says, it
// proposes `node.ingress` (the store keeps it for `service inspect` and `shoal status`, and
// records an event when a port starts or fails to listen). Looked at as often as the node
// heartbeats, so a report a missing leader refused is made again.
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { IngressListening } from "../core/types.ts";
import type { CommandLog } from "../state/command-log.ts";

export interface IngressReporterOptions {
  log: CommandLog;
  nodeId: string;
  /** What the node's ingress does now; ports still opening are left out until they know. */
  statuses: () => IngressListening[];
  now: () => number;
  logger: Logger;
}

export class IngressReporter {
  private reporting = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: IngressReporterOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), limits.agentHeartbeatMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: proposes when the row says other than the ingress does. */
  async check(): Promise<void> {
    const { log, nodeId } = this.options;
    const row = log.view().nodeById(nodeId);
    if (this.reporting || !row || row.status === "left") return;
    const listeners = this.options.statuses();
    if (JSON.stringify(listeners) === JSON.stringify(row.ingress)) return;
    this.reporting = true;
    try {
      const at = this.options.now();
      const result = await log.propose({ type: "node.ingress", at, nodeId, listeners });
      if (!result.ok) this.options.logger.warn({ code: result.code }, "ingress report refused");
    } catch (error) {
      this.options.logger.warn({ err: error }, "ingress report failed; it is made again");
    } finally {
      this.reporting = false;
    }
  }
}

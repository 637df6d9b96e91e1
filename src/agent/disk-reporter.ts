// The node's report of its own disk: when the disk fills or has room again, the node proposes
// `node.disk`, which sets the flag on its row (the scheduler places nothing new there) and
// records an event. Like the engine report, it goes through the log, so through the leader.
import type { Clock } from "../core/clock.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { DiskStatus } from "../core/types.ts";
import type { CommandLog } from "../state/command-log.ts";

export interface DiskReporterOptions {
  log: CommandLog;
  nodeId: string;
  /** The disk as this node measures it (never from the store, which may not take writes). */
  disk: () => DiskStatus;
  clock: Clock;
  logger: Logger;
}

/**
 * What the node reports, given its disk now, what its row says, and whether it saw the disk
 * full while its row never said so: such a spell is reported after the fact (a lone node's log
 * writes nothing while full), so every full spell leaves its two events.
 */
export function diskReport(seen: { full: boolean; rowFull: boolean; unrecorded: boolean }): {
  full: boolean;
  unrecorded: boolean;
} {
  const unrecorded = (seen.unrecorded || seen.full) && !seen.rowFull;
  return { full: seen.full || unrecorded, unrecorded };
}

export class DiskReporter {
  private unrecorded = false;
  private reporting = false;
  private lastStatus: DiskStatus["status"] = "ok";
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: DiskReporterOptions) {}

  /** Looks as often as the node heartbeats. */
  start(): void {
    this.timer = setInterval(() => void this.check(), limits.agentHeartbeatMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: proposes `node.disk` when the row does not say what the node should report. */
  async check(): Promise<void> {
    const { log, nodeId } = this.options;
    const row = log.view().nodeById(nodeId);
    if (this.reporting || !row) return;
    const disk = this.options.disk();
    this.logChange(disk);
    const next = diskReport({
      full: disk.status === "full",
      rowFull: row.diskFull,
      unrecorded: this.unrecorded,
    });
    this.unrecorded = next.unrecorded;
    if (next.full === row.diskFull) return;
    this.reporting = true;
    try {
      const { freeBytes, reserveBytes } = disk;
      const at = this.options.clock.now();
      await log.propose({
        type: "node.disk",
        at,
        nodeId,
        full: next.full,
        freeBytes,
        reserveBytes,
      });
    } finally {
      this.reporting = false;
    }
  }

  private logChange(disk: DiskStatus): void {
    if (disk.status === this.lastStatus) return;
    this.lastStatus = disk.status;
    const { freeBytes, reserveBytes } = disk;
    if (disk.status === "full") {
      this.options.logger.warn(
        { freeBytes, reserveBytes },
        "the data dir's disk is full: this node refuses writes as leader until space is freed",
      );
    } else {
      this.options.logger.info({ freeBytes, reserveBytes }, "the data dir's disk has room again");
    }
  }
}

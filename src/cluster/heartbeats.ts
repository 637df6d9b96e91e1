// The heartbeat registry: when this node last heard each node (a heartbeat, or a command of its
// own), and the machine use each reported. Kept in memory, never in the log; only the leader's
// is judged (liveness.ts) and shown in `GET /v1/nodes`.
import { z } from "zod";
import { limits } from "../core/limits.ts";
import type { HostUsage } from "../core/types.ts";
import type { AppliedEntry } from "../state/command-log.ts";
import type { Command } from "../state/commands.ts";

/** A heartbeat's usage report (core/types.ts says what each figure is). */
export const hostUsageSchema = z.strictObject({
  load1: z.number().nonnegative().max(1e6),
  memoryFreeMb: z.number().int().nonnegative().max(1e9),
  at: z.number().int().nonnegative(),
}) satisfies z.ZodType<HostUsage>;

/** A heartbeat's body, as a peer sends it. */
export const heartbeatSchema = z.strictObject({ usage: hostUsageSchema.optional() });

export class Heartbeats {
  private readonly heard = new Map<string, number>();
  /** The latest usage per node; bounded, the longest silent forgotten first. */
  private readonly usage = new Map<string, HostUsage>();

  /** `monotonic` is the clock the leader's lease and judgement run on. */
  constructor(private readonly monotonic: () => number) {}

  /** `nodeId` showed it is alive, now. */
  heardFrom(nodeId: string, usage?: HostUsage): void {
    this.heard.delete(nodeId);
    this.heard.set(nodeId, this.monotonic());
    if (usage) this.remember(nodeId, usage);
    if (this.heard.size > limits.heartbeatUsagesKeptMax) this.forgetOldest(this.heard);
  }

  /** An applied command of a node's own is proof of life too (see `speakers`). */
  heardIn(entry: AppliedEntry): void {
    for (const nodeId of speakers(entry.command)) this.heardFrom(nodeId);
  }

  /** When each node was last heard (monotonic ms). */
  get heardAt(): ReadonlyMap<string, number> {
    return this.heard;
  }

  usageOf(nodeId: string): HostUsage | null {
    return this.usage.get(nodeId) ?? null;
  }

  private remember(nodeId: string, report: HostUsage): void {
    this.usage.delete(nodeId);
    this.usage.set(nodeId, report);
    if (this.usage.size > limits.heartbeatUsagesKeptMax) this.forgetOldest(this.usage);
  }

  /** Maps keep insertion order: the first key is the one that reported longest ago. */
  private forgetOldest(map: Map<string, unknown>): void {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}

/**
 * The nodes that spoke through an applied command: a registration (a node that joins, or starts
 * again, before its first heartbeat arrives), an engine report or a task report is proof of life.
 */
export function speakers(command: Command): string[] {
  if (command.type === "node.register") return [command.id];
  if (command.type === "node.engine") return [command.nodeId];
  if (command.type === "task.report") return command.reports.map((report) => report.node);
  return [];
}

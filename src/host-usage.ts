// What a node reports of its machine with every heartbeat: load and free memory, as the OS sees
// them. The leader keeps the latest report per node in memory (never in the log) and shows it
// in `GET /v1/nodes`.
import { freemem, loadavg } from "node:os";
import { z } from "zod";

export const hostUsageSchema = z.strictObject({
  /** The 1-minute load average. */
  load1: z.number().nonnegative().max(1e6),
  memoryFreeMb: z.number().int().nonnegative().max(1e9),
  /** When the node measured it (its wall clock, ms). */
  at: z.number().int().nonnegative(),
});

export type HostUsage = z.infer<typeof hostUsageSchema>;

export function hostUsage(now: number): HostUsage {
  const [load1 = 0] = loadavg();
  return {
    load1: Math.round(load1 * 100) / 100,
    memoryFreeMb: Math.floor(freemem() / (1024 * 1024)),
    at: now,
  };
}

// This machine's use as the OS sees it (load and free memory), which a node sends with every
// heartbeat (cluster/heartbeats.ts keeps the leader's copy).
import { freemem, loadavg } from "node:os";
import type { HostUsage } from "../core/types.ts";

export function hostUsage(now: number): HostUsage {
  const [load1 = 0] = loadavg();
  return {
    load1: Math.round(load1 * 100) / 100,
    memoryFreeMb: Math.floor(freemem() / (1024 * 1024)),
    at: now,
  };
}

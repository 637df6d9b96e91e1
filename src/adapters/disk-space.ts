// The disk under the data dir: how much room is left (statfs, measured at most every
// `diskSpaceCheckMs`), and the errors that mean it is full, told apart from the rest so the Raft
// host can wait for space instead of crashing.
import { statfsSync } from "node:fs";
import { noSpaceError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { DiskStatus } from "../core/types.ts";
import type { HostDiskSpace } from "../raft/host/ports.ts";

/** libSQL's SqliteError carries SQLite's primary result code; SQLITE_FULL is 13. */
const sqliteFullCode = 13;

/** Whether `error` says the disk is full: ENOSPC, a quota (EDQUOT), or SQLite's SQLITE_FULL. */
export function isDiskFullError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, rawCode } = error as { code?: unknown; rawCode?: unknown };
  return (
    code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL" || rawCode === sqliteFullCode
  );
}

/** Runs `work`; a full disk becomes E_NO_SPACE (see `noSpaceError`), anything else passes. */
export function orNoSpace<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw isDiskFullError(error) ? noSpaceError(what, error) : error;
  }
}

/** Free bytes for an unprivileged writer (root may dig into ext4's reserved blocks too). */
export function freeBytesOf(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

/**
 * Free space in the data dir against the reserve, measured at most every `checkMs`, and again
 * after the node wrote (`wrote`): a write may take megabytes at once (a WAL checkpoint), and a
 * figure from before it would let the next writes through the reserve. So at most one statfs
 * per batch the log writes, shared by every proposal of the batch, never one per request.
 */
export class DiskSpace implements HostDiskSpace {
  private free = Number.POSITIVE_INFINITY;
  private measuredAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly dir: string,
    /** A monotonic clock, in milliseconds. */
    private readonly now: () => number,
    readonly reserveBytes: number = limits.diskReserveBytes,
    private readonly measure: (dir: string) => number = freeBytesOf,
    private readonly checkMs: number = limits.diskSpaceCheckMs,
  ) {}

  freeBytes(): number {
    const now = this.now();
    if (now - this.measuredAtMs < this.checkMs) return this.free;
    this.measuredAtMs = now;
    try {
      this.free = this.measure(this.dir);
    } catch (error) {
      // Unmeasurable is not full: the last figure stands, and a real full disk still shows as
      // ENOSPC on the next write.
      console.error(`shoal: cannot measure free space in ${this.dir}`, error);
    }
    return this.free;
  }

  short(): boolean {
    return this.freeBytes() < this.reserveBytes;
  }

  /** The node wrote to the disk: the next question measures again. */
  wrote(): void {
    this.measuredAtMs = Number.NEGATIVE_INFINITY;
  }
}

/** The node's disk as the health route shows it: full when short or when the log is held. */
export function diskStatus(space: DiskSpace, logHeld: boolean): DiskStatus {
  const freeBytes = space.freeBytes();
  const full = logHeld || freeBytes < space.reserveBytes;
  return {
    status: full ? "full" : "ok",
    freeBytes: Number.isFinite(freeBytes) ? freeBytes : null,
    reserveBytes: space.reserveBytes,
    logHeld,
  };
}

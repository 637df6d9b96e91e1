// A small tmpfs for tests of a full disk: mounted on a fresh folder, filled, grown and unmounted.
// Mounting needs root; `tmpfsUnavailable()` says why a test must be skipped elsewhere.
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  rmdirSync,
  rmSync,
  statfsSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Why no tmpfs can be mounted here (not root), or null when one can. */
export function tmpfsUnavailable(): string | null {
  if (process.platform !== "linux") return "tmpfs mounts need Linux";
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  return null;
}

/** The largest write of `fill`: fills fast, then smaller writes take the last pages. */
const fillChunkBytes = 1024 * 1024;

export class Tmpfs {
  private mounted = true;

  private constructor(
    readonly path: string,
    /** The size it was mounted with or last resized to. */
    public sizeBytes: number,
  ) {}

  /** Mounts a tmpfs of `sizeBytes` on a new folder under the system's temporary folder. */
  static mount(sizeBytes: number): Tmpfs {
    const path = mkdtempSync(join(tmpdir(), "shoal-tmpfs-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0755`, "tmpfs", path]);
    } catch (error) {
      rmdirSync(path);
      throw error;
    }
    return new Tmpfs(path, sizeBytes);
  }

  freeBytes(): number {
    const stats = statfsSync(this.path);
    return stats.bavail * stats.bsize;
  }

  /** Changes the size without unmounting: what is on it stays, and running processes see it. */
  resize(sizeBytes: number): void {
    execFileSync("mount", ["-o", `remount,size=${sizeBytes}`, this.path]);
    this.sizeBytes = sizeBytes;
  }

  /** Grows it (never shrinks) so that at least `freeBytes` are free. */
  ensureFree(freeBytes: number): void {
    const missing = freeBytes - this.freeBytes();
    if (missing > 0) this.resize(this.sizeBytes + Math.ceil(missing / 4096) * 4096);
  }

  /**
   * Appends to `name` until no more than `leaveBytes` are free (by default until the file system
   * is full, ENOSPC, as `dd if=/dev/zero` would), then returns the bytes written. With nothing
   * left, everything else that writes there gets ENOSPC too.
   */
  fill(name: string, leaveBytes = 0): number {
    const fd = openSync(join(this.path, name), "a");
    let written = 0;
    try {
      for (let chunk = fillChunkBytes; chunk >= 512; ) {
        const room = this.freeBytes() - leaveBytes;
        if (room < 512) break;
        try {
          written += writeSync(fd, Buffer.alloc(Math.min(chunk, room)));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
          chunk /= 2;
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  remove(name: string): void {
    rmSync(join(this.path, name), { force: true });
  }

  /** Unmounts (lazily, should a process still hold a file there) and removes the folder. */
  unmount(): void {
    if (!this.mounted) return;
    execFileSync("umount", ["--lazy", this.path]);
    this.mounted = false;
    rmdirSync(this.path);
  }
}

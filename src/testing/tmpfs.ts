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

  private constructor(readonly path: string) {}

  /** Mounts a tmpfs of `sizeBytes` on a new folder under the system's temporary folder. */
  static mount(sizeBytes: number): Tmpfs {
    const path = mkdtempSync(join(tmpdir(), "shoal-tmpfs-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0755`, "tmpfs", path]);
    } catch (error) {
      rmdirSync(path);
      throw error;
    }
    return new Tmpfs(path);
  }

  freeBytes(): number {
    const stats = statfsSync(this.path);
    return stats.bavail * stats.bsize;
  }

  /** Changes the size without unmounting: what is on it stays, and running processes see it. */
  resize(sizeBytes: number): void {
    execFileSync("mount", ["-o", `remount,size=${sizeBytes}`, this.path]);
  }

  /**
   * Writes `name` until the file system is full (ENOSPC), as `dd if=/dev/zero` would, then
   * returns the bytes written. Everything else that writes there now gets ENOSPC too.
   */
  fill(name: string): number {
    const fd = openSync(join(this.path, name), "a");
    let written = 0;
    try {
      for (let chunk = fillChunkBytes; chunk >= 512; ) {
        try {
          written += writeSync(fd, Buffer.alloc(chunk));
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

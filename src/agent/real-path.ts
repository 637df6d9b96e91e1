// The host's realpath of a path that may not exist yet (for resolveHostPath in core/host-paths.ts).
import { realpathSync } from "node:fs";

export function realpathOrNull(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

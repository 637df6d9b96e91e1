// Version facts printed by `shoal version` and published by the node. A compiled build sets
// SHOAL_COMMIT at build time; a source checkout asks git.
import { execFileSync } from "node:child_process";
import packageJson from "../package.json" with { type: "json" };

export const version: string = packageJson.version;

export function gitCommit(): string {
  if (process.env.SHOAL_COMMIT) return process.env.SHOAL_COMMIT;
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: import.meta.dirname,
      stdio: ["ignore", "pipe", "ignore"],
    })
      .toString()
      .trim();
  } catch {
    // Outside a checkout there is no commit to tell; "unknown" says exactly that.
    return "unknown";
  }
}

// The node's data dir: its identity (node.id), its libSQL files, and the API token file that
// the CLI reads. Secrets are written with mode 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes a file whole or not at all: a crash never leaves half a token behind. */
function writeAtomically(path: string, content: string, mode: number): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

/** The node's id, made once and kept: a node's identity is its id, never its name. */
export function loadOrCreateNodeId(dir: string, newId: () => string): string {
  const path = join(dir, "node.id");
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  const id = newId();
  writeAtomically(path, `${id}\n`, 0o644);
  return id;
}

export function writeApiToken(dir: string, token: string): void {
  const path = join(dir, "api.token");
  if (existsSync(path) && readFileSync(path, "utf8").trim() === token) return;
  writeAtomically(path, `${token}\n`, 0o600);
}

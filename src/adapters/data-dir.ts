// The node's data dir: its identity (node.id), its libSQL files, and the API token file that
// the CLI reads. Secrets are written with mode 0600.
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

/** The data dir holds the tokens (also inside the databases): only its owner may enter it. */
export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file whole and on disk, or not at all (write, fsync, rename, fsync the folder): a
 * crash never leaves half a token or half a snapshot behind.
 */
export function writeDurably(path: string, content: string | Uint8Array, mode = 0o644): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  syncPath(temporary);
  renameSync(temporary, path);
  syncPath(dirname(path));
}

/** The node's id, made once and kept: a node's identity is its id, never its name. */
export function loadOrCreateNodeId(dir: string, newId: () => string): string {
  const path = join(dir, "node.id");
  if (existsSync(path)) {
    const id = readFileSync(path, "utf8").trim();
    if (!/^[0-9a-z]{6,64}$/.test(id)) {
      throw new Error(
        `${path} does not hold a node id ("${id.slice(0, 40)}"); remove it to start as a new node`,
      );
    }
    return id;
  }
  const id = newId();
  writeDurably(path, `${id}\n`, 0o644);
  return id;
}

/** Writes a secret only its owner may read, unless the file already holds it. */
export function writeSecret(path: string, secret: string): void {
  if (existsSync(path) && readFileSync(path, "utf8").trim() === secret) return;
  writeDurably(path, `${secret}\n`, 0o600);
}

export function writeApiToken(dir: string, token: string): void {
  writeSecret(join(dir, "api.token"), token);
}

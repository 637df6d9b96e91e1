// How the CLI finds its node: SHOAL_ADDR and SHOAL_API_TOKEN when set, otherwise the local agent
// on the default port with the token from its data dir. The agent picks its data dir the same way.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";

export type Env = Record<string, string | undefined>;

/** What target resolution reads from the machine; tests pass their own. */
export interface System {
  env: Env;
  /** null where there are no uids (Windows). */
  uid: number | null;
  home: string;
  readFile(path: string): string;
}

export interface Target {
  address: string;
  token: string;
  /** The cluster CA to trust (PEM): SHOAL_CA's file, else the data dir's ca.pem; null if neither. */
  ca: string | null;
}

export const tokenFileName = "api.token";

export function realSystem(): System {
  return {
    env: process.env,
    uid: typeof process.getuid === "function" ? process.getuid() : null,
    home: homedir(),
    readFile: (path) => readFileSync(path, "utf8"),
  };
}

/**
 * The data dir when no `--data-dir` is given: SHOAL_DATA_DIR, else `/var/lib/shoal` for root,
 * else `$XDG_DATA_HOME/shoal` (default `~/.local/share/shoal`), as the XDG spec asks.
 */
export function defaultDataDir(
  system: Pick<System, "env" | "uid" | "home"> = realSystem(),
): string {
  const { env, uid, home } = system;
  if (env.SHOAL_DATA_DIR) return env.SHOAL_DATA_DIR;
  if (uid === 0) return "/var/lib/shoal";
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  const xdg = env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : null;
  return join(xdg ?? join(home, ".local", "share"), "shoal");
}

export function resolveDataDir(flag: string | undefined, system: System = realSystem()): string {
  return flag ?? defaultDataDir(system);
}

/** Accepts `https://host:port` or a bare `host:port`; shoal speaks no plain HTTP. */
export function normalizeAddress(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ShoalError("E_VALIDATION", `not an address: ${text}`);
  }
  if (url.protocol !== "https:") {
    throw new ShoalError("E_VALIDATION", `shoal's API is HTTPS only: ${text}`);
  }
  return `${url.protocol}//${url.host}`;
}

export function resolveTarget(
  options: { dataDir?: string; ca?: string },
  system: System = realSystem(),
): Target {
  const address = system.env.SHOAL_ADDR
    ? normalizeAddress(system.env.SHOAL_ADDR)
    : `https://127.0.0.1:${limits.apiPortDefault}`;
  const dataDir = resolveDataDir(options.dataDir, system);
  const token = system.env.SHOAL_API_TOKEN || readApiToken(dataDir, system);
  return { address, token, ca: readCa(options.ca ?? system.env.SHOAL_CA, dataDir, system) };
}

export const joinTokenFileName = "join.token";

/** `<data dir>/ca.pem`, written when the node created or joined a cluster. */
export function readCaFile(dataDir: string, system: System = realSystem()): string {
  const path = join(dataDir, "ca.pem");
  try {
    return system.readFile(path);
  } catch (error) {
    throw new ShoalError(
      "E_NOT_FOUND",
      `no CA certificate: ${path} does not exist (start \`shoal agent\` first)`,
      {
        cause: error,
      },
    );
  }
}

/** The CA file given (`--ca`, SHOAL_CA), which must exist; else the data dir's, if there. */
function readCa(given: string | undefined, dataDir: string, system: System): string | null {
  if (given) {
    try {
      return system.readFile(given);
    } catch (error) {
      throw new ShoalError("E_VALIDATION", `cannot read the CA file ${given}`, { cause: error });
    }
  }
  try {
    return system.readFile(join(dataDir, "ca.pem"));
  } catch {
    return null;
  }
}

/** The API token from `<data dir>/api.token`; a missing token says where it was looked for. */
export function readApiToken(dataDir: string, system: System = realSystem()): string {
  return readTokenFile(join(dataDir, tokenFileName), system, apiTokenMissing);
}

/** The join token from `<data dir>/join.token`, written when the node created or joined a cluster. */
export function readJoinTokenFile(dataDir: string, system: System = realSystem()): string {
  return readTokenFile(join(dataDir, joinTokenFileName), system, joinTokenMissing);
}

const apiTokenMissing = (path: string) =>
  `no API token: SHOAL_API_TOKEN is not set and ${path} does not exist (start \`shoal agent\` first, or give --data-dir, SHOAL_DATA_DIR or SHOAL_API_TOKEN)`;
const joinTokenMissing = (path: string) =>
  `no join token: ${path} does not exist (start \`shoal agent\` first, or give --data-dir or SHOAL_DATA_DIR)`;

function readTokenFile(path: string, system: System, missing: (path: string) => string): string {
  let text: string;
  try {
    text = system.readFile(path);
  } catch (error) {
    throw tokenError(path, error, missing);
  }
  const token = text.trim();
  if (!token) throw new ShoalError("E_UNAUTHORIZED", `the token file ${path} is empty`);
  return token;
}

function tokenError(path: string, error: unknown, missing: (path: string) => string): ShoalError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") {
    return new ShoalError(
      "E_UNAUTHORIZED",
      `cannot read ${path}: permission denied (run as the agent's user, or set SHOAL_API_TOKEN)`,
      { cause: error },
    );
  }
  return new ShoalError("E_UNAUTHORIZED", missing(path), { cause: error });
}

// Host-path mounts are each node's choice: a node allows directories (`--allow-host-path`), and a
// mount's source must lie under one of them and never over what the node denies (shoal's data dir,
// the engine's socket). Whoever holds the API token is root on every node that allows `/`.
import { posix } from "node:path";

export interface HostPathPolicy {
  /** Directories whose contents tasks may mount (absolute, normalized). */
  allowed: readonly string[];
  /** Paths no mount may reach or contain: shoal's data dir, the engine's socket. */
  denied: readonly string[];
}

/** A mount's source names a host path (as Docker reads it) rather than a named volume. */
export function isHostPath(source: string): boolean {
  return source.startsWith("/");
}

export function normalizeHostPath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/** Whether `path` is `dir` or lies below it. */
function within(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}

/** Whether the node's policy lets a task mount `source`. */
export function hostPathAllowed(source: string, policy: HostPathPolicy): boolean {
  const path = normalizeHostPath(source);
  if (!policy.allowed.some((dir) => within(path, normalizeHostPath(dir)))) return false;
  // Neither under a denied path nor above one: mounting `/` would expose the data dir too.
  return !policy.denied.some((denied) => {
    const normal = normalizeHostPath(denied);
    return within(path, normal) || within(normal, path);
  });
}

/** The host paths a set of containers mounts, normalized, each once. */
export function hostPathsOf(
  containers: readonly { mounts: readonly { source: string }[] }[],
): string[] {
  const paths = containers.flatMap((c) => c.mounts.map((m) => m.source)).filter(isHostPath);
  return [...new Set(paths.map(normalizeHostPath))];
}

/**
 * `path` with every symlink its existing part holds resolved (Docker follows them), given the
 * host's realpath; the part that does not exist yet is kept as written.
 */
export function resolveHostPath(path: string, realpath: (path: string) => string | null): string {
  const normal = normalizeHostPath(path);
  const rest: string[] = [];
  for (let head = normal; ; head = posix.dirname(head)) {
    const real = realpath(head);
    if (real !== null) return normalizeHostPath(posix.join(real, ...rest.reverse()));
    if (head === "/") return normal;
    rest.push(posix.basename(head));
  }
}

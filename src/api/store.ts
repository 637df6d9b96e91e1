// Access to the node's store from a route: refused with 503 until it is open and replayed, and
// proposals whose command the state machine refused become errors with the machine's code.
import type { Context } from "hono";
import type { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import { hostPathAllowed, hostPathsOf } from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import type { Consistency } from "../core/types.ts";
import { type Command, encodedSize } from "../state/commands.ts";
import type { StateView } from "../state/views.ts";
import type { ApiNode } from "./context.ts";
import { parseQuery } from "./query.ts";

export function openStore(node: ApiNode) {
  const store = node.store();
  if (!store) throw new ShoalError("E_NOT_READY", "the store is still opening");
  return store;
}

export function viewOf(node: ApiNode): StateView {
  return openStore(node).view;
}

/**
 * The view for a read that may ask for `?consistency=`: local by default (this node's replica,
 * fast, possibly a little behind), `leader` or `linearizable` wait until the replica has caught up
 * with the leader. Every other query parameter is the route's own, parsed with `schema`.
 */
export async function readView<S extends z.ZodType<{ consistency?: Consistency | undefined }>>(
  c: Context,
  node: ApiNode,
  schema: S,
): Promise<{ view: StateView; query: z.output<S> }> {
  const query = parseQuery(c, schema);
  openStore(node);
  const consistency = query.consistency ?? "local";
  const fleet = node.fleet?.();
  if (consistency !== "local" && fleet) {
    const fresh = await fleet.readAt(consistency);
    if (!fresh.ok) throw new ShoalError(fresh.code, fresh.message);
  }
  return { view: viewOf(node), query };
}

export async function propose(node: ApiNode, command: Command): Promise<unknown> {
  const { log } = openStore(node);
  if (encodedSize(command) > limits.commandBytesMax) {
    throw new ShoalError(
      "E_BODY_TOO_LARGE",
      `the change is larger than ${limits.commandBytesMax} bytes`,
    );
  }
  const result = await log.propose(command);
  if (!result.ok) throw new ShoalError(result.code, result.message);
  return result.value;
}

export function notFound(what: string): never {
  throw new ShoalError("E_NOT_FOUND", `${what} not found`);
}

export function param(c: Context, name: string): string {
  const value = c.req.param(name);
  if (value === undefined) throw new ShoalError("E_VALIDATION", `missing path parameter ${name}`);
  return value;
}

/**
 * Refuses containers that mount a host path no node allows (`--allow-host-path`), before anything
 * is stored: such a task could never run anywhere.
 */
export function refuseUnallowedHostPaths(
  view: StateView,
  containers: readonly { mounts: readonly { source: string }[] }[] | undefined,
): void {
  if (!containers) return;
  const nodes = view.nodes().filter((n) => n.status !== "left");
  for (const path of hostPathsOf(containers)) {
    if (nodes.some((n) => hostPathAllowed(path, n.hostPaths))) continue;
    throw new ShoalError(
      "E_VALIDATION",
      `no node allows mounting the host path ${path}: start the agent of a node that may share it ` +
        "with --allow-host-path DIR (none by default; never shoal's data dir or the engine's socket)",
    );
  }
}

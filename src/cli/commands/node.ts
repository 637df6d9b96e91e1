// `shoal node ls|inspect|drain|activate|label|rm`: the machines of the fleet.
import type { Command } from "commander";
import { ShoalError } from "../../core/errors.ts";
import type { ApiClient, NodeView } from "../client.ts";
import { type CliContext, clientFor, printJson, usageError } from "../context.ts";
import { nodeBlock, nodesTable } from "../views.ts";
import { guard, withApiOptions } from "./shared.ts";

interface ApiOptions {
  dataDir?: string;
  json?: boolean;
}

export function registerNode(program: Command, context: CliContext): void {
  const node = program.command("node").description("list, inspect and remove nodes");
  const command = (spec: string, description: string) =>
    withApiOptions(node.command(spec).description(description));

  command("ls", "list nodes").action(
    guard(context, async (options: ApiOptions) => {
      const nodes = await clientFor(context, options).nodes();
      if (options.json) return printJson(context, nodes);
      context.out.write(nodesTable(nodes, context.now()));
    }),
  );

  command("inspect <node>", "show a node, by id, id prefix or name").action(
    guard(context, async (key: string, options: ApiOptions) => {
      const found = await findNode(clientFor(context, options), key);
      if (options.json) return printJson(context, found);
      context.out.write(nodeBlock(found, context.now()));
    }),
  );

  command(
    "drain <node>",
    "move a node's tasks away (new ones start first) and place none there",
  ).action(
    guard(context, async (key: string, options: ApiOptions) => {
      const client = clientFor(context, options);
      const drained = await client.drainNode((await findNode(client, key)).id);
      if (options.json) return printJson(context, drained);
      context.out.write(`node ${drained.name} is ${drained.status}: its tasks move elsewhere\n`);
    }),
  );

  command("activate <node>", "let a drained node take tasks again").action(
    guard(context, async (key: string, options: ApiOptions) => {
      const client = clientFor(context, options);
      const active = await client.activateNode((await findNode(client, key)).id);
      if (options.json) return printJson(context, active);
      context.out.write(`node ${active.name} is ${active.status}\n`);
    }),
  );

  command("label <node> <changes...>", "set labels (zone=garage) or remove them (zone-)").action(
    guard(context, async (key: string, changes: string[], options: ApiOptions) => {
      const change = parseLabelChanges(changes);
      const client = clientFor(context, options);
      const labelled = await client.labelNode((await findNode(client, key)).id, change);
      if (options.json) return printJson(context, labelled);
      const shown = Object.entries(labelled.labels).map(([k, v]) => `${k}=${v}`);
      context.out.write(`node ${labelled.name} labels: ${shown.join(",") || "(none)"}\n`);
    }),
  );

  command("rm <node>", "remove a node from the cluster; its tasks run elsewhere").action(
    guard(context, async (key: string, options: ApiOptions) => {
      const client = clientFor(context, options);
      const found = await findNode(client, key);
      const removed = await client.removeNode(found.id);
      if (options.json) return printJson(context, removed);
      context.out.write(`removed node ${removed.name} (${removed.id})\n`);
    }),
  );
}

/** The API looks nodes up by id; people know them by name or by the short id a table shows. */
async function findNode(client: ApiClient, key: string): Promise<NodeView> {
  try {
    return await client.node(key);
  } catch (error) {
    if (!(error instanceof ShoalError) || error.code !== "E_NOT_FOUND") throw error;
    const nodes = await client.nodes();
    const byName = nodes.filter((node) => node.name === key);
    const matches = byName.length > 0 ? byName : nodes.filter((node) => node.id.startsWith(key));
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length > 1) {
      throw new ShoalError("E_CONFLICT", `node ${key} is ambiguous: ${matches.length} nodes match`);
    }
    throw new ShoalError("E_NOT_FOUND", `no node has the id or name ${key}`);
  }
}

/** `k=v` sets a label and `k-` removes one, as kubectl label does. */
export function parseLabelChanges(changes: readonly string[]): {
  set: Record<string, string>;
  remove: string[];
} {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const change of changes) {
    const equals = change.indexOf("=");
    if (equals > 0) set[change.slice(0, equals)] = change.slice(equals + 1);
    else if (change.endsWith("-") && change.length > 1) remove.push(change.slice(0, -1));
    else
      throw usageError(
        `write a label as key=value, or key- to remove it, not ${JSON.stringify(change)}`,
      );
  }
  return { set, remove };
}

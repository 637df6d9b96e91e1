// `shoal node ls|inspect|rm`: the machines of the fleet.
import type { Command } from "commander";
import { ShoalError } from "../../core/errors.ts";
import type { ApiClient, NodeView } from "../client.ts";
import { type CliContext, clientFor, printJson } from "../context.ts";
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

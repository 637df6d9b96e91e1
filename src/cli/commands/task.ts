// `shoal task ls|inspect|stop`: the placed instances of services and one-off runs.
import type { Command } from "commander";
import { type CliContext, clientFor, printJson } from "../context.ts";
import { taskBlock, tasksTable } from "../views.ts";
import { guard, resolveTaskId, withApiOptions } from "./shared.ts";

interface ApiOptions {
  dataDir?: string;
  json?: boolean;
}

interface ListOptions extends ApiOptions {
  service?: string;
  node?: string;
  state?: string;
}

export function registerTask(program: Command, context: CliContext): void {
  const task = program.command("task").description("list, inspect and stop tasks");
  const command = (spec: string, description: string) =>
    withApiOptions(task.command(spec).description(description));

  command("ls", "list tasks")
    .option("--service <name>", "only this service's tasks")
    .option("--node <id|name>", "only tasks on this node")
    .option("--state <state>", "only tasks in this state (pending, running, failed, ...)")
    .action(
      guard(context, async (options: ListOptions) => {
        const { service, node, state } = options;
        const tasks = await clientFor(context, options).tasks({ service, node, state });
        if (options.json) return printJson(context, tasks);
        context.out.write(tasksTable(tasks, context.now()));
      }),
    );

  command("inspect <id>", "show a task and its containers").action(
    guard(context, async (id: string, options: ApiOptions) => {
      const found = await resolveTaskId(clientFor(context, options), id);
      if (options.json) return printJson(context, found);
      context.out.write(taskBlock(found, context.now()));
    }),
  );

  command("stop <id>", "stop a task (a service replaces it)").action(
    guard(context, async (id: string, options: ApiOptions) => {
      const client = clientFor(context, options);
      const found = await resolveTaskId(client, id);
      const stopped = await client.stopTask(found.id);
      if (options.json) return printJson(context, stopped);
      context.out.write(`task ${stopped.id} stopping\n`);
    }),
  );
}

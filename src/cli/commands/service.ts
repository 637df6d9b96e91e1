// `shoal service create|ls|inspect|scale|update|rollback|rebalance|rm`: services from spec files.
import type { Command } from "commander";
import type { ApiClient, ServiceSpecInput } from "../client.ts";
import { type CliContext, clientFor, printJson, usageError } from "../context.ts";
import { readSpecFile } from "../spec-file.ts";
import { serviceBlock, servicesTable } from "../views.ts";
import { guard, parseCount, withApiOptions } from "./shared.ts";

interface ApiOptions {
  dataDir?: string;
  json?: boolean;
}

interface FileOptions extends ApiOptions {
  file: string;
}

export function registerService(program: Command, context: CliContext): void {
  const service = program.command("service").description("create, list, scale and remove services");
  const command = (spec: string, description: string) =>
    withApiOptions(service.command(spec).description(description));

  command("create", "create a service from a YAML or JSON spec")
    .requiredOption("-f, --file <path>", "the spec file, or - for stdin")
    .action(guard(context, (options: FileOptions) => create(context, options)));

  command("ls", "list services").action(
    guard(context, async (options: ApiOptions) => {
      const services = await clientFor(context, options).services();
      if (options.json) return printJson(context, services);
      context.out.write(servicesTable(services, context.now()));
    }),
  );

  command("inspect <name>", "show a service and its tasks").action(
    guard(context, async (name: string, options: ApiOptions) => {
      const detail = await clientFor(context, options).service(name);
      if (options.json) return printJson(context, detail);
      context.out.write(serviceBlock(detail, context.now()));
    }),
  );

  command("scale <name> <replicas>", "set a service's number of replicas").action(
    guard(context, async (name: string, replicasText: string, options: ApiOptions) => {
      const replicas = parseReplicas(replicasText);
      const updated = await clientFor(context, options).updateService(name, { replicas });
      if (options.json) return printJson(context, updated);
      context.out.write(`service ${name} scaled to ${replicas}\n`);
    }),
  );

  command("update <name>", "change a service from a spec: a new revision rolls out as a deployment")
    .requiredOption("-f, --file <path>", "the spec file, or - for stdin")
    .action(guard(context, (name: string, options: FileOptions) => update(context, name, options)));

  command("rollback <name>", "go back to the revision before the latest deployment").action(
    guard(context, async (name: string, options: ApiOptions) => {
      const rolled = await clientFor(context, options).rollbackService(name);
      if (options.json) return printJson(context, rolled);
      context.out.write(`service ${name} rolls back to ${rolled.taskDefinition}\n`);
    }),
  );

  command(
    "rebalance <name>",
    "spread a service's tasks evenly again, starting each move first",
  ).action(
    guard(context, async (name: string, options: ApiOptions) => {
      const result = await clientFor(context, options).rebalanceService(name);
      if (options.json) return printJson(context, result);
      context.out.write(`service ${name} spreads its tasks again\n`);
    }),
  );

  command("rm <name>", "remove a service and stop its tasks").action(
    guard(context, async (name: string, options: ApiOptions) => {
      const result = await clientFor(context, options).deleteService(name);
      if (options.json) return printJson(context, result);
      context.out.write(`service ${name} removed\n`);
    }),
  );
}

function parseReplicas(text: string): number {
  try {
    return parseCount(text);
  } catch {
    throw usageError(`replicas must be a whole number, 0 or more, not ${JSON.stringify(text)}`);
  }
}

async function create(context: CliContext, options: FileOptions): Promise<void> {
  const spec = (await readSpecFile(options.file, context)) as unknown as ServiceSpecInput;
  const created = await clientFor(context, options).createService(spec);
  if (options.json) return printJson(context, created);
  context.out.write(
    `service ${created.name} created (${created.taskDefinition}, ${countText(created)})\n`,
  );
}

/** Sends only what an update may change; the spec's name, when given, must be the service's. */
async function update(context: CliContext, name: string, options: FileOptions): Promise<void> {
  const spec = await readSpecFile(options.file, context);
  if (spec.name !== undefined && spec.name !== name) {
    throw usageError(`the spec is for service ${String(spec.name)}, not ${name}`);
  }
  if (spec.mode !== undefined) {
    const current = await clientFor(context, options).service(name);
    if (spec.mode !== current.mode) {
      throw usageError(
        `service ${name} is ${current.mode}; a mode cannot change (remove and create)`,
      );
    }
  }
  const patch: Record<string, unknown> = {};
  for (const key of [
    "containers",
    "replicas",
    "placement",
    "deployment",
    "stopAfterDisconnectMs",
    "ingress",
    "drainMs",
  ]) {
    if (spec[key] !== undefined) patch[key] = spec[key];
  }
  const client: ApiClient = clientFor(context, options);
  const updated = await client.updateService(name, patch);
  if (options.json) return printJson(context, updated);
  context.out.write(`service ${name} updated (${updated.taskDefinition}, ${countText(updated)})\n`);
}

function countText(service: { mode: string; replicas: number }): string {
  return service.mode === "global" ? "one task per eligible node" : `${service.replicas} replicas`;
}

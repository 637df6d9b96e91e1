// `shoal status`: the cluster at a glance: id, leader, applied index, nodes and services.
import type { Command } from "commander";
import { type CliContext, clientFor, printJson } from "../context.ts";
import { clusterBlock, ingressWarnings, nodesTable, servicesTable } from "../views.ts";
import { guard, withApiOptions } from "./shared.ts";

interface StatusOptions {
  dataDir?: string;
  json?: boolean;
}

export function registerStatus(program: Command, context: CliContext): void {
  withApiOptions(
    program.command("status").description("show the cluster, its nodes and services"),
  ).action(
    guard(context, async (options: StatusOptions) => {
      const client = clientFor(context, options);
      const [cluster, services] = await Promise.all([client.cluster(), client.services()]);
      if (options.json) return printJson(context, { cluster, services });
      const now = context.now();
      const warnings = services.flatMap((service) =>
        ingressWarnings(service.ingress).map(
          (line) => `warning: service ${service.name}: ${line}\n`,
        ),
      );
      context.out.write(
        `${clusterBlock(cluster)}\nNODES\n${nodesTable(cluster.nodes, now)}\nSERVICES\n${servicesTable(services, now)}${warnings.join("")}`,
      );
    }),
  );
}

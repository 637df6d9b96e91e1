// `shoal token`: prints this node's join token (for `shoal agent --token` on another machine),
// with `--api` the API token, or with `--ca` the cluster's CA certificate, from the data dir,
// without asking a running agent.
import type { Command } from "commander";
import { type CliContext, clientFor, type TargetOptions } from "../context.ts";
import { readApiToken, readCaFile, readJoinTokenFile, resolveDataDir } from "../target.ts";
import { guard } from "./shared.ts";

interface TokenOptions {
  api?: boolean;
  ca?: boolean;
  dataDir?: string;
}

export function registerToken(program: Command, context: CliContext): void {
  const token = program
    .command("token")
    .description("print the join token of this node's cluster (or with --api the API token)")
    .option("--api", "the API token (for SHOAL_API_TOKEN on other machines)")
    .option("--ca", "the cluster's CA certificate (for SHOAL_CA or --ca on other machines)")
    .option("--data-dir <dir>", "the node's data dir")
    .action(
      guard(context, (options: TokenOptions) => {
        const dataDir = resolveDataDir(options.dataDir, context.system);
        if (options.ca) {
          context.out.write(readCaFile(dataDir, context.system));
          return;
        }
        const token = options.api
          ? readApiToken(dataDir, context.system)
          : readJoinTokenFile(dataDir, context.system);
        context.out.write(`${token}\n`);
      }),
    );
  token
    .command("rotate")
    .description(
      "make a new join token (the old one joins no node; members are unaffected), or with --api a new API token",
    )
    .option(
      "--api",
      "rotate the API token: the old one gets 401 on every node once the rotation is applied",
    )
    .option("--data-dir <dir>", "the local node's data dir, to find the API token and CA")
    .option(
      "--ca <file>",
      "the cluster's CA certificate (default: SHOAL_CA, or the data dir's ca.pem)",
    )
    .action(
      guard(context, async (options: TargetOptions & { api?: boolean }) => {
        const client = clientFor(context, options);
        const fresh = options.api
          ? (await client.rotateApiToken()).apiToken
          : (await client.rotateJoinToken()).joinToken;
        context.out.write(`${fresh}\n`);
      }),
    );
}

// `shoal token --api`: prints the API token from the data dir, without asking a running agent.
import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { usageError } from "../context.ts";
import { readApiToken, resolveDataDir } from "../target.ts";
import { guard } from "./shared.ts";

interface TokenOptions {
  api?: boolean;
  dataDir?: string;
}

export function registerToken(program: Command, context: CliContext): void {
  program
    .command("token")
    .description("print a token of this node's cluster")
    .option("--api", "the API token (for SHOAL_API_TOKEN on other machines)")
    .option("--data-dir <dir>", "the node's data dir")
    .action(
      guard(context, (options: TokenOptions) => {
        if (!options.api) {
          // Joining other nodes comes with fleet membership; until then only the API token exists.
          throw usageError("give --api: this shoal has no join token yet, only the API token");
        }
        const dataDir = resolveDataDir(options.dataDir, context.system);
        context.out.write(`${readApiToken(dataDir, context.system)}\n`);
      }),
    );
}

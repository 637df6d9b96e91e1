// `shoal version`: what runs here, for bug reports: version, commit, runtime and architecture.
import type { Command } from "commander";
import { type CliContext, printJson } from "../context.ts";
import { fields } from "../format.ts";
import { guard } from "./shared.ts";

export interface VersionInfo {
  version: string;
  commit: string;
}

export function registerVersion(program: Command, context: CliContext, info: VersionInfo): void {
  program
    .command("version")
    .description("print the version, commit, runtime and architecture")
    .option("--json", "print JSON")
    .action(
      guard(context, (options: { json?: boolean }) => {
        const report = { ...info, runtime: runtime(), arch: process.arch, os: process.platform };
        if (options.json) return printJson(context, report);
        context.out.write(
          fields([
            ["version", report.version],
            ["commit", report.commit],
            ["runtime", report.runtime],
            ["arch", `${report.os}/${report.arch}`],
          ]),
        );
      }),
    );
}

/** `bun v1.x` inside a compiled binary, `node v20.x` from source. */
export function runtime(): string {
  const bun = (process.versions as Record<string, string | undefined>).bun;
  return bun ? `bun v${bun}` : `node ${process.version}`;
}

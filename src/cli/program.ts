// The `shoal` command line: one commander program, one file per verb under commands/. Every
// outcome becomes an exit code: 0, 1 for errors, 2 for usage errors; nothing escapes as a throw.
import { Command, CommanderError, type ParseOptions } from "commander";
import type { Fetch } from "./client.ts";
import { type AgentOptions, registerAgent } from "./commands/agent.ts";
import { registerEvents } from "./commands/events.ts";
import { registerNode } from "./commands/node.ts";
import { registerRun } from "./commands/run.ts";
import { registerService } from "./commands/service.ts";
import { registerStatus } from "./commands/status.ts";
import { registerTask } from "./commands/task.ts";
import { registerToken } from "./commands/token.ts";
import { registerVersion, type VersionInfo } from "./commands/version.ts";
import { type CliContext, errorLine, type Output, usageExitCode } from "./context.ts";
import { readProcessStdin } from "./spec-file.ts";
import { realSystem, type System } from "./target.ts";

export type { AgentOptions } from "./commands/agent.ts";

export interface ProgramDeps {
  startAgent(options: AgentOptions): Promise<void>;
  version: VersionInfo;
  stdout?: Output;
  stderr?: Output;
  /** For tests: the environment, uid and files that target resolution sees. */
  system?: System;
  /** For tests: answers requests without a socket (e.g. from `api.app.request`). */
  fetch?: Fetch;
  readStdin?: () => Promise<string>;
  now?: () => number;
}

/**
 * The program. `parseAsync(process.argv)` reports failures and sets `process.exitCode`, so an
 * entry point needs nothing more; `run` returns the exit code instead, for tests.
 */
export class ShoalProgram extends Command {
  async run(argv: readonly string[], from: "node" | "user" = "node"): Promise<number> {
    try {
      if ((from === "node" ? argv.slice(2) : argv).length === 0) {
        this.outputHelp();
        return 0;
      }
      await super.parseAsync(argv, { from });
      return 0;
    } catch (error) {
      if (error instanceof CommanderError) return error.exitCode;
      // Verbs report their own failures; this is a bug escaping them, still said plainly.
      this.configureOutput().writeErr?.(`${errorLine(error)}\n`);
      return 1;
    }
  }

  override async parseAsync(argv?: readonly string[], options?: ParseOptions): Promise<this> {
    const code = await this.run(argv ?? process.argv, options?.from === "user" ? "user" : "node");
    if (code !== 0) process.exitCode = code;
    return this;
  }
}

export function createProgram(deps: ProgramDeps): ShoalProgram {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const context: CliContext = {
    out: stdout,
    err: stderr,
    system: deps.system ?? realSystem(),
    fetch: deps.fetch,
    now: deps.now ?? Date.now,
    readStdin: deps.readStdin ?? readProcessStdin,
  };
  // Output and exit settings are set before any verb is added, as subcommands copy them.
  const program = new ShoalProgram("shoal")
    .description("a container orchestrator for small fleets")
    .version(`${deps.version.version} (${deps.version.commit})`, "-V, --version")
    .configureOutput({
      writeOut: (text) => void stdout.write(text),
      writeErr: (text) => void stderr.write(text),
    })
    .exitOverride(rethrowWithExitCode);
  registerAgent(program, context, deps.startAgent);
  registerStatus(program, context);
  registerService(program, context);
  registerTask(program, context);
  registerNode(program, context);
  registerRun(program, context);
  registerEvents(program, context);
  registerToken(program, context);
  registerVersion(program, context, deps.version);
  return program;
}

/**
 * Commander reports help and --version with 0 and every parse failure (unknown option, missing
 * argument, invalid value, a group without its verb) with 1; shoal keeps 1 for failed requests.
 */
function rethrowWithExitCode(error: CommanderError): never {
  const exitCode = error.exitCode === 0 ? 0 : usageExitCode;
  throw new CommanderError(exitCode, error.code, error.message);
}

/** The exit code of one run of the program over `argv` (`from: "user"` for bare arguments). */
export function runCli(
  program: ShoalProgram,
  argv: readonly string[] = process.argv,
  from: "node" | "user" = "node",
): Promise<number> {
  return program.run(argv, from);
}

// Pieces the verbs share: the action guard that turns failures into `error: ... (CODE)` and an
// exit code, the common options, and argument parsers that refuse bad input as usage errors.
import { type Command, CommanderError, InvalidArgumentError } from "commander";
import { ShoalError } from "../../core/errors.ts";
import type { ApiClient, TaskView } from "../client.ts";
import { type CliContext, errorExitCode, errorLine } from "../context.ts";

/**
 * Runs a verb; any failure is printed once on stderr and becomes a CommanderError, which
 * `runCli` turns into the exit code (1 for errors, 2 for usage errors raised by the verb).
 */
export function guard<Args extends unknown[]>(
  context: CliContext,
  action: (...args: Args) => Promise<void> | void,
): (...args: Args) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      if (error instanceof CommanderError) {
        context.err.write(`${error.message}\n`);
        throw error;
      }
      const line = errorLine(error);
      context.err.write(`${line}\n`);
      throw new CommanderError(errorExitCode, "shoal.error", line);
    }
  };
}

/** `--data-dir` (to find the token) and `--json`, on every verb that reads from the API. */
export function withApiOptions(command: Command, json = true): Command {
  command.option("--data-dir <dir>", "the local node's data dir, to find the API token and CA");
  command.option(
    "--ca <file>",
    "the cluster's CA certificate (default: SHOAL_CA, or the data dir's ca.pem)",
  );
  if (json) command.option("--json", "print the API's JSON instead of a table");
  return command;
}

export function parseCount(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError("expected a whole number, 0 or more");
  return Number(text);
}

export function parsePositive(text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError("expected a number above 0");
  }
  return value;
}

/** Commander's collector for options given more than once (`-p 80 -p 443`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Accepts a full task id or an unambiguous prefix of one, as tables show short ids. */
export async function resolveTaskId(client: ApiClient, id: string): Promise<TaskView> {
  try {
    return await client.task(id);
  } catch (error) {
    if (!(error instanceof ShoalError) || error.code !== "E_NOT_FOUND") throw error;
    const matches = (await client.tasks()).filter((task) => task.id.startsWith(id));
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length > 1) {
      throw new ShoalError(
        "E_CONFLICT",
        `task id ${id} is ambiguous: ${matches.length} tasks match`,
      );
    }
    throw error;
  }
}

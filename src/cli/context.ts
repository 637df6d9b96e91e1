// What every verb is given: where to write, how to reach the API, and the machine it runs on.
// Verbs never touch process.* directly, so tests run them in-process against a real API.
import { CommanderError } from "commander";
import { ShoalError } from "../core/errors.ts";
import { ApiClient, type Fetch } from "./client.ts";
import { json } from "./format.ts";
import { resolveTarget, type System } from "./target.ts";

export interface Output {
  write(text: string): unknown;
}

export interface CliContext {
  out: Output;
  err: Output;
  system: System;
  fetch: Fetch | undefined;
  now(): number;
  readStdin(): Promise<string>;
}

/** Options every verb that talks to the API accepts. */
export interface TargetOptions {
  dataDir?: string;
  /** The cluster's CA certificate file, for a node reached from another machine. */
  ca?: string;
}

export function clientFor(context: CliContext, options: TargetOptions): ApiClient {
  const target = resolveTarget(options, context.system);
  return new ApiClient({ ...target, ...(context.fetch ? { fetch: context.fetch } : {}) });
}

export function printJson(context: CliContext, value: unknown): void {
  context.out.write(json(value));
}

/** The exit code of an error the CLI reports itself (usage errors are 2, from commander). */
export const errorExitCode = 1;
export const usageExitCode = 2;

/** `error: <message> (<CODE>)`, so scripts can branch on the code and people read the message. */
export function errorLine(error: unknown): string {
  if (error instanceof ShoalError) return `error: ${error.message} (${error.code})`;
  if (error instanceof Error) return `error: ${error.message}`;
  return `error: ${String(error)}`;
}

/** A bad argument found after parsing (a malformed -p or -e): reported as a usage error. */
export function usageError(message: string): CommanderError {
  return new CommanderError(usageExitCode, "shoal.usage", `error: ${message}`);
}

// Runs the CLI in-process against a real API over a real one-node store, with no socket: the
// client's fetch is answered by `app.request`. Tests read what a person would see.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Api, createApi } from "../api/app.ts";
import type { Fetch } from "../cli/client.ts";
import { type AgentOptions, createProgram, runCli } from "../cli/program.ts";
import type { Env, System } from "../cli/target.ts";
import { openTestNode, type TestNode, testApiToken } from "./api-node.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  env?: Env;
  stdin?: string;
  files?: Record<string, string>;
  uid?: number;
  startAgent?: (options: AgentOptions) => Promise<void>;
}

export interface CliHarness {
  test: TestNode;
  api: Api;
  dir: string;
  fetch: Fetch;
  file(name: string, text: string): string;
  run(args: string[], options?: CliRunOptions): Promise<CliResult>;
  dispose(): void;
}

/** A fixed "now" a minute after the test node's clock starts, so relative times are stable. */
export const harnessNow = 1_060_000;

export async function openCliHarness(
  options: Parameters<typeof openTestNode>[0] = {},
): Promise<CliHarness> {
  const test = await openTestNode(options);
  const api = createApi(test.node);
  const dir = mkdtempSync(join(tmpdir(), "shoal-cli-"));
  const fetch: Fetch = async (input, init) => api.app.request(input, init);
  const harness: CliHarness = {
    test,
    api,
    dir,
    fetch,
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    run: (args, options = {}) => runOnce(fetch, args, options),
    dispose() {
      api.close();
      test.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

export function fakeSystem(options: CliRunOptions = {}): System {
  const files = options.files ?? {};
  return {
    env: options.env ?? { SHOAL_API_TOKEN: testApiToken },
    uid: options.uid ?? 1000,
    home: "/home/pi",
    readFile(path) {
      const text = files[path];
      if (text === undefined) {
        throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      }
      return text;
    },
  };
}

async function runOnce(fetch: Fetch, args: string[], options: CliRunOptions): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const program = createProgram({
    startAgent: options.startAgent ?? (async () => {}),
    version: { version: "0.1.0", commit: "abc1234" },
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    system: fakeSystem(options),
    fetch,
    readStdin: async () => options.stdin ?? "",
    now: () => harnessNow,
  });
  const code = await runCli(program, args, "user");
  return { code, stdout, stderr };
}

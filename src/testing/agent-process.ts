// Runs a real `shoal agent` process for end-to-end tests and benchmarks: its own data dir and
// port on loopback, the real Docker engine, and an HTTPS client that speaks to it with its token,
// trusting the CA in its data dir.
// Everything it starts is cleaned up by `dispose()`, containers included.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Fetch } from "../cli/client.ts";
import { fetchWithDataDirCa } from "./https.ts";
import { waitFor } from "./wait.ts";

const repoRoot = join(import.meta.dirname, "..", "..");
const shoalBin = join(repoRoot, "bin", "shoal");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function docker(...args: string[]): string {
  return execFileSync("docker", args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

export class AgentProcess {
  readonly dataDir: string;
  port = 0;
  /**
   * What runs shoal: the sources through bin/shoal unless told otherwise, e.g. a release binary
   * under qemu-user (`["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", binary]`).
   */
  private readonly command: readonly string[];
  private readonly healthTimeoutMs: number;
  private child: ChildProcess | null = null;
  private output = "";
  clusterId = "";
  token = "";

  constructor(
    options: {
      command?: readonly string[];
      healthTimeoutMs?: number;
      /** Where the data dir goes (a tmpfs of the test's, say); a fresh temporary one if absent. */
      dataDir?: string;
    } = {},
  ) {
    this.command = options.command ?? [shoalBin];
    this.healthTimeoutMs = options.healthTimeoutMs ?? 30_000;
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "shoal-e2e-"));
  }

  /** The agent's process id while it runs (to show it is the same process after a while). */
  get pid(): number | null {
    return this.child?.exitCode === null ? (this.child.pid ?? null) : null;
  }

  get base(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** fetch trusting this agent's cluster CA (its data dir's ca.pem). */
  get fetch(): Fetch {
    return fetchWithDataDirCa(this.dataDir);
  }

  /** Starts the agent (again, after a kill, on the same data dir and port) and waits for health. */
  async start(extraArgs: string[] = []): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const args = [
      "agent",
      "--data-dir",
      this.dataDir,
      "--bind",
      "127.0.0.1",
      "--port",
      String(this.port),
      "--name",
      "e2e",
      // Tests and benchmarks run where no registry may be contacted: a missing image must fail.
      "--pull",
      "never",
      // One-machine tests never multicast on the machine's real interfaces; the lab does mDNS.
      "--no-mdns",
      ...extraArgs,
    ];
    const [program = shoalBin, ...prefix] = this.command;
    const child = spawn(program, [...prefix, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout?.on("data", (chunk: Buffer) => this.keepOutput(chunk));
    child.stderr?.on("data", (chunk: Buffer) => this.keepOutput(chunk));
    // An agent that exits or dies ends the wait at once, rather than at its end.
    const gone = () => child.exitCode !== null || child.signalCode !== null;
    await waitFor(
      "the agent to answer health",
      async () => gone() || (await this.fetch(`${this.base}/v1/health`)).ok,
      this.healthTimeoutMs,
    );
    if (gone()) {
      const how = child.signalCode ?? child.exitCode;
      throw new Error(`agent exited (${how}): ${this.output}`);
    }
    this.token = readFileSync(join(this.dataDir, "api.token"), "utf8").trim();
    this.clusterId = ((await this.json("GET", "/v1/cluster")) as { id: string }).id;
  }

  private keepOutput(chunk: Buffer): void {
    this.output = (this.output + chunk.toString()).slice(-20_000);
  }

  get logs(): string {
    return this.output;
  }

  /** SIGKILL: the process gets no chance to clean up, as in a crash. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
    this.child = null;
  }

  async request(method: string, path: string, body?: unknown): Promise<Response> {
    return this.fetch(`${this.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async json(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await this.request(method, path, body);
    const parsed = (await response.json()) as unknown;
    if (!response.ok)
      throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(parsed)}`);
    return parsed;
  }

  /** Ids of this cluster's containers on the engine, running only unless `all`. */
  containers(all = false): string[] {
    const args = ["ps", "-q", "--no-trunc", "--filter", `label=shoal.cluster=${this.clusterId}`];
    const out = docker(...(all ? [...args, "-a"] : args));
    return out ? out.split("\n").sort() : [];
  }

  async dispose(): Promise<void> {
    await this.kill();
    if (this.clusterId) {
      const ids = this.containers(true);
      if (ids.length > 0) docker("rm", "-f", ...ids);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// The multi-host lab (scripts/lab.sh) for end-to-end tests, benchmarks and demos: N nodes, each a
// network namespace with its own address, Docker engine and `shoal agent`. Every method is one
// child-process call bounded in time; a call that fails or overruns rejects with the script's
// own error lines. Needs root, as the script does.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fetchWithDataDirCa, probeStatus } from "./https.ts";

const repoRoot = join(import.meta.dirname, "..", "..");
export const labScript = join(repoRoot, "scripts", "lab.sh");
export const labProbeScript = join(repoRoot, "scripts", "lab-multicast-probe.mjs");

export const labNodesMax = 12;
export const labBridge = "shoal-lab0";
export const labAgentPort = 7420;

/** A node as `lab.sh` names it: 1, "lab1" or "shoal-lab1". */
export type LabNodeRef = number | string;

export interface LabOptions {
  /**
   * Extra `shoal agent` arguments for every node (no spaces inside one); `{index}`, `{name}` and
   * `{address}` become the node's own, e.g. `["--mdns-interface", "{address}"]`.
   */
  agentArgs?: string[];
  /** Deadline of each wait inside the script (engine, agent health, lock), in seconds. */
  waitSeconds?: number;
  /** The shoal every node runs (a compiled release binary); bin/shoal, from source, by default. */
  bin?: string;
}

export interface StartOptions {
  /** Extra agent arguments for this node only, after the lab's; they stick for later starts. */
  agentArgs?: string[];
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LabProcess {
  pid: number | null;
  alive: boolean;
}

export interface LabNodeStatus {
  name: string;
  address: string;
  namespace: string;
  containerd: LabProcess;
  dockerd: LabProcess;
  agent: LabProcess;
  healthy: boolean;
}

/** Accepts 1, "lab1" or "shoal-lab1" and returns 1; throws on anything else. */
export function labIndex(node: LabNodeRef): number {
  const index = typeof node === "number" ? node : Number(node.replace(/^(shoal-)?lab/, ""));
  if (!Number.isInteger(index) || index < 1 || index > labNodesMax) {
    throw new Error(`unknown lab node ${JSON.stringify(node)} (expected lab1..lab${labNodesMax})`);
  }
  return index;
}

export function labName(node: LabNodeRef): string {
  return `lab${labIndex(node)}`;
}

export function labNamespace(node: LabNodeRef): string {
  return `shoal-lab${labIndex(node)}`;
}

export function nodeAddress(node: LabNodeRef): string {
  return `10.77.0.${10 + labIndex(node)}`;
}

/** The node's agent data dir (node id, api.token, state.db), kept across kill and restart. */
export function labDataDir(node: LabNodeRef): string {
  return `/var/lib/shoal-lab/${labName(node)}/shoal`;
}

export function labDockerHost(node: LabNodeRef): string {
  return `unix:///run/shoal-lab/${labName(node)}/docker.sock`;
}

// Bounds of each call: `up` waits for engines and agents in parallel, but several waits follow
// one another (engine, image load, agent), each bounded by waitSeconds inside the script.
const secondsMs = 1000;
const callBoundsMs = { up: 4, down: 2, kill: 1, restart: 3, partition: 1, heal: 1, status: 1 };

export class Lab {
  private readonly agentArgs: string[];
  private readonly nodeAgentArgs = new Map<number, string[]>();
  private readonly waitSeconds: number;
  private readonly bin: string | undefined;
  /**
   * Agents started from now on speak plain HTTP (`--bench-plain-http`), and so does the lab to
   * them: only for the benchmark that measures what TLS costs.
   */
  plainHttp = false;
  private count = 0;

  constructor(options: LabOptions = {}) {
    this.agentArgs = checkedArgs(options.agentArgs ?? []);
    this.waitSeconds = options.waitSeconds ?? 60;
    this.bin = options.bin;
  }

  /** The nodes of the last `up`, as refs ("lab1", ...). */
  get nodes(): string[] {
    return Array.from({ length: this.count }, (_, i) => `lab${i + 1}`);
  }

  /**
   * A fresh lab of `count` nodes (anything left over is removed first). Agents run and answer
   * health on lab1..lab`agents` (all by default); `start` brings up the others later. Only
   * lab1..lab`engines` (all by default) get an engine; the others run their agent alone.
   */
  async up(count: number, options: { agents?: number; engines?: number } = {}): Promise<void> {
    if (!Number.isInteger(count) || count < 1 || count > labNodesMax) {
      throw new Error(`a lab has 1 to ${labNodesMax} nodes, not ${count}`);
    }
    const agents = String(options.agents ?? count);
    const engines = String(options.engines ?? count);
    const args = ["up", String(count), "--agents", agents, "--engines", engines];
    await this.script(args, callBoundsMs.up);
    this.count = count;
  }

  /** Removes every namespace, process, mount, rule and state dir of the lab. Idempotent. */
  async down(): Promise<void> {
    await this.script(["down"], callBoundsMs.down);
    this.count = 0;
  }

  /** A dead host: every process of the node is SIGKILLed, its containers' included. */
  async kill(node: LabNodeRef): Promise<void> {
    await this.script(["kill", labName(node)], callBoundsMs.kill);
  }

  /** Starts what of the node is not running (engine, agent); resolves once healthy. */
  async start(node: LabNodeRef, options: StartOptions = {}): Promise<void> {
    this.rememberArgs(node, options);
    await this.script(["start", labName(node)], callBoundsMs.restart);
  }

  /** Kills the node, then starts its engine and agent again on the same data dirs. */
  async restart(node: LabNodeRef, options: StartOptions = {}): Promise<void> {
    this.rememberArgs(node, options);
    await this.script(["restart", labName(node)], callBoundsMs.restart);
  }

  /** Cuts the given nodes off from the others; they still reach each other and the host. */
  async partition(...nodes: LabNodeRef[]): Promise<void> {
    if (nodes.length === 0) throw new Error("partition needs at least one node");
    await this.script(["partition", ...nodes.map(labName)], callBoundsMs.partition);
  }

  /** Undoes every partition. */
  async heal(): Promise<void> {
    await this.script(["heal"], callBoundsMs.heal);
  }

  /**
   * Runs a command in the node's namespace (SHOAL_ADDR, SHOAL_DATA_DIR and DOCKER_HOST point at
   * the node). Resolves with its exit code, also a non-zero one; rejects only on timeout.
   */
  async exec(node: LabNodeRef, command: string[], timeoutMs = 30_000): Promise<ExecResult> {
    if (command.length === 0) throw new Error("exec needs a command");
    return run(labScript, ["exec", labName(node), ...command], timeoutMs, this.env());
  }

  async status(): Promise<LabNodeStatus[]> {
    const result = await this.script(["status"], callBoundsMs.status);
    return parseStatus(result.stdout);
  }

  /** The node's API base URL as the host reaches it. */
  base(node: LabNodeRef): string {
    return `${this.plainHttp ? "http" : "https"}://${nodeAddress(node)}:${labAgentPort}`;
  }

  /** fetch against the node's API, trusting the cluster CA in its data dir. */
  fetch(node: LabNodeRef, path: string, init?: RequestInit): Promise<Response> {
    const url = `${this.base(node)}${path}`;
    if (this.plainHttp) return fetch(url, init);
    return fetchWithDataDirCa(labDataDir(node))(url, init);
  }

  /** The API token the node's agent wrote to its data dir. */
  apiToken(node: LabNodeRef): string {
    return readFileSync(join(labDataDir(node), "api.token"), "utf8").trim();
  }

  /** True when the node's `/v1/health` answers 200 within `timeoutMs`. */
  async healthy(node: LabNodeRef, timeoutMs = 2000): Promise<boolean> {
    // Health is public and a joiner has no certificate of the cluster yet: only the status counts.
    return (await probeStatus(`${this.base(node)}/v1/health`, timeoutMs)) === 200;
  }

  private rememberArgs(node: LabNodeRef, options: StartOptions): void {
    if (options.agentArgs) this.nodeAgentArgs.set(labIndex(node), checkedArgs(options.agentArgs));
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SHOAL_LAB_AGENT_ARGS: [
        ...this.agentArgs,
        ...(this.plainHttp ? ["--bench-plain-http"] : []),
      ].join(" "),
      SHOAL_LAB_WAIT_SECONDS: String(this.waitSeconds),
      SHOAL_LAB_SCHEME: this.plainHttp ? "http" : "https",
    };
    if (this.plainHttp) env.SHOAL_BENCH_PLAIN_HTTP = "1";
    if (this.bin !== undefined) env.SHOAL_LAB_BIN = this.bin;
    for (const [index, args] of this.nodeAgentArgs) {
      env[`SHOAL_LAB_AGENT_ARGS_${index}`] = args.join(" ");
    }
    return env;
  }

  private async script(args: string[], bound: number): Promise<ExecResult> {
    const timeoutMs = bound * this.waitSeconds * secondsMs + 30_000;
    const result = await run(labScript, args, timeoutMs, this.env());
    if (result.code !== 0) {
      throw new Error(`lab.sh ${args.join(" ")} exited ${result.code}: ${tail(result.stderr)}`);
    }
    return result;
  }
}

/** One bounded child process; a timeout kills it and rejects with what it printed so far. */
function run(
  file: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error?.killed) {
          const what = `${file} ${args.join(" ")}`;
          reject(new Error(`${what} timed out after ${timeoutMs} ms: ${tail(stderr)}`));
          return;
        }
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The script splits agent arguments on whitespace, so one argument must not hold any. */
function checkedArgs(args: string[]): string[] {
  for (const arg of args) {
    if (/\s/.test(arg) || arg === "") {
      throw new Error(`agent argument ${JSON.stringify(arg)} is empty or contains whitespace`);
    }
  }
  return args;
}

function tail(text: string, lines = 15): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** A status cell is a pid, or "PID(dead)" / "none(dead)". */
function parseProcess(cell: string): LabProcess {
  const pid = Number.parseInt(cell, 10);
  // "-": a node without an engine has no such process.
  return { pid: Number.isNaN(pid) ? null : pid, alive: cell !== "-" && !cell.endsWith("(dead)") };
}

export function parseStatus(text: string): LabNodeStatus[] {
  const rows = text
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((cells) => /^lab\d+$/.test(cells[0] ?? "") && cells.length === 7);
  return rows.map(([name, address, namespace, containerd, dockerd, agent, health]) => ({
    name: name ?? "",
    address: address ?? "",
    namespace: namespace ?? "",
    containerd: parseProcess(containerd ?? ""),
    dockerd: parseProcess(dockerd ?? ""),
    agent: parseProcess(agent ?? ""),
    healthy: health === "ok",
  }));
}

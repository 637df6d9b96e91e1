// `shoal agent`: checks the flags and hands them to the node's composition root. A bad flag is a
// usage error (exit 2) before anything opens, so a typo never starts a half-configured node.
import { isIP } from "node:net";
import { hostname } from "node:os";
import { type Command, InvalidArgumentError, Option } from "commander";
import { isHostPath, normalizeHostPath } from "../../core/host-paths.ts";
import { limits } from "../../core/limits.ts";
import { type CliContext, usageError } from "../context.ts";
import { resolveDataDir } from "../target.ts";
import { guard } from "./shared.ts";

export interface AgentOptions {
  dataDir: string;
  bind: string;
  port: number;
  name: string;
  labels: Record<string, string>;
  dockerHost?: string;
  /** When the agent pulls an image the engine lacks. */
  pull: PullPolicy;
  pretty: boolean;
  logLevel: string;
  /** The join token of the cluster to join (absent: resume, or create a cluster). */
  token?: string;
  /** Members to ask when joining, `host:port`, where multicast does not reach. */
  join: string[];
  /** Whether to find and announce peers over mDNS. */
  mdns: boolean;
  /** The interface address mDNS uses; absent means the system's default. */
  mdnsInterface?: string;
  /** Start a new cluster even when one answers on the network. */
  newCluster: boolean;
  /** Leave the cluster on shutdown (SIGTERM/SIGINT) instead of staying a member. */
  leave: boolean;
  /** Applied entries between snapshots of the store (the log is compacted behind each). */
  snapshotEntries?: number;
  /** Directories whose contents tasks may mount from this node (`--allow-host-path`). */
  allowHostPaths: string[];
  /** No TLS at all: only `npm run bench`, to measure what mutual TLS costs (plain-wire.ts). */
  benchPlainHttp: boolean;
}

interface AgentFlags {
  allowHostPath: string[];
  dataDir?: string;
  bind: string;
  port: number;
  name?: string;
  labels: Record<string, string>;
  dockerHost?: string;
  pull: PullPolicy;
  pretty?: boolean;
  logLevel: string;
  token?: string;
  join: string[];
  mdns: boolean;
  mdnsInterface?: string;
  newCluster?: boolean;
  leave?: boolean;
  snapshotEntries?: number;
  benchPlainHttp?: boolean;
}

/** `missing` pulls an image the engine lacks; `never` fails its task (no registry contacted). */
export const pullPolicies = ["missing", "never"] as const;
export type PullPolicy = (typeof pullPolicies)[number];

export const logLevels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
/** A node name is shown in tables and may be a DNS name: the DNS bound of 253 applies. */
const nodeNameLengthMax = 253;

export function registerAgent(
  program: Command,
  context: CliContext,
  startAgent: (options: AgentOptions) => Promise<void>,
): void {
  program
    .command("agent")
    .description("run this machine as a shoal node (API on every interface, port 7420)")
    .option("--data-dir <dir>", "where the node keeps its state (default: /var/lib/shoal as root)")
    .option("--bind <address>", "the address the API listens on", parseBind, "0.0.0.0")
    .option("--port <port>", "the API and peer port", parsePort, limits.apiPortDefault)
    .option("--name <name>", "the node's name (default: the hostname)", parseName)
    .option("--labels <k=v,...>", "node labels for placement, e.g. zone=garage", parseLabels, {})
    .option(
      "--docker-host <url>",
      "the Docker engine (default: DOCKER_HOST, then the local socket)",
    )
    .option(
      "--pull <policy>",
      "pull images the engine lacks (missing), or never contact a registry (never)",
      parsePullPolicy,
      "missing",
    )
    .option(
      "--token <token>",
      "join the cluster of this join token (from `shoal token`; SHOAL_TOKEN keeps it out of `ps`)",
      parseToken,
    )
    .option(
      "--join <host:port>",
      "a member to ask when joining, where mDNS does not reach (repeatable)",
      collectJoin,
      [],
    )
    .option("--no-mdns", "neither announce this node nor look for peers over mDNS")
    .option("--mdns-interface <address>", "the interface address mDNS uses", parseInterface)
    .option("--new-cluster", "create a new cluster even if one answers on this network")
    .option("--leave", "leave the cluster when the agent stops (it stays a member otherwise)")
    .option(
      "--snapshot-entries <n>",
      "applied entries between snapshots of the store (default 10000)",
      parseSnapshotEntries,
    )
    .option(
      "--allow-host-path <dir>",
      "a directory tasks may mount from this node (repeatable; none by default)",
      parseHostPath,
      [],
    )
    .addOption(
      new Option(
        "--bench-plain-http",
        "benchmarks only: plain HTTP, no TLS, no peer identity",
      ).hideHelp(),
    )
    .option("--pretty", "human-readable logs instead of JSON lines")
    .option("--log-level <level>", `one of ${logLevels.join(", ")}`, parseLogLevel, "info")
    .action(
      guard(context, async (flags: AgentFlags) => {
        await startAgent(agentOptions(flags, context));
      }),
    );
}

function agentOptions(flags: AgentFlags, context: CliContext): AgentOptions {
  const dockerHost = flags.dockerHost ?? context.system.env.DOCKER_HOST;
  return {
    dataDir: resolveDataDir(flags.dataDir, context.system),
    bind: flags.bind,
    port: flags.port,
    name: flags.name ?? hostname(),
    labels: flags.labels,
    ...(dockerHost ? { dockerHost } : {}),
    pull: flags.pull,
    pretty: flags.pretty === true,
    logLevel: flags.logLevel,
    ...tokenOf(flags, context),
    join: flags.join,
    mdns: flags.mdns,
    ...(flags.mdnsInterface ? { mdnsInterface: flags.mdnsInterface } : {}),
    newCluster: flags.newCluster === true,
    leave: flags.leave === true,
    ...(flags.snapshotEntries ? { snapshotEntries: flags.snapshotEntries } : {}),
    allowHostPaths: flags.allowHostPath,
    benchPlainHttp: benchPlainHttpOf(flags, context),
  };
}

function parseHostPath(text: string, previous: string[]): string[] {
  if (!isHostPath(text)) throw new InvalidArgumentError(`${text}: expected an absolute directory`);
  if (previous.length >= limits.hostPathsPerNodeMax) {
    throw new InvalidArgumentError(
      `at most ${limits.hostPathsPerNodeMax} --allow-host-path directories`,
    );
  }
  return [...previous, normalizeHostPath(text)];
}

function parseSnapshotEntries(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 10 || value > limits.snapshotEntriesMax) {
    throw new InvalidArgumentError(`a whole number from 10 to ${limits.snapshotEntriesMax}`);
  }
  return value;
}

/** `host:port`, given once per member (commander calls this per occurrence). */
export function collectJoin(text: string, previous: string[] = []): string[] {
  const match = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d+)$/.exec(text);
  if (!match) throw new InvalidArgumentError(`${text}: expected host:port`);
  parsePort(match[2] ?? "");
  if (previous.length >= limits.joinAddressesMax) {
    throw new InvalidArgumentError(`at most ${limits.joinAddressesMax} --join addresses`);
  }
  return [...previous, text];
}

/** The shape only; whether the cluster accepts it is for the cluster to say. */
/**
 * The join token: `--token`, which every user of the machine can read in `ps` (said once), else
 * SHOAL_TOKEN, which only the agent's user can read (install.sh's unit passes it so).
 */
/** A second opt-in: one stray flag must not put a fleet on a wire anyone can read and forge. */
function benchPlainHttpOf(flags: AgentFlags, context: CliContext): boolean {
  if (flags.benchPlainHttp !== true) return false;
  if (context.system.env.SHOAL_BENCH_PLAIN_HTTP !== "1") {
    throw usageError(
      "--bench-plain-http is for npm run bench only and needs SHOAL_BENCH_PLAIN_HTTP=1 as well: " +
        "without TLS anyone on the network can read the tokens and act as a member",
    );
  }
  return true;
}

function tokenOf(flags: AgentFlags, context: CliContext): { token?: string } {
  if (flags.token) {
    context.err.write(
      "shoal: warning: --token shows the join token to every user of this machine in `ps`; pass it as SHOAL_TOKEN instead\n",
    );
    return { token: flags.token };
  }
  const fromEnv = context.system.env.SHOAL_TOKEN;
  if (!fromEnv) return {};
  try {
    return { token: parseToken(fromEnv) };
  } catch (error) {
    throw usageError(`SHOAL_TOKEN: ${(error as Error).message}`);
  }
}

function parseToken(text: string): string {
  if (text.trim().startsWith("shoal1.")) {
    throw new InvalidArgumentError(
      "a join token of a fleet from before TLS (shoal1.…): this version cannot join it; re-form the fleet (README, “Upgrading from shoal1”)",
    );
  }
  if (!/^shoal2\.[0-9a-z]+\.[0-9a-f]{64}\.[A-Za-z0-9_-]+$/.test(text.trim())) {
    throw new InvalidArgumentError(
      "not a shoal join token (it looks like shoal2.<cluster>.<ca-sha256>.<secret>)",
    );
  }
  return text.trim();
}

function parseInterface(text: string): string {
  if (isIP(text) !== 4) throw new InvalidArgumentError("expected the interface's IPv4 address");
  return text;
}

export function parsePort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new InvalidArgumentError("a port is a whole number from 1 to 65535");
  }
  return Number(text);
}

function parseBind(text: string): string {
  if (isIP(text) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text)) {
    throw new InvalidArgumentError("expected an IP address or a host name");
  }
  return text;
}

function parseName(text: string): string {
  if (text.length === 0 || text.length > nodeNameLengthMax || /\s/.test(text)) {
    throw new InvalidArgumentError(`a name has 1 to ${nodeNameLengthMax} characters, no spaces`);
  }
  return text;
}

function parsePullPolicy(text: string): PullPolicy {
  const policy = pullPolicies.find((known) => known === text);
  if (!policy) throw new InvalidArgumentError(`expected ${pullPolicies.join(" or ")}`);
  return policy;
}

function parseLogLevel(text: string): string {
  if (!logLevels.includes(text)) throw new InvalidArgumentError(`expected ${logLevels.join(", ")}`);
  return text;
}

/**
 * `zone=garage,disk=ssd`, given once or more (commander calls this per occurrence). Refused: a
 * pair without `=`, an empty or odd key, a repeated key, too many or too long labels.
 */
export function parseLabels(
  text: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const labels = { ...previous };
  for (const pair of text.split(",").filter((part) => part !== "")) {
    const [key = "", ...rest] = pair.split("=");
    const value = rest.join("=");
    if (rest.length === 0 || !/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(key)) {
      throw new InvalidArgumentError(`${pair}: expected key=value`);
    }
    if (key.length > limits.labelLengthMax || value.length > limits.labelLengthMax) {
      throw new InvalidArgumentError(`${pair}: at most ${limits.labelLengthMax} characters each`);
    }
    if (Object.hasOwn(labels, key)) throw new InvalidArgumentError(`${key} is given twice`);
    labels[key] = value;
  }
  if (Object.keys(labels).length > limits.labelsPerNodeMax) {
    throw new InvalidArgumentError(`at most ${limits.labelsPerNodeMax} labels`);
  }
  return labels;
}

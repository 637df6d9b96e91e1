// The composition root: builds the real adapters and wires a node. The only file that sees
// every layer. `bin/shoal` runs it.
import { realpathSync } from "node:fs";
import { serve } from "@hono/node-server";
import pino from "pino";
import pretty from "pino-pretty";
import { ensureDataDir, loadOrCreateNodeId, writeApiToken } from "./adapters/data-dir.ts";
import { DockerRuntime } from "./adapters/docker-runtime.ts";
import { hostFacts, primaryAddress } from "./adapters/host-facts.ts";
import { SingleNodeLog } from "./adapters/single-node-log.ts";
import { systemClock } from "./adapters/system-clock.ts";
import { LeaderLoop } from "./agent/leader-loop.ts";
import { localReporter } from "./agent/local-reporter.ts";
import { localAgentStore } from "./agent/local-store.ts";
import { Reconciler } from "./agent/reconciler.ts";
import { createApi } from "./api/app.ts";
import { type AgentOptions, createProgram } from "./cli/program.ts";
import { newId, newToken } from "./core/ids.ts";
import { limits } from "./core/limits.ts";
import { SeededRandom } from "./raft/seeded-random.ts";
import { gitCommit, version } from "./version.ts";

type Logger = pino.Logger;

function makeLogger(options: AgentOptions): Logger {
  const level = options.logLevel;
  return options.pretty
    ? pino({ level }, pretty({ colorize: process.stdout.isTTY, destination: 1 }))
    : pino({ level });
}

/** The first start of a cluster makes its id and API token; later starts reuse them. */
async function ensureCluster(log: SingleNodeLog, logger: Logger): Promise<void> {
  if (log.view().cluster()) return;
  const clusterId = newId();
  const result = await log.propose({
    type: "cluster.init",
    at: systemClock.now(),
    clusterId,
    apiToken: newToken(),
  });
  if (!result.ok) throw new Error(`cannot create the cluster: ${result.message}`);
  logger.info({ clusterId }, "created a new cluster");
}

async function registerNode(
  log: SingleNodeLog,
  nodeId: string,
  options: AgentOptions,
): Promise<void> {
  const result = await log.propose({
    type: "node.register",
    at: systemClock.now(),
    id: nodeId,
    name: options.name,
    address: primaryAddress(options.bind),
    port: options.port,
    labels: options.labels,
    version,
    ...hostFacts(),
  });
  if (!result.ok) throw new Error(`cannot register this node: ${result.message}`);
}

/** Opens and replays the store, creating the cluster on first start, and registers this node. */
async function openStore(options: AgentOptions, nodeId: string, logger: Logger) {
  const opened = SingleNodeLog.open(options.dataDir);
  try {
    await ensureCluster(opened, logger);
    await registerNode(opened, nodeId, options);
    const cluster = opened.view().cluster();
    if (!cluster) throw new Error("the store has no cluster after initialising it");
    writeApiToken(options.dataDir, cluster.apiToken);
    return { opened, cluster };
  } catch (error) {
    opened.close();
    throw error;
  }
}

export interface RunningNode {
  nodeId: string;
  stop(): Promise<void>;
}

export async function startNode(options: AgentOptions): Promise<RunningNode> {
  ensureDataDir(options.dataDir);
  const nodeId = loadOrCreateNodeId(options.dataDir, newId);
  const logger = makeLogger(options).child({ node: nodeId });
  let log: SingleNodeLog | null = null;
  const api = createApi({
    nodeId,
    store: () => (log ? { view: log.view(), log } : null),
    clock: systemClock,
    newId,
    logger,
  });
  const server = serve({ fetch: api.app.fetch, hostname: options.bind, port: options.port });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  logger.info(
    { bind: options.bind, port: options.port, dataDir: options.dataDir },
    "API listening",
  );

  let opened: SingleNodeLog;
  let cluster: { id: string };
  try {
    ({ opened, cluster } = await openStore(options, nodeId, logger));
  } catch (error) {
    // A node that cannot open its store must exit (and be restarted), not serve 503 forever.
    api.close();
    await closeServer(server);
    throw error;
  }
  log = opened;

  const runtime = new DockerRuntime({ dockerHost: options.dockerHost });
  const reconciler = new Reconciler({
    nodeId,
    clusterId: cluster.id,
    store: localAgentStore(opened),
    reporter: localReporter(opened, systemClock, nodeId),
    runtime,
    logger,
    clock: systemClock,
    pull: options.pull,
  });
  // The scheduler's tie-breaks are seeded, like everything random in shoal's decisions.
  const tieBreaks = new SeededRandom(Number.parseInt(nodeId.slice(0, 8), 36));
  const leader = new LeaderLoop({
    log: opened,
    clock: systemClock,
    newId,
    random: () => tieBreaks.next(),
    logger,
  });
  reconciler.start();
  leader.start();
  logger.info({ cluster: cluster.id, appliedIndex: opened.machine.appliedIndex() }, "node ready");

  return {
    nodeId,
    async stop() {
      leader.stop();
      await reconciler.stop();
      api.close();
      await closeServer(server);
      opened.close();
      logger.info({}, "node stopped");
    },
  };
}

function closeServer(server: ReturnType<typeof serve>): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      if ("closeAllConnections" in server) server.closeAllConnections();
    }, limits.shutdownGraceMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    if ("closeIdleConnections" in server) server.closeIdleConnections();
  });
}

/** Runs a node until SIGTERM or SIGINT, then stops it; containers keep running for the next start. */
async function runAgent(options: AgentOptions): Promise<void> {
  const node = await startNode(options);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await node.stop();
}

/** Compared as real paths: a symlinked install folder must still run the CLI. */
function isEntry(): boolean {
  const invoked = process.argv[1];
  return invoked !== undefined && realpathSync(invoked) === realpathSync(import.meta.filename);
}
if (isEntry()) {
  const program = createProgram({
    startAgent: runAgent,
    version: { version, commit: gitCommit() },
  });
  await program.parseAsync(process.argv);
}

// The composition root: builds the real adapters and wires a node. The only file that sees
// every layer. `bin/shoal` runs it.
import { realpathSync } from "node:fs";
import type http from "node:http";
import { resolve } from "node:path";
import pino from "pino";
import { closeApiServer, listenApi, type Served } from "./adapters/api-server.ts";
import { keyDigest } from "./adapters/cluster-ca.ts";
import { ensureDataDir, loadNodeIdentity, type NodeIdentity } from "./adapters/data-dir.ts";
import { DockerRuntime } from "./adapters/docker-runtime.ts";
import { type Fleet, openFleet } from "./adapters/fleet.ts";
import { hostFacts, primaryAddress } from "./adapters/host-facts.ts";
import { hostUsage } from "./adapters/host-usage.ts";
import { IngressProxy } from "./adapters/ingress-proxy.ts";
import { readJoinToken } from "./adapters/join-token.ts";
import { type Announcement, MdnsDiscovery } from "./adapters/mdns-discovery.ts";
import { nodeTimers } from "./adapters/node-timers.ts";
import { refusedPeer } from "./adapters/peer-refusal.ts";
import { acceptPeerStreams } from "./adapters/peer-stream.ts";
import { systemClock } from "./adapters/system-clock.ts";
import { readTlsIdentity } from "./adapters/tls-files.ts";
import { type PeerOfSocket, peerOf } from "./adapters/tls-listener.ts";
import { DiskReporter } from "./agent/disk-reporter.ts";
import { reportIngress } from "./agent/ingress-reporter.ts";
import { changesIngress, ingressListeners, ingressState } from "./agent/ingress-routes.ts";
import { localReporter } from "./agent/local-reporter.ts";
import { localAgentStore } from "./agent/local-store.ts";
import { realpathOrNull } from "./agent/real-path.ts";
import { Reconciler } from "./agent/reconciler.ts";
import { createApi } from "./api/app.ts";
import type { FleetAccess } from "./api/context.ts";
import { type AgentOptions, createProgram } from "./cli/program.ts";
import type { Registration } from "./cluster/admission.ts";
import { type LifecycleParts, startMember } from "./cluster/lifecycle.ts";
import { ClusterMember } from "./cluster/member.ts";
import { clusterAccess, type MemberReport } from "./cluster/status.ts";
import { resolveHostPath } from "./core/host-paths.ts";
import { newId } from "./core/ids.ts";
import { limits } from "./core/limits.ts";
import { SeededRandom } from "./raft/seeded-random.ts";
import { gitCommit, version } from "./version.ts";

type Logger = pino.Logger;

/** pino-pretty is loaded only when asked for: an agent under systemd logs JSON and saves its memory. */
async function makeLogger(options: AgentOptions): Promise<Logger> {
  const level = options.logLevel;
  if (!options.pretty) return pino({ level });
  const { default: pretty } = await import("pino-pretty");
  return pino({ level }, pretty({ colorize: process.stdout.isTTY, destination: 1 }));
}

function registrationOf(options: AgentOptions): Registration {
  return {
    name: options.name,
    address: advertisedAddress(options),
    port: options.port,
    labels: options.labels,
    version,
    ...hostFacts(),
    hostPaths: { allowed: options.allowHostPaths, denied: deniedHostPaths(options) },
  };
}

/** The digest of this node's own key, which its registration pins (a new cluster's first node). */
function ownKeyDigest(dataDir: string): { keyDigest?: string } {
  const identity = readTlsIdentity(dataDir);
  return identity ? { keyDigest: keyDigest(identity.certPem) } : {};
}

/** What no task may mount from this node, whatever it allows: shoal's data dir, the engine's socket. */
function deniedHostPaths(options: AgentOptions): string[] {
  const socket = options.dockerHost?.startsWith("unix://") ? [options.dockerHost.slice(7)] : [];
  const denied = [options.dataDir, "/var/run/docker.sock", "/run/docker.sock", ...socket];
  // As written and where they lead: a relative data dir, or one behind a symlink.
  return [
    ...new Set([
      ...denied,
      ...denied.map((path) => resolveHostPath(resolve(path), realpathOrNull)),
    ]),
  ];
}

/** Where peers reach this node: the bound address, else the mDNS interface's, else the first. */
function advertisedAddress(options: AgentOptions): string {
  const bound = primaryAddress(options.bind);
  if (options.bind !== "0.0.0.0" && options.bind !== "::") return bound;
  return options.mdnsInterface ?? bound;
}

/** mDNS announces and browses on the chosen interface; it never runs with --no-mdns. */
function startDiscovery(options: AgentOptions, nodeId: string, logger: Logger) {
  if (!options.mdns) return null;
  const kept = readJoinToken(options.dataDir);
  const discovery = new MdnsDiscovery({
    announcement: announcementOf(options, nodeId, kept?.clusterId ?? ""),
    interfaceAddress: options.mdnsInterface,
    now: () => systemClock.now(),
    onError: (error) => logger.warn({ err: error }, "mDNS"),
  });
  discovery.start();
  return discovery;
}

function announcementOf(options: AgentOptions, nodeId: string, clusterId: string): Announcement {
  return { nodeId, clusterId, address: advertisedAddress(options), port: options.port, version };
}

/**
 * How to add a machine; said once, when the cluster is created. The token itself is not printed:
 * an agent's output ends up in the journal, and `shoal token` shows it to whoever may read the
 * data dir.
 */
function printJoinLine(fleet: Fleet, options: AgentOptions): void {
  process.stdout.write(
    `\nshoal: created cluster ${fleet.token.clusterId}. To add a machine, run \`shoal token\` here ` +
      "and on the other machine:\n\n  shoal agent --token <what shoal token printed>\n\n" +
      `(where mDNS does not reach, add --join ${advertisedAddress(options)}:${options.port})\n\n`,
  );
}

export interface RunningNode {
  nodeId: string;
  stop(): Promise<void>;
}

/** Said once, on the start that retired an id: the operator sees which node became which. */
function warnOfRetiredId(identity: NodeIdentity, logger: Logger): void {
  const retired = identity.retired;
  if (!retired) return;
  logger.warn(
    { retiredNode: retired.id, movedTo: retired.folder, reason: retired.reason },
    `node ${retired.id} lost its Raft log (${retired.reason}) and may not vote under that id ` +
      `again: it rejoins the cluster as new node ${identity.id}, a learner; the leader replaces ` +
      `${retired.id}, and its old files are in ${retired.folder}`,
  );
}

export async function startNode(options: AgentOptions): Promise<RunningNode> {
  ensureDataDir(options.dataDir);
  const identity = loadNodeIdentity(options.dataDir, newId);
  const nodeId = identity.id;
  const logger = (await makeLogger(options)).child({ node: nodeId });
  warnOfRetiredId(identity, logger);
  let fleet: Fleet | null = null;
  let serving = false;
  let access: FleetAccess | null = null;
  const api = createApi({
    nodeId,
    store: () => (fleet && serving ? { view: fleet.log.view(), log: fleet.log } : null),
    peer: () => fleet?.peer ?? null,
    joins: () => fleet?.joins ?? null,
    rotation: () => fleet?.secrets ?? null,
    connectionPeer: (env) =>
      peerOf((env as { incoming?: http.IncomingMessage } | undefined)?.incoming?.socket)?.nodeId ??
      null,
    fleet: () => access,
    disk: () => fleet?.log.disk() ?? null,
    clock: systemClock,
    newId,
    logger,
  });
  const isRevoked = (peer: PeerOfSocket) => refusedPeer(fleet?.log.view() ?? null, nodeId, peer);
  const served = await listenApi({
    fetch: api.app.fetch,
    dataDir: options.dataDir,
    nodeId,
    bind: options.bind,
    port: options.port,
    isRevoked,
    plainHttp: options.benchPlainHttp,
    logger,
  });
  const closeStreams = acceptPeerStreams(served.http, () => fleet?.streams ?? null);
  const discovery = startDiscovery(options, nodeId, logger);
  const parts: NodeParts = { nodeId, options, logger, discovery, served };
  const lifecycle: LifecycleParts<Fleet> = {
    nodeId,
    open: () => openFleetOf(parts),
    opened: (opened) => {
      fleet = opened;
      discovery?.announce(announcementOf(options, nodeId, opened.token.clusterId));
      if (opened.bootstrapped) printJoinLine(opened, options);
    },
    member: (opened) => memberOf(opened, nodeId, options, logger),
    run: (opened, member) => {
      access = accessOf(opened, member, nodeId);
      closeConnectionsOfLeavers(opened, served, nodeId);
      serving = true;
      return runAgent(opened, member, parts);
    },
    close: async (opened) => {
      api.close();
      closeStreams();
      await closeApiServer(served);
      await discovery?.stop();
      opened?.close();
    },
    leave: options.leave,
    timers: nodeTimers(systemClock),
    now: () => systemClock.now(),
    logger,
  };
  // SIGTERM while joining stops the join; once running, runUntilSignalled handles it.
  const aborted = new AbortController();
  const stopSignal = () => aborted.abort();
  process.once("SIGTERM", stopSignal);
  process.once("SIGINT", stopSignal);
  try {
    const running = await startMember(lifecycle, aborted.signal);
    return { nodeId, stop: () => running.stop() };
  } finally {
    process.off("SIGTERM", stopSignal);
    process.off("SIGINT", stopSignal);
  }
}

function openFleetOf({ nodeId, options, logger, discovery, served }: NodeParts): Promise<Fleet> {
  return openFleet({
    nodeId,
    dataDir: options.dataDir,
    token: options.token,
    join: options.join,
    finder: discovery,
    newCluster: options.newCluster,
    snapshotEntries: options.snapshotEntries,
    registration: registrationOf(options),
    logger,
    wire: served.wire,
    onIdentity: (identity) => served.setIdentity(identity),
  });
}

/** `shoal node rm`: the node's open connections end as soon as its leaving is applied here. */
function closeConnectionsOfLeavers(fleet: Fleet, served: Served, nodeId: string): void {
  fleet.log.onApplied(({ command }) => {
    if (command.type === "node.leave" && command.nodeId !== nodeId) {
      served.listener.closeNode(command.nodeId);
      served.wire.forget(command.nodeId);
    }
  });
}

/** The node's membership duties, over its fleet store and peer client. */
function memberOf(
  fleet: Fleet,
  nodeId: string,
  options: AgentOptions,
  logger: Logger,
): ClusterMember {
  const member = new ClusterMember({
    log: fleet.log,
    nodeId,
    clusterId: fleet.token.clusterId,
    now: () => systemClock.now(),
    timers: nodeTimers(systemClock),
    newId,
    random: seededTieBreaks(nodeId),
    logger,
    registration: () => ({
      type: "node.register",
      at: systemClock.now(),
      id: nodeId,
      ...registrationOf(options),
      ...ownKeyDigest(options.dataDir),
    }),
    newClusterSecrets: () => fleet.secrets.initial(),
    onApiToken: (sealed) => fleet.secrets.keepApiToken(sealed),
    onJoinSecret: (sealed) => fleet.secrets.keepJoinSecret(sealed),
    sendHeartbeat: async (leaderId) => {
      const base = fleet.resolve(leaderId);
      if (!base) throw new Error(`no address for leader ${leaderId}`);
      const usage = hostUsage(systemClock.now());
      await fleet.client.call(leaderId, base, "heartbeat", { usage }, limits.agentHeartbeatMs);
    },
  });
  fleet.onHeartbeat((fromNode, usage) => member.heard(fromNode, usage));
  return member;
}

/** The scheduler's tie-breaks are seeded, like everything random in shoal's decisions. */
function seededTieBreaks(nodeId: string): () => number {
  const tieBreaks = new SeededRandom(Number.parseInt(nodeId.slice(0, 8), 36));
  return () => tieBreaks.next();
}

/** What the API reads of the cluster: the room's status over this node's peers. */
function accessOf(fleet: Fleet, member: ClusterMember, nodeId: string): FleetAccess {
  return clusterAccess({
    log: fleet.log,
    nodeId,
    ask: async (other) => {
      const base = fleet.resolve(other);
      if (!base) return null;
      const timeoutMs = limits.memberStatusTimeoutMs;
      return fleet.client
        .call<MemberReport>(other, base, "status", {}, timeoutMs)
        .catch(() => null);
    },
    usageOf: (id) => member.heartbeats.usageOf(id),
    ownUsage: () => hostUsage(systemClock.now()),
  });
}

interface NodeParts {
  nodeId: string;
  options: AgentOptions;
  logger: Logger;
  discovery: MdnsDiscovery | null;
  served: Served;
}

/** Starts the agent's loops over an open fleet store; `stop` undoes them in reverse. */
function runAgent(
  fleet: Fleet,
  member: ClusterMember,
  parts: NodeParts,
): { stop(): Promise<void> } {
  const { nodeId, options, logger } = parts;
  const log = fleet.log;
  const clusterId = log.view().cluster()?.id ?? fleet.token.clusterId;
  const reconciler = new Reconciler({
    nodeId,
    clusterId,
    store: localAgentStore(log),
    reporter: localReporter(log, systemClock, nodeId),
    runtime: new DockerRuntime({ dockerHost: options.dockerHost }),
    logger,
    clock: systemClock,
    pull: options.pull,
    disconnectedMs: () => member.disconnectedMs(),
    hostPaths: { allowed: options.allowHostPaths, denied: deniedHostPaths(options) },
  });
  const disk = new DiskReporter({
    log,
    nodeId,
    disk: () => log.disk(),
    clock: systemClock,
    logger,
  });
  const ingress = new IngressProxy({
    listeners: () => ingressListeners(ingressState(log.view()), nodeId),
    onChange: (listener) =>
      log.onApplied((entry) => {
        if (changesIngress(entry, ingress.serving)) listener();
      }),
    monotonic: () => systemClock.monotonic(),
    random: Math.random,
    logger,
    host: options.bind,
  });
  const stopIngressReports = reportIngress({
    log,
    nodeId,
    statuses: () => ingress.statuses().filter((status) => status.message !== "opening"),
    now: () => systemClock.now(),
    logger,
  });
  reconciler.start();
  disk.start();
  ingress.start();
  // At start too: a node restarted more often than the check runs must still renew.
  const renew = () =>
    fleet.renewCertificate(systemClock.now()).catch((error: unknown) => {
      logger.warn({ err: error }, "renewing this node's certificate failed; trying again later");
    });
  const renewal = setInterval(renew, limits.nodeCertRenewCheckMs);
  void renew();
  logger.info({ cluster: clusterId, appliedIndex: log.view().appliedIndex() }, "node ready");
  return {
    async stop() {
      clearInterval(renewal);
      disk.stop();
      stopIngressReports();
      await ingress.close();
      await reconciler.stop();
    },
  };
}

/** Runs a node until SIGTERM or SIGINT, then stops it; containers keep running for the next start. */
async function runUntilSignalled(options: AgentOptions): Promise<void> {
  const node = await startNode(options);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await node.stop();
}

/**
 * Compared as real paths: a symlinked install folder must still run the CLI. A compiled binary
 * (Bun) runs from a virtual file system that has no real paths, and says itself that it is main.
 */
function isEntry(): boolean {
  if ((import.meta as { main?: boolean }).main === true) return true;
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return realpathSync(invoked) === realpathSync(import.meta.filename);
  } catch {
    return false;
  }
}
if (isEntry()) {
  const program = createProgram({
    startAgent: runUntilSignalled,
    version: { version, commit: gitCommit() },
  });
  // Not awaited at the top level: parseAsync reports its own failures and never rejects, and a
  // top-level await would make Bun ignore the binary's bytecode (test/tidy.test.ts).
  void program.parseAsync(process.argv);
}

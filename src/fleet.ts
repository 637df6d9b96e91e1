// The replicated store of a fleet node: the Raft command log, the peer transport, and how a node
// comes to belong to a cluster — it resumes from its data dir, or bootstraps a new cluster, or
// joins one with a token through any member it can reach (found over mDNS or given by --join).
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { writeSecret } from "./adapters/data-dir.ts";
import {
  formatJoinToken,
  type JoinToken,
  joinTokenPath,
  parseJoinToken,
  readJoinToken,
} from "./adapters/join-token.ts";
import { openDatabase } from "./adapters/libsql.ts";
import { PeerClient } from "./adapters/peer-client.ts";
import { decodeMessages, encodeMessages } from "./adapters/peer-codec.ts";
import { streamKeys } from "./adapters/peer-frames.ts";
import { HttpPeerSender } from "./adapters/peer-sender.ts";
import type { PeerStreamEndpoint } from "./adapters/peer-stream.ts";
import { RaftCommandLog } from "./adapters/raft-command-log.ts";
import { LibsqlRaftLogStore } from "./adapters/raft-log-store-libsql.ts";
import { SnapshotAssembler } from "./adapters/snapshot-chunks.ts";
import { systemClock } from "./adapters/system-clock.ts";
import { EncodedJson, type PeerEndpoint } from "./api/context.ts";
import { badSignatureMessage, derivePeerKey, PeerVerifier } from "./api/peer-auth.ts";
import { ShoalError } from "./core/errors.ts";
import { newId, newToken } from "./core/ids.ts";
import { limits } from "./core/limits.ts";
import { type HostUsage, hostUsageSchema } from "./host-usage.ts";
import { SeededRandom } from "./raft/seeded-random.ts";
import { commandSchema, requestIdSchema } from "./state/commands.ts";

/** Where a node looks for members of a cluster besides `--join`: mDNS, or nothing. */
export interface PeerFinder {
  /** Members seen recently; without a cluster id, members of any cluster. */
  peers(clusterId?: string): { nodeId: string; clusterId: string; address: string; port: number }[];
}

export interface FleetLogger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

export interface FleetOptions {
  nodeId: string;
  dataDir: string;
  /** The join token given on the command line, if any. */
  token?: string | undefined;
  /** Members to ask when joining (`host:port`). */
  join: readonly string[];
  /** Finds members over mDNS; null with --no-mdns. */
  finder: PeerFinder | null;
  /** Start a new cluster even though one answers on the LAN (`--new-cluster`). */
  newCluster?: boolean | undefined;
  /** What this node registers as: its name, address and port, labels and facts. */
  registration: Registration;
  logger: FleetLogger;
  /** How long a node without a token listens for an existing cluster before creating one. */
  listenBeforeBootstrapMs?: number | undefined;
  /** Applied entries between snapshots (`--snapshot-entries`); absent: the default. */
  snapshotEntries?: number | undefined;
}

const registerSchema = z.strictObject({
  nodeId: z.string().regex(/^[0-9a-z]{6,64}$/),
  name: z.string().min(1).max(253),
  address: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  labels: z.record(z.string(), z.string()),
  arch: z.string(),
  os: z.string(),
  cpus: z.number().positive(),
  memoryMb: z.number().int().positive(),
  version: z.string(),
});
type RegisterBody = z.infer<typeof registerSchema>;

/** A write forwarded by a follower: the command and the request id that makes resending safe. */
const forwardedSchema = z.strictObject({ request: requestIdSchema, command: commandSchema });
export type Registration = Omit<RegisterBody, "nodeId">;

interface JoinAnswer {
  leader: string;
  members: { id: string; address: string; port: number }[];
}

/** What a member says of itself to a peer (for `GET /v1/cluster`). */
export interface MemberReport {
  id: string;
  role: string;
  term: number;
  leader: string;
  commitIndex: number;
  appliedIndex: number;
  /** The leader's remaining lease; 0 elsewhere. */
  leaseRemainingMs: number;
  /** The leader's view of the others' logs; empty elsewhere. */
  followers: { id: string; match: number }[];
}

export interface Fleet {
  log: RaftCommandLog;
  token: JoinToken;
  peer: PeerEndpoint;
  /** Who may open a peer stream to this node, and what answers its frames. */
  streams: PeerStreamEndpoint;
  client: PeerClient;
  /** Whether this node created the cluster on this start (it writes cluster.init as leader). */
  bootstrapped: boolean;
  /** Whether the node must still be admitted by a member (`join()` does it). */
  needsJoin: boolean;
  /** The base URL of a member, from the store or from what joining learnt. */
  resolve(memberId: string): string | null;
  /** Asks members until one admits this node; throws when every member refuses the token. */
  join(signal: AbortSignal): Promise<void>;
  /** Sets who hears the heartbeats other nodes send to this one (the failure detector). */
  onHeartbeat(listener: (fromNode: string) => void): void;
  /** The machine use a node last reported with its heartbeat to this node; null when none. */
  usageOf(nodeId: string): HostUsage | null;
  close(): void;
}

/** Addresses learnt before the store knows a member (while joining), per node. */
type SeededAddresses = Map<string, string>;

/**
 * A member's base URL from the store (kept for a moment: every batch of messages asks), else
 * from what joining learnt.
 */
function resolver(log: () => RaftCommandLog | null, seeded: SeededAddresses) {
  const cache = new Map<string, { base: string; at: number }>();
  return (memberId: string): string | null => {
    const cached = cache.get(memberId);
    if (cached && Date.now() - cached.at < limits.peerAddressCacheMs) return cached.base;
    const node = log()?.view().nodeById(memberId);
    if (!node) return seeded.get(memberId) ?? null;
    const base = `http://${node.address}:${node.port}`;
    if (cache.size >= limits.peerAddressCacheMax) cache.clear();
    cache.set(memberId, { base, at: Date.now() });
    return base;
  };
}

/** A data dir written by shoal before fleets keeps its log in a table Raft does not read. */
function refuseOneNodeLog(dataDir: string): void {
  const path = join(dataDir, "raft.db");
  if (!existsSync(path) || existsSync(joinTokenPath(dataDir))) return;
  const db = openDatabase(path, "FULL");
  try {
    const old = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'entries'").get();
    if (old) {
      throw new ShoalError(
        "E_CONFLICT",
        `${dataDir} holds a one-node log from before fleets; move the folder aside to start anew`,
      );
    }
  } finally {
    db.close();
  }
}

/** Picks the token: the one given, else the one kept, else a new cluster's. */
async function chooseToken(options: FleetOptions): Promise<{ token: JoinToken; fresh: boolean }> {
  const kept = readJoinToken(options.dataDir);
  const given = options.token ? parseJoinToken(options.token) : null;
  if (kept && given && kept.clusterId !== given.clusterId) {
    throw new ShoalError(
      "E_CONFLICT",
      `this data dir belongs to cluster ${kept.clusterId}, the token to ${given.clusterId}`,
    );
  }
  if (!kept && !given) await refuseWhenAClusterAnswers(options);
  const token = kept ?? given ?? formatJoinToken(newId(), newToken());
  return { token, fresh: !kept && !given };
}

/**
 * A node with neither a token nor a data dir listens for a moment first: a cluster answering on
 * the LAN means the person most likely forgot `--token`, and a second cluster made by mistake
 * would be worse than a clear refusal.
 */
async function refuseWhenAClusterAnswers(options: FleetOptions): Promise<void> {
  const finder = options.finder;
  if (!finder || options.newCluster) return;
  const waitMs = options.listenBeforeBootstrapMs ?? limits.discoveryBootstrapWaitMs;
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  const found = finder.peers().filter((peer) => peer.clusterId !== "");
  if (found.length === 0) return;
  const where = found.map((peer) => `${peer.clusterId} at ${peer.address}:${peer.port}`);
  throw new ShoalError(
    "E_CONFLICT",
    `found a shoal cluster on this network (${[...new Set(where)].join(", ")}): to join it, run ` +
      "`shoal token` on one of its nodes and start this one with --token; to start a separate " +
      "cluster anyway, give --new-cluster",
  );
}

/**
 * A log without a join token is what a node refused by its cluster leaves behind (it never got
 * any entry) and may start anew; one with history belongs to a cluster whose token is missing.
 */
function logIsBlank(dataDir: string): boolean {
  const path = join(dataDir, "raft.db");
  if (!existsSync(path)) return true;
  const store = new LibsqlRaftLogStore(path);
  try {
    // A bootstrap row alone (index 0) is what a crash right after creating a cluster leaves.
    const { hardState, snapshot, entries } = store.load();
    return hardState.term === 0 && (snapshot?.index ?? 0) === 0 && entries.length === 0;
  } finally {
    store.close();
  }
}

export async function openFleet(options: FleetOptions): Promise<Fleet> {
  refuseOneNodeLog(options.dataDir);
  const wasKept = readJoinToken(options.dataDir) !== null;
  const { token, fresh } = await chooseToken(options);
  if (fresh && !logIsBlank(options.dataDir)) {
    throw new ShoalError(
      "E_CONFLICT",
      `${options.dataDir} holds a cluster's log but no join.token: put the token back, or start with --token`,
    );
  }
  const key = derivePeerKey(token.text);
  const client = new PeerClient(options.nodeId, key, systemClock);
  let log: RaftCommandLog | null = null;
  const seeded: SeededAddresses = new Map();
  const resolve = resolver(() => log, seeded);
  const sender = new HttpPeerSender({
    nodeId: options.nodeId,
    key,
    clock: systemClock,
    resolve,
    onAnswers: (messages) => log?.receive(messages),
  });
  const bootstrap = fresh ? { voters: [options.nodeId], learners: [] } : undefined;
  log = new RaftCommandLog({
    nodeId: options.nodeId,
    dataDir: options.dataDir,
    clock: systemClock,
    random: new SeededRandom(Number.parseInt(options.nodeId.slice(0, 8), 36)),
    sender,
    bootstrap,
    snapshotEntries: options.snapshotEntries,
    leaderCall: <T>(leaderId: string, kind: string, body: unknown, timeoutMs?: number) => {
      const base = resolve(leaderId);
      if (!base) throw new ShoalError("E_NOT_LEADER", `leader ${leaderId} has no known address`);
      return client.call<T>(base, kind, body, timeoutMs);
    },
  });
  const opened = log;
  // Kept only now: a bootstrap's token names a cluster whose first membership raft.db holds, and
  // a joiner's is removed again if the cluster refuses it.
  if (!wasKept) writeSecret(joinTokenPath(options.dataDir), token.text);
  const assembler = new SnapshotAssembler(options.dataDir);
  const heartbeats: Heartbeats = { listener: () => {}, usage: new Map() };
  const peer = peerEndpoint(
    opened,
    { key, nodeId: options.nodeId, assembler, heartbeats },
    (leaderId, body) => {
      const base = resolve(leaderId);
      if (!base) throw new ShoalError("E_NOT_LEADER", `leader ${leaderId} has no known address`);
      return client.call<JoinAnswer>(base, "join", body);
    },
  );
  const streams = streamEndpoint(opened, key, peer.verifier);
  opened.start();
  // A node admitted before it crashed knows its configuration; one that never was asks again.
  const { voters, learners } = opened.status().membership;
  const needsJoin = voters.length + learners.length === 0;
  return {
    log: opened,
    token,
    peer,
    streams,
    client,
    bootstrapped: bootstrap !== undefined,
    needsJoin,
    resolve,
    onHeartbeat: (listener) => {
      heartbeats.listener = listener;
    },
    usageOf: (nodeId) => heartbeats.usage.get(nodeId) ?? null,
    join: async (signal) => {
      try {
        await joinUntilAdmitted(options, token, client, seeded, signal);
      } catch (error) {
        // A token the cluster refused is not kept: the next start must not retry it by itself.
        if (!wasKept && error instanceof ShoalError && error.code === "E_UNAUTHORIZED") {
          rmSync(joinTokenPath(options.dataDir), { force: true });
        }
        throw error;
      }
    },
    close: () => {
      sender.close();
      opened.close();
    },
  };
}

/** Where to ask: the `--join` addresses, then members of the token's cluster seen over mDNS. */
function candidates(options: FleetOptions, token: JoinToken): string[] {
  const found = options.finder?.peers(token.clusterId) ?? [];
  const addresses = [...options.join, ...found.map((peer) => `${peer.address}:${peer.port}`)];
  return [...new Set(addresses)];
}

/**
 * Asks every candidate in turn, round after round, until one admits this node. A refused
 * signature is final only when every member reached refused it: the token is wrong.
 */
async function joinUntilAdmitted(
  options: FleetOptions,
  token: JoinToken,
  client: PeerClient,
  seeded: SeededAddresses,
  signal: AbortSignal,
): Promise<void> {
  const body: RegisterBody = { nodeId: options.nodeId, ...options.registration };
  for (let round = 0; !signal.aborted; round++) {
    const addresses = candidates(options, token);
    const errors: ShoalError[] = [];
    for (const address of addresses) {
      try {
        const answer = await client.call<JoinAnswer>(`http://${address}`, "join", body);
        for (const member of answer.members) {
          seeded.set(member.id, `http://${member.address}:${member.port}`);
        }
        // A leader that has not registered itself yet is at least where we asked.
        if (!seeded.has(answer.leader)) seeded.set(answer.leader, `http://${address}`);
        options.logger.info({ through: address }, "joined the cluster");
        return;
      } catch (error) {
        errors.push(error instanceof ShoalError ? error : new ShoalError("E_INTERNAL", `${error}`));
      }
    }
    // Only a refused signature proves a wrong token; a clock too far off (a Pi before NTP) is
    // refused too, but waiting for the clock to be set is the cure, not forgetting the token.
    const refusedToken = (error: ShoalError) =>
      error.code === "E_UNAUTHORIZED" && error.message.includes(badSignatureMessage);
    if (errors.length > 0 && errors.every(refusedToken)) {
      throw new ShoalError(
        "E_UNAUTHORIZED",
        `cluster ${token.clusterId} refused this node's token: ${errors[0]?.message}`,
      );
    }
    if (round > 0 && round % limits.joinLogEveryRounds === 0) {
      options.logger.warn(
        { cluster: token.clusterId, asked: addresses, errors: errors.map((e) => e.message) },
        addresses.length === 0
          ? "no member of the cluster found yet (mDNS, --join); still looking"
          : "no member admitted this node yet; asking again",
      );
    }
    await sleep(limits.joinRetryMs, signal);
  }
  throw new ShoalError("E_NOT_READY", "the node stopped before it joined");
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

type JoinForward = (leaderId: string, body: RegisterBody) => Promise<JoinAnswer>;

interface PeerParts {
  key: Buffer;
  nodeId: string;
  assembler: SnapshotAssembler;
  heartbeats: Heartbeats;
}

interface Heartbeats {
  listener: (fromNode: string) => void;
  /** The latest usage per node that heartbeats here; bounded by the fleet's node count. */
  usage: Map<string, HostUsage>;
}

const heartbeatSchema = z.strictObject({ usage: hostUsageSchema.optional() });

function rememberUsage(usage: Map<string, HostUsage>, nodeId: string, report: HostUsage): void {
  usage.delete(nodeId);
  usage.set(nodeId, report);
  // Oldest first: a node that stopped heartbeating long ago is the one forgotten.
  if (usage.size > limits.heartbeatUsagesKeptMax) usage.delete(usage.keys().next().value ?? "");
}

/** Peer streams carry Raft messages only; the member's answers to a frame go back in one frame. */
function streamEndpoint(
  log: RaftCommandLog,
  key: Buffer,
  verifier: PeerVerifier,
): PeerStreamEndpoint {
  const nodeId = log.status().id;
  return {
    nodeId,
    verify: (request, header, now) => verifier.verify(request, header, now),
    keys: (nonce, name) => streamKeys(key, nonce, name),
    async answer(node, payload) {
      // Only what the stream's sender says to this member is stepped.
      const messages = decodeMessages(JSON.parse(payload)).filter(
        (message) => message.from === node && message.to === nodeId,
      );
      return encodeMessages(await log.receiveAndReply(node, messages));
    },
  };
}

function peerEndpoint(
  log: RaftCommandLog,
  parts: PeerParts,
  forwardJoin: JoinForward,
): PeerEndpoint {
  const { nodeId, assembler } = parts;
  const verifier = new PeerVerifier(parts.key);
  return {
    verifier,
    async handle(kind, body, fromNode) {
      if (kind === "heartbeat") {
        const { usage } = heartbeatSchema.parse(body ?? {});
        if (usage) rememberUsage(parts.heartbeats.usage, fromNode, usage);
        parts.heartbeats.listener(fromNode);
        return { ok: true };
      }
      if (kind === "raft") {
        const answers = await log.receiveAndReply(fromNode, decodeMessages(body));
        return new EncodedJson(encodeMessages(answers));
      }
      if (kind === "snapshot") {
        const whole = assembler.accept(body);
        if (whole) log.receive([whole]);
        return { ok: true };
      }
      if (kind === "propose") {
        const { request, command } = forwardedSchema.parse(body);
        return log.proposeForPeer(command, request, fromNode);
      }
      if (kind === "status") return memberReport(log, nodeId);
      if (kind === "read-index" || kind === "lease-read") {
        const read = await log.readIndexForPeer(kind, fromNode);
        if (!read.ok) throw new ShoalError(read.code, read.message);
        return read.value;
      }
      if (kind === "join") {
        const request = registerSchema.parse(body);
        const { role, leader } = log.status();
        // A member that is not the leader passes the join on, one hop.
        if (role !== "leader" && leader) return forwardJoin(leader, request);
        return admit(log, request, nodeId);
      }
      throw new ShoalError("E_NOT_FOUND", `no peer route ${kind}`);
    },
  };
}

export function memberReport(log: RaftCommandLog, nodeId: string): MemberReport {
  const status = log.status();
  return {
    id: nodeId,
    role: status.role,
    term: status.term,
    leader: status.leader,
    commitIndex: status.commitIndex,
    appliedIndex: log.view().appliedIndex(),
    leaseRemainingMs: log.leaseRemainingMs(),
    followers: log.followers().map((f) => ({ id: f.id, match: f.match })),
  };
}

/** The leader registers the newcomer and adds it as a learner; it answers with the members. */
async function admit(log: RaftCommandLog, body: RegisterBody, selfId: string): Promise<JoinAnswer> {
  const { role, leader } = log.status();
  if (role !== "leader")
    throw new ShoalError("E_NOT_LEADER", `ask the leader (${leader || "unknown"})`);
  const { nodeId, ...facts } = body;
  const registered = await log.proposeHere({
    type: "node.register",
    at: systemClock.now(),
    id: nodeId,
    ...facts,
    rejoin: true,
  });
  if (!registered.ok) throw new ShoalError(registered.code, registered.message);
  const membership = log.status().membership;
  if (![...membership.voters, ...membership.learners].includes(nodeId)) {
    const added = await log.changeMembership({ type: "addLearner", member: nodeId });
    if (!added.ok) throw new ShoalError(added.code, added.message);
  }
  const members = log
    .view()
    .nodes()
    .map((n) => ({ id: n.id, address: n.address, port: n.port }));
  return { leader: selfId, members };
}

// The replicated store of a fleet node: the Raft command log, the peer transport, and how a node
// comes to belong to a cluster — it resumes from its data dir, or bootstraps a new cluster (and
// its CA), or joins one with a token through any member it can reach (found over mDNS or given by
// --join), receiving a certificate for its node id.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { apiTokenHash } from "../api/auth.ts";
import { EncodedJson, type JoinEndpoint, type PeerEndpoint } from "../api/context.ts";
import {
  type AdmissionPorts,
  admitJoiner,
  type JoinAnswer,
  type JoinRequest,
  type Registration,
} from "../cluster/admission.ts";
import { heartbeatSchema } from "../cluster/heartbeats.ts";
import {
  chooseToken,
  formatJoinToken,
  type JoinToken,
  parseJoinToken,
} from "../cluster/join-token.ts";
import { joinUntilAdmitted, type PeerFinder } from "../cluster/joining.ts";
import { memberReport } from "../cluster/status.ts";
import { ShoalError } from "../core/errors.ts";
import { newId, newToken } from "../core/ids.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { HostUsage } from "../core/types.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { type Command, commandSchema, requestIdSchema } from "../state/commands.ts";
import {
  caDigest,
  createClusterCa,
  createNodeRequest,
  type KeyedCertificate,
  renewNodeCertificate,
  requestKeyDigest,
  signNodeCertificate,
} from "./cluster-ca.ts";
import { writeApiToken, writeSecret } from "./data-dir.ts";
import { fetchPinnedCa, requestAdmission } from "./join-client.ts";
import { joinProof, joinTokenPath, proofMatches, readJoinToken } from "./join-token.ts";
import { openDatabase } from "./libsql.ts";
import { nodeTimers } from "./node-timers.ts";
import { PeerClient } from "./peer-client.ts";
import { decodeMessages, encodeMessages } from "./peer-codec.ts";
import { HttpPeerSender } from "./peer-sender.ts";
import type { PeerStreamEndpoint } from "./peer-stream.ts";
import type { PeerWire } from "./peer-wire.ts";
import { RaftCommandLog } from "./raft-command-log.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";
import { newClusterKey, readClusterKey, seal, unseal, writeClusterKey } from "./secret-box.ts";
import { SnapshotAssembler } from "./snapshot-chunks.ts";
import { systemClock } from "./system-clock.ts";
import { readCa, readTlsIdentity, writeCa, writeNodeCertificate } from "./tls-files.ts";
import type { TlsIdentity } from "./tls-listener.ts";

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
  logger: Logger;
  /** How long a node without a token listens for an existing cluster before creating one. */
  listenBeforeBootstrapMs?: number | undefined;
  /** Applied entries between snapshots (`--snapshot-entries`); absent: the default. */
  snapshotEntries?: number | undefined;
  /** The client side of this node's TLS; its identity changes once the node has a certificate. */
  wire: PeerWire;
  /** Serves a new certificate (bootstrap, admission, renewal) on the API's port and to peers. */
  onIdentity: (identity: TlsIdentity) => void;
}

/** A write forwarded by a follower: the command and the request id that makes resending safe. */
const forwardedSchema = z.strictObject({ request: requestIdSchema, command: commandSchema });

export interface Fleet {
  log: RaftCommandLog;
  token: JoinToken;
  peer: PeerEndpoint;
  /** Where a joiner without a certificate asks for one. */
  joins: JoinEndpoint;
  /** The cluster's secrets in the store, sealed, and this node's copies of them. */
  secrets: FleetSecrets;
  /**
   * Gives this node a new key and certificate once less than `nodeCertRenewBeforeMs` is left of
   * its own; true when it did. Any member holds the CA key, so no peer needs to answer.
   */
  renewCertificate(nowMs: number): Promise<boolean>;
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
  /** Sets who hears the heartbeats other nodes send to this one (the heartbeat registry). */
  onHeartbeat(listener: (fromNode: string, usage?: HostUsage) => void): void;
  close(): void;
}

/** Addresses learnt before the store knows a member (while joining), per node. */
type SeededAddresses = Map<string, string>;

/**
 * A member's base URL from the store (kept for a moment: every batch of messages asks), else
 * from what joining learnt.
 */
function resolver(
  log: () => RaftCommandLog | null,
  seeded: SeededAddresses,
  scheme: PeerWire["scheme"],
) {
  const cache = new Map<string, { base: string; at: number }>();
  return (memberId: string): string | null => {
    const cached = cache.get(memberId);
    if (cached && Date.now() - cached.at < limits.peerAddressCacheMs) return cached.base;
    const node = log()?.view().nodeById(memberId);
    if (!node) return seeded.get(memberId) ?? null;
    const base = `${scheme}://${node.address}:${node.port}`;
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

interface ChosenToken {
  token: JoinToken;
  /** A new cluster's token: its CA was made here, with its key. */
  ca: KeyedCertificate | null;
}

/** Picks the token: the one given, else the one kept, else a new cluster's, with its new CA. */
async function pickToken(options: FleetOptions): Promise<ChosenToken> {
  const given = options.token ? parseJoinToken(options.token) : null;
  const choice = chooseToken(readJoinToken(options.dataDir), given);
  if (choice.kind === "given-anew") writeSecret(joinTokenPath(options.dataDir), choice.token.text);
  if (choice.kind !== "new-cluster") return { token: choice.token, ca: null };
  await refuseWhenAClusterAnswers(options);
  const clusterId = newId();
  const ca = await createClusterCa(clusterId, systemClock.now());
  return { token: formatJoinToken(clusterId, caDigest(ca.certPem), newToken()), ca };
}

/** The names a node's certificate carries: its address, its host name, and loopback's. */
function certificateNames(registration: { address: string; name: string }): string[] {
  const names = [registration.address, registration.name, "localhost", "127.0.0.1", "::1"];
  if (!registration.name.includes(".")) names.push(`${registration.name}.local`);
  return names;
}

/** Signs `nodeId`'s request with this member's CA; only a member that holds the CA key can. */
async function issueCertificate(
  dataDir: string,
  nodeId: string,
  csrPem: string,
  registration: { address: string; name: string },
): Promise<{ certPem: string; ca: KeyedCertificate }> {
  const ca = readCa(dataDir);
  if (!ca) throw new ShoalError("E_NOT_READY", "this member holds no CA key to sign with");
  const signed = await signNodeCertificate({
    ca,
    csrPem,
    nodeId,
    names: certificateNames(registration),
    nowMs: systemClock.now(),
  });
  if (!signed.ok) throw new ShoalError(signed.code, signed.message);
  return { certPem: signed.value, ca };
}

/** A new cluster's first node: its CA and cluster key on disk, then its own certificate. */
async function bootstrapIdentity(
  options: FleetOptions,
  ca: KeyedCertificate,
): Promise<TlsIdentity> {
  writeCa(options.dataDir, ca);
  writeClusterKey(options.dataDir, newClusterKey());
  const { keyPem, csrPem } = await createNodeRequest(options.nodeId);
  const { certPem } = await issueCertificate(
    options.dataDir,
    options.nodeId,
    csrPem,
    options.registration,
  );
  const identity = { certPem, keyPem, caPem: ca.certPem };
  writeNodeCertificate(options.dataDir, identity);
  return identity;
}

async function renewIfDue(options: FleetOptions, nowMs: number): Promise<boolean> {
  const current = readTlsIdentity(options.dataDir);
  if (!current) return false;
  const notAfter = Date.parse(new X509Certificate(current.certPem).validTo);
  if (notAfter - nowMs > limits.nodeCertRenewBeforeMs) return false;
  const identity = await reissue(options, current);
  if (!identity) return false;
  options.onIdentity(identity);
  options.logger.info(
    { notAfter: new Date(notAfter).toISOString() },
    "renewed this node's certificate",
  );
  return true;
}

/**
 * A new certificate for the node's own key, signed with the CA key it holds: what other members
 * pinned of the key stays true, so a fleet that was off past its certificates' end comes back.
 */
async function reissue(options: FleetOptions, current: TlsIdentity): Promise<TlsIdentity | null> {
  const ca = readCa(options.dataDir);
  if (!ca || ca.certPem.trim() !== current.caPem.trim()) return null;
  const certPem = await renewNodeCertificate({
    ca,
    keyPem: current.keyPem,
    nodeId: options.nodeId,
    names: certificateNames(options.registration),
    nowMs: systemClock.now(),
  });
  const identity = { certPem, keyPem: current.keyPem, caPem: current.caPem };
  writeNodeCertificate(options.dataDir, identity);
  return identity;
}

/** The node's kept certificate when it is of the token's CA; renewed here when it ran out. */
async function usableIdentity(
  options: FleetOptions,
  token: JoinToken,
): Promise<TlsIdentity | null> {
  const identity = readTlsIdentity(options.dataDir);
  if (!identity || caDigest(identity.caPem) !== token.caDigest) return null;
  const notAfter = Date.parse(new X509Certificate(identity.certPem).validTo);
  if (notAfter - systemClock.now() > limits.nodeCertExpiringMs) return identity;
  return reissue(options, identity);
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
  const { token, ca } = await pickToken(options);
  const fresh = ca !== null;
  if (fresh && !logIsBlank(options.dataDir)) {
    throw new ShoalError(
      "E_CONFLICT",
      `${options.dataDir} holds a cluster's log but no join.token: put the token back, or start with --token`,
    );
  }
  const identity = ca ? await bootstrapIdentity(options, ca) : await usableIdentity(options, token);
  if (identity) options.onIdentity(identity);
  const client = new PeerClient(options.wire);
  let log: RaftCommandLog | null = null;
  const seeded: SeededAddresses = new Map();
  const resolve = resolver(() => log, seeded, options.wire.scheme);
  const sender = new HttpPeerSender({
    nodeId: options.nodeId,
    wire: options.wire,
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
      return client.call<T>(leaderId, base, kind, body, timeoutMs);
    },
  });
  const opened = log;
  // Kept only now: a bootstrap's token names a cluster whose first membership raft.db holds, and
  // a joiner's is removed again if the cluster refuses it.
  if (!wasKept) writeSecret(joinTokenPath(options.dataDir), token.text);
  const assembler = new SnapshotAssembler(options.dataDir);
  const heartbeats: Heartbeats = { listener: () => {} };
  const secrets = fleetSecrets(options.dataDir, opened, token);
  const admission = admissionPorts(options.dataDir, opened, secrets, (leaderId, body) => {
    const base = resolve(leaderId);
    if (!base) throw new ShoalError("E_NOT_LEADER", `leader ${leaderId} has no known address`);
    return client.call<JoinAnswer>(leaderId, base, "join", body);
  });
  const peer = peerEndpoint(opened, { nodeId: options.nodeId, assembler, heartbeats, admission });
  const streams = streamEndpoint(opened);
  opened.start();
  // A node admitted before it crashed knows its configuration and has its certificate; one that
  // never was, or whose certificate ran out while it was away, asks again with the token.
  const { voters, learners } = opened.status().membership;
  const needsJoin = voters.length + learners.length === 0 || identity === null;
  return {
    log: opened,
    token,
    peer,
    joins: joinEndpoint(options.dataDir, admission),
    secrets,
    renewCertificate: (nowMs) => renewIfDue(options, nowMs),
    streams,
    client,
    bootstrapped: bootstrap !== undefined,
    needsJoin,
    resolve,
    onHeartbeat: (listener) => {
      heartbeats.listener = listener;
    },
    join: async (signal) => {
      try {
        await joinWithToken(options, token, seeded, signal);
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

/**
 * The cluster's secrets: the API token (kept as its hash and sealed) and the join secret (sealed),
 * under the cluster key; each node writes its own api.token and join.token from them.
 */
export interface FleetSecrets {
  /** What a new cluster's `cluster.init` carries. */
  initial(): { apiTokenHash: string; apiTokenSealed: string; joinSecretSealed: string };
  /** The join secret joiners must prove now: the store's, or before the cluster row, the token's. */
  joinSecret(): string;
  keepApiToken(sealed: string): void;
  keepJoinSecret(sealed: string): void;
  /** Proposes a new API token; resolves with it once committed. */
  rotateApiToken(): Promise<string>;
  /** Proposes a new join secret; resolves with the new join token once committed. */
  rotateJoinSecret(): Promise<string>;
}

function fleetSecrets(dataDir: string, log: RaftCommandLog, token: JoinToken): FleetSecrets {
  const key = () => {
    const found = readClusterKey(dataDir);
    if (!found) throw new ShoalError("E_NOT_READY", `${dataDir} holds no cluster.key`);
    return found;
  };
  const open = (sealed: string, what: string) => {
    const plain = unseal(key(), sealed);
    if (plain === null)
      throw new ShoalError("E_INTERNAL", `the ${what} does not open with this node's cluster.key`);
    return plain;
  };
  const sealedApiToken = (apiToken: string) => ({
    apiTokenHash: apiTokenHash(apiToken),
    apiTokenSealed: seal(key(), apiToken),
  });
  const joinTokenOf = (secret: string) =>
    formatJoinToken(token.clusterId, token.caDigest, secret).text;
  const propose = async (command: Command) => {
    const result = await log.propose(command);
    if (!result.ok) throw new ShoalError(result.code, result.message);
  };
  return {
    initial: () => ({ ...sealedApiToken(newToken()), joinSecretSealed: seal(key(), token.secret) }),
    joinSecret: () => {
      const sealed = log.view().cluster()?.joinSecretSealed;
      return sealed ? open(sealed, "join secret") : token.secret;
    },
    keepApiToken: (sealed) => writeApiToken(dataDir, open(sealed, "API token")),
    keepJoinSecret: (sealed) =>
      writeSecret(joinTokenPath(dataDir), joinTokenOf(open(sealed, "join secret"))),
    rotateApiToken: async () => {
      const apiToken = newToken();
      await propose({
        type: "cluster.rotate-api-token",
        at: systemClock.now(),
        ...sealedApiToken(apiToken),
      });
      return apiToken;
    },
    rotateJoinSecret: async () => {
      const secret = newToken();
      await propose({
        type: "cluster.rotate-join-secret",
        at: systemClock.now(),
        joinSecretSealed: seal(key(), secret),
      });
      return joinTokenOf(secret);
    },
  };
}

/** The request a joiner sends, made once per start: a new key, and the proof bound to it. */
async function joinRequest(options: FleetOptions, token: JoinToken) {
  const { keyPem, csrPem } = await createNodeRequest(options.nodeId);
  const proof = joinProof(token.secret, options.nodeId, csrPem);
  const body: JoinRequest = { nodeId: options.nodeId, ...options.registration, csrPem, proof };
  return { keyPem, body };
}

/** Keeps what admission gave: the CA and its key, then this node's certificate, then serves it. */
function keepAdmission(options: FleetOptions, keyPem: string, caPem: string, answer: JoinAnswer) {
  writeCa(options.dataDir, { certPem: caPem, keyPem: answer.caKeyPem });
  writeClusterKey(options.dataDir, Buffer.from(answer.clusterKey, "base64"));
  const identity = { certPem: answer.certPem, keyPem, caPem };
  writeNodeCertificate(options.dataDir, identity);
  options.onIdentity(identity);
}

/** Joins through the room's protocol over this node's TLS, keeping what admission gave. */
async function joinWithToken(
  options: FleetOptions,
  token: JoinToken,
  seeded: SeededAddresses,
  signal: AbortSignal,
): Promise<void> {
  const { keyPem, body } = await joinRequest(options, token);
  const { scheme } = options.wire;
  await joinUntilAdmitted(
    {
      token,
      join: options.join,
      finder: options.finder,
      client: {
        fetchPinnedCa: (address, pinned) => fetchPinnedCa(address, pinned, scheme),
        requestAdmission: (address, caPem, request) =>
          requestAdmission(address, caPem, request, scheme),
      },
      request: body,
      keep: (address, caPem, answer) => {
        keepAdmission(options, keyPem, caPem, answer);
        for (const member of answer.members) {
          seeded.set(member.id, `${scheme}://${member.address}:${member.port}`);
        }
        // A leader that has not registered itself yet is at least where we asked.
        if (!seeded.has(answer.leader)) seeded.set(answer.leader, `${scheme}://${address}`);
      },
      timers: nodeTimers(systemClock),
      logger: options.logger,
    },
    signal,
  );
}

/** The room's admission over this member's data dir: its CA key, cluster key and secrets. */
function admissionPorts(
  dataDir: string,
  log: RaftCommandLog,
  secrets: FleetSecrets,
  forward: AdmissionPorts["forward"],
): AdmissionPorts {
  return {
    log,
    joinSecret: () => secrets.joinSecret(),
    proofMatches,
    forward,
    sign: async (nodeId, csrPem, names) => {
      const { certPem, ca } = await issueCertificate(dataDir, nodeId, csrPem, names);
      return { certPem, caKeyPem: ca.keyPem };
    },
    keyDigest: requestKeyDigest,
    clusterKey: () => {
      const key = readClusterKey(dataDir);
      if (!key) throw new ShoalError("E_NOT_READY", "this member holds no cluster key");
      return key.toString("base64");
    },
    now: () => systemClock.now(),
  };
}

/** The public side of joining: the CA, and admission of a joiner that proves the secret. */
function joinEndpoint(dataDir: string, admission: AdmissionPorts): JoinEndpoint {
  return {
    caPem: () => readFileSync(join(dataDir, "ca.pem"), "utf8"),
    admit: (body) => admitJoiner(admission, body),
  };
}

interface PeerParts {
  nodeId: string;
  assembler: SnapshotAssembler;
  heartbeats: Heartbeats;
  admission: AdmissionPorts;
}

interface Heartbeats {
  listener: (fromNode: string, usage?: HostUsage) => void;
}

/** Peer streams carry Raft messages only; the member's answers to a frame go back in one frame. */
function streamEndpoint(log: RaftCommandLog): PeerStreamEndpoint {
  const nodeId = log.status().id;
  return {
    // Any node of the CA may speak; the core changes nothing for one that is no member.
    accepts: () => true,
    async answer(node, payload) {
      return encodeMessages(await log.receiveAndReply(node, ownMessages(payload, node, nodeId)));
    },
  };
}

/** What `node` (named by its certificate) says to this member; anything else is dropped. */
function ownMessages(body: unknown, node: string, nodeId: string) {
  const parsed = typeof body === "string" ? JSON.parse(body) : body;
  return decodeMessages(parsed).filter((message) => message.from === node && message.to === nodeId);
}

function peerEndpoint(log: RaftCommandLog, parts: PeerParts): PeerEndpoint {
  const { nodeId, assembler } = parts;
  return {
    async handle(kind, body, fromNode) {
      if (kind === "heartbeat") {
        const { usage } = heartbeatSchema.parse(body ?? {});
        parts.heartbeats.listener(fromNode, usage);
        return { ok: true };
      }
      if (kind === "raft") {
        const answers = await log.receiveAndReply(fromNode, ownMessages(body, fromNode, nodeId));
        return new EncodedJson(encodeMessages(answers));
      }
      if (kind === "snapshot") {
        const whole = assembler.accept(body);
        if (whole && whole.from === fromNode && whole.to === nodeId) log.receive([whole]);
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
      if (kind === "join") return admitJoiner(parts.admission, body);
      throw new ShoalError("E_NOT_FOUND", `no peer route ${kind}`);
    },
  };
}

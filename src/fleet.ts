// The replicated store of a fleet node: the Raft command log, the peer transport, and how a node
// comes to belong to a cluster — it resumes from its data dir, or bootstraps a new cluster, or
// joins one with a token through any member it can reach (`--join` addresses for now).
import { existsSync } from "node:fs";
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
import { PeerClient } from "./adapters/peer-client.ts";
import { decodeMessages } from "./adapters/peer-codec.ts";
import { HttpPeerSender } from "./adapters/peer-sender.ts";
import { RaftCommandLog } from "./adapters/raft-command-log.ts";
import { systemClock } from "./adapters/system-clock.ts";
import type { PeerEndpoint } from "./api/context.ts";
import { derivePeerKey, PeerVerifier } from "./api/peer-auth.ts";
import { ShoalError } from "./core/errors.ts";
import { newId, newToken } from "./core/ids.ts";
import { SeededRandom } from "./raft/seeded-random.ts";
import { commandSchema } from "./state/commands.ts";
import type { ApplyResult } from "./state/machine.ts";

export interface FleetOptions {
  nodeId: string;
  dataDir: string;
  /** The join token given on the command line, if any. */
  token?: string | undefined;
  /** Members to ask when joining (`host:port`). */
  join: readonly string[];
  /** What this node registers as: its name, address and port, labels and facts. */
  registration: Omit<RegisterBody, "nodeId">;
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

interface JoinAnswer {
  leader: string;
  members: { id: string; address: string; port: number }[];
}

export interface Fleet {
  log: RaftCommandLog;
  token: JoinToken;
  peer: PeerEndpoint;
  /** Whether this node created the cluster on this start (it must write cluster.init). */
  bootstrapped: boolean;
  close(): void;
}

/** Addresses learnt before the store knows a member (while joining), per node. */
type SeededAddresses = Map<string, string>;

function resolver(log: () => RaftCommandLog | null, seeded: SeededAddresses) {
  return (memberId: string): string | null => {
    const node = log()?.view().nodeById(memberId);
    return node ? `http://${node.address}:${node.port}` : (seeded.get(memberId) ?? null);
  };
}

/** Picks the token: the one given, else the one kept, else a new cluster's. */
function chooseToken(options: FleetOptions): { token: JoinToken; fresh: boolean } {
  const kept = readJoinToken(options.dataDir);
  const given = options.token ? parseJoinToken(options.token) : null;
  if (kept && given && kept.clusterId !== given.clusterId) {
    throw new ShoalError(
      "E_CONFLICT",
      `this data dir belongs to cluster ${kept.clusterId}, the token to ${given.clusterId}`,
    );
  }
  const token = kept ?? given ?? formatJoinToken(newId(), newToken());
  if (!kept) writeSecret(joinTokenPath(options.dataDir), token.text);
  return { token, fresh: !kept && !given };
}

export async function openFleet(options: FleetOptions): Promise<Fleet> {
  const { token, fresh } = chooseToken(options);
  const hasLog = existsSync(join(options.dataDir, "raft.db"));
  const key = derivePeerKey(token.text);
  const client = new PeerClient(options.nodeId, key, systemClock);
  let log: RaftCommandLog | null = null;
  const seeded: SeededAddresses = new Map();
  const resolve = resolver(() => log, seeded);
  const sender = new HttpPeerSender({ nodeId: options.nodeId, key, clock: systemClock, resolve });
  const bootstrap = fresh && !hasLog ? { voters: [options.nodeId], learners: [] } : undefined;
  log = new RaftCommandLog({
    nodeId: options.nodeId,
    dataDir: options.dataDir,
    clock: systemClock,
    random: new SeededRandom(Number.parseInt(options.nodeId.slice(0, 8), 36)),
    sender,
    bootstrap,
    forward: async (leaderId, command) => {
      const base = resolve(leaderId);
      if (!base)
        return {
          ok: false,
          code: "E_NOT_LEADER",
          message: `leader ${leaderId} has no known address`,
        };
      return client.call<ApplyResult>(base, "propose", command);
    },
  });
  const opened = log;
  const peer = peerEndpoint(opened, key, options.nodeId, (leaderId, body) => {
    const base = resolve(leaderId);
    if (!base) throw new ShoalError("E_NOT_LEADER", `leader ${leaderId} has no known address`);
    return client.call<JoinAnswer>(base, "join", body);
  });
  opened.start();
  if (!bootstrap && !hasLog) {
    try {
      await joinThrough(options, client, seeded);
    } catch (error) {
      sender.close();
      opened.close();
      throw error;
    }
  }
  return {
    log: opened,
    token,
    peer,
    bootstrapped: bootstrap !== undefined,
    close: () => {
      sender.close();
      opened.close();
    },
  };
}

/** Asks each `--join` member in turn; the first that answers for the leader admits us. */
async function joinThrough(
  options: FleetOptions,
  client: PeerClient,
  seeded: SeededAddresses,
): Promise<void> {
  if (options.join.length === 0) {
    throw new ShoalError("E_VALIDATION", "joining needs a member to ask: give --join HOST:PORT");
  }
  const body: RegisterBody = { nodeId: options.nodeId, ...options.registration };
  let last: unknown = null;
  for (const address of options.join) {
    try {
      const answer = await client.call<JoinAnswer>(`http://${address}`, "join", body);
      for (const member of answer.members) {
        seeded.set(member.id, `http://${member.address}:${member.port}`);
      }
      // A leader that has not registered itself yet is at least where we asked (when it answered).
      if (!seeded.has(answer.leader)) seeded.set(answer.leader, `http://${address}`);
      return;
    } catch (error) {
      last = error;
    }
  }
  throw new ShoalError(
    "E_NOT_READY",
    `no member admitted this node: ${(last as Error)?.message ?? ""}`,
  );
}

type JoinForward = (leaderId: string, body: RegisterBody) => Promise<JoinAnswer>;

function peerEndpoint(
  log: RaftCommandLog,
  key: Buffer,
  nodeId: string,
  forwardJoin: JoinForward,
): PeerEndpoint {
  const verifier = new PeerVerifier(key);
  return {
    verifier,
    async handle(kind, body) {
      if (kind === "raft") {
        log.receive(decodeMessages(body));
        return { ok: true };
      }
      if (kind === "propose") return log.proposeHere(commandSchema.parse(body));
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

// Admitting a joiner: any member checks the joiner's proof of the join secret and passes it on
// to the leader (one hop); the leader registers the newcomer, adds it as a learner, and answers
// with its certificate, the members, the CA's key and the cluster key (any member may lead
// later, and the leader signs).
import { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { MemberLog } from "./ports.ts";

export const registerSchema = z.strictObject({
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
  hostPaths: z
    .strictObject({
      allowed: z.array(z.string().max(4096)).max(limits.hostPathsPerNodeMax),
      denied: z.array(z.string().max(4096)).max(limits.hostPathsPerNodeMax),
    })
    .optional(),
});

/** What a node registers as: its name, address and port, labels and facts. */
export type Registration = Omit<z.infer<typeof registerSchema>, "nodeId">;

/** What a joiner sends: its facts, its certificate request and a proof of the join secret. */
export const joinRequestSchema = registerSchema.extend({
  csrPem: z.string().max(limits.pemBytesMax),
  proof: z.string().max(128),
});
export type JoinRequest = z.infer<typeof joinRequestSchema>;

export const joinAnswerSchema = z.strictObject({
  leader: z.string().max(64),
  members: z
    .array(
      z.strictObject({ id: z.string().max(64), address: z.string().max(255), port: z.number() }),
    )
    .max(limits.joinMembersMax),
  certPem: z.string().max(limits.pemBytesMax),
  caKeyPem: z.string().max(limits.pemBytesMax),
  /** The cluster key (base64): it opens the secrets the store keeps sealed. */
  clusterKey: z.string().max(128),
});
export type JoinAnswer = z.infer<typeof joinAnswerSchema>;

/** What admitting takes of the world: the secret and its proof, the CA, the leader's address. */
export interface AdmissionPorts {
  log: Pick<MemberLog, "status" | "view" | "proposeHere" | "changeMembership">;
  /** The join secret joiners must prove now (a rotation changes it). */
  joinSecret(): string;
  proofMatches(secret: string, nodeId: string, csrPem: string, proof: string): boolean;
  /** Passes a joiner on to the leader. */
  forward(leaderId: string, request: JoinRequest): Promise<JoinAnswer>;
  /** Signs `nodeId`'s request with the CA key this member holds. */
  sign(
    nodeId: string,
    csrPem: string,
    names: { address: string; name: string },
  ): Promise<{ certPem: string; caKeyPem: string }>;
  /** The digest of the key a certificate request carries (its registration pins it). */
  keyDigest(csrPem: string): string;
  /** The cluster key, base64. */
  clusterKey(): string;
  /** Wall-clock time for commands. */
  now(): number;
}

/** Checks the proof here (and again at the leader), then admits or passes the joiner on. */
export async function admitJoiner(ports: AdmissionPorts, body: unknown): Promise<JoinAnswer> {
  const request = joinRequestSchema.parse(body);
  const { nodeId, csrPem, proof } = request;
  if (!ports.proofMatches(ports.joinSecret(), nodeId, csrPem, proof)) {
    throw new ShoalError(
      "E_UNAUTHORIZED",
      "the join proof does not match this cluster's join secret (a different or rotated token?)",
    );
  }
  const { role, leader } = ports.log.status();
  // A member that is not the leader passes the join on, one hop.
  if (role !== "leader" && leader) return ports.forward(leader, request);
  return admit(ports, request);
}

/** The leader's part: register, add as a learner, sign; refused for a node that was removed. */
async function admit(ports: AdmissionPorts, body: JoinRequest): Promise<JoinAnswer> {
  const { log } = ports;
  const { role, leader } = log.status();
  if (role !== "leader")
    throw new ShoalError("E_NOT_LEADER", `ask the leader (${leader || "unknown"})`);
  const { nodeId, csrPem, proof: _proof, ...facts } = body;
  if (log.view().nodeById(nodeId)?.status === "left") {
    throw new ShoalError(
      "E_UNAUTHORIZED",
      `node ${nodeId} was removed from the cluster; to bring the machine back, move its data dir aside and join it as a new node`,
    );
  }
  // Signed first: a request that does not name its node changes nothing stored.
  const { certPem, caKeyPem } = await ports.sign(nodeId, csrPem, facts);
  const registered = await log.proposeHere({
    type: "node.register",
    at: ports.now(),
    id: nodeId,
    ...facts,
    keyDigest: ports.keyDigest(csrPem),
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
  return { leader: log.status().id, members, certPem, caKeyPem, clusterKey: ports.clusterKey() };
}

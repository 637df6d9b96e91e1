// The cluster's status as the API reads it: reads at a consistency level, each node's role, the
// machine use the leader heard of, and the replication status gathered from the members.
import type { Consistency, FleetStatus, HostUsage, MemberStatus } from "../core/types.ts";
import type { MemberLog } from "./ports.ts";

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

export type StatusLog = Pick<
  MemberLog,
  "status" | "view" | "followers" | "leaseRemainingMs" | "snapshotIndex" | "readAt"
>;

export interface StatusSources {
  log: StatusLog;
  nodeId: string;
  /** Asks another member for its report; null when it does not answer in time. */
  ask(member: string): Promise<MemberReport | null>;
  /** The usage another node last reported with its heartbeat to this node. */
  usageOf(nodeId: string): HostUsage | null;
  /** This node's own machine use, measured now. */
  ownUsage(): HostUsage;
}

export function memberReport(log: StatusLog, nodeId: string): MemberReport {
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

/** The API's access to the replicated store (its `FleetAccess` port). */
export function clusterAccess(sources: StatusSources) {
  const { log, nodeId } = sources;
  return {
    readAt: (consistency: Consistency) => log.readAt(consistency),
    roleOf(id: string): "voter" | "learner" | null {
      const { voters, learners } = log.status().membership;
      if (voters.includes(id)) return "voter";
      return learners.includes(id) ? "learner" : null;
    },
    status: () => clusterStatus(sources),
    // Heartbeats go to the leader: only its figures are current, and its own are measured now.
    usageOf(id: string): HostUsage | null {
      if (log.status().role !== "leader") return null;
      return id === nodeId ? sources.ownUsage() : sources.usageOf(id);
    },
  };
}

function reportOf(sources: StatusSources, member: string): Promise<MemberReport | null> {
  if (member === sources.nodeId) return Promise.resolve(memberReport(sources.log, member));
  return sources.ask(member);
}

/** The leader's word on term, lease and matches; every member's own word on what it applied. */
async function clusterStatus(sources: StatusSources): Promise<FleetStatus> {
  const local = sources.log.status();
  const { voters, learners } = local.membership;
  const members = [...voters, ...learners];
  const reports = new Map(
    await Promise.all(
      members.map(async (member) => [member, await reportOf(sources, member)] as const),
    ),
  );
  const leaderId = local.leader || null;
  // A leader outside the configuration (stepping down) was not asked above.
  const leader = leaderId
    ? reports.has(leaderId)
      ? (reports.get(leaderId) ?? null)
      : await reportOf(sources, leaderId)
    : null;
  const matches = new Map(leader?.followers.map((f) => [f.id, f.match]) ?? []);
  const status = (id: string, role: MemberStatus["role"]): MemberStatus => ({
    id,
    role,
    match: id === leaderId ? (leader?.commitIndex ?? null) : (matches.get(id) ?? null),
    appliedIndex: reports.get(id)?.appliedIndex ?? null,
  });
  return {
    leader: leaderId,
    term: leader?.term ?? local.term,
    leaseHeld: (leader?.leaseRemainingMs ?? 0) > 0,
    leaseRemainingMs: leader?.leaseRemainingMs ?? 0,
    voters: [...voters],
    learners: [...learners],
    members: [
      ...voters.map((id) => status(id, "voter")),
      ...learners.map((id) => status(id, "learner")),
    ],
    snapshotIndex: sources.log.snapshotIndex(),
  };
}

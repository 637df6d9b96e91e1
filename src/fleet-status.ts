// What the API asks of a fleet node's replicated store: reads at a consistency level, each
// node's role, and the cluster's replication status, which it gathers from the members.
import type { ConsistencyLevel } from "./adapters/raft-command-log.ts";
import type { FleetAccess, FleetStatus, MemberStatus } from "./api/context.ts";
import { limits } from "./core/limits.ts";
import { type Fleet, type MemberReport, memberReport } from "./fleet.ts";
import { hostUsage } from "./host-usage.ts";

export function fleetAccess(fleet: Fleet, nodeId: string): FleetAccess {
  return {
    readAt: (consistency: ConsistencyLevel) => fleet.log.readAt(consistency),
    roleOf(id) {
      const { voters, learners } = fleet.log.status().membership;
      if (voters.includes(id)) return "voter";
      return learners.includes(id) ? "learner" : null;
    },
    status: () => fleetStatus(fleet, nodeId),
    // Heartbeats go to the leader: only its figures are current, and its own are measured now.
    usageOf(id) {
      if (fleet.log.status().role !== "leader") return null;
      return id === nodeId ? hostUsage(Date.now()) : fleet.usageOf(id);
    },
  };
}

/** Asks a member for its report; null when it does not answer in time. */
async function reportOf(
  fleet: Fleet,
  nodeId: string,
  member: string,
): Promise<MemberReport | null> {
  if (member === nodeId) return memberReport(fleet.log, nodeId);
  const base = fleet.resolve(member);
  if (!base) return null;
  try {
    return await fleet.client.call<MemberReport>(
      member,
      base,
      "status",
      {},
      limits.memberStatusTimeoutMs,
    );
  } catch {
    return null;
  }
}

/** The leader's word on term, lease and matches; every member's own word on what it applied. */
async function fleetStatus(fleet: Fleet, nodeId: string): Promise<FleetStatus> {
  const local = fleet.log.status();
  const { voters, learners } = local.membership;
  const members = [...voters, ...learners];
  const reports = new Map(
    await Promise.all(
      members.map(async (member) => [member, await reportOf(fleet, nodeId, member)] as const),
    ),
  );
  const leaderId = local.leader || null;
  // A leader outside the configuration (stepping down) was not asked above.
  const leader = leaderId
    ? reports.has(leaderId)
      ? (reports.get(leaderId) ?? null)
      : await reportOf(fleet, nodeId, leaderId)
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
    snapshotIndex: fleet.log.snapshotIndex(),
  };
}

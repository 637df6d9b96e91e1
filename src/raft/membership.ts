// Membership of a cluster: voters and learners, the single-server changes between them, and
// the codec of membership entries. An undecodable membership entry is a bug and crashes.
import { AssertionError, assert } from "../core/assert.ts";
import type { Result } from "../core/errors.ts";
import { fail, ok } from "../core/errors.ts";
import { raftLimits } from "./raft-limits.ts";
import type { MemberId, Membership, MembershipChange } from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function isVoter(membership: Membership, member: MemberId): boolean {
  return membership.voters.includes(member);
}

export function isMember(membership: Membership, member: MemberId): boolean {
  return membership.voters.includes(member) || membership.learners.includes(member);
}

export function allMembers(membership: Membership): MemberId[] {
  return [...membership.voters, ...membership.learners];
}

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

export function assertMembershipValid(membership: Membership): void {
  const members = allMembers(membership);
  assert(new Set(members).size === members.length, "a member is listed twice");
  assert(
    members.every((member) => member.length > 0),
    "a member id is empty",
  );
  assert(members.length <= raftLimits.membersMax, "too many members");
  assert(membership.voters.length <= raftLimits.votersMax, "too many voters");
}

/** Applies one single-server change; an impossible change is an expected failure. */
export function applyMembershipChange(
  membership: Membership,
  change: MembershipChange,
): Result<Membership> {
  const { member } = change;
  const voters = membership.voters.filter((id) => id !== member);
  const learners = membership.learners.filter((id) => id !== member);
  switch (change.type) {
    case "addLearner":
      if (isMember(membership, member)) return fail("E_CONFLICT", `${member} is already a member`);
      if (allMembers(membership).length >= raftLimits.membersMax) {
        return fail("E_VALIDATION", "the cluster has as many members as it may");
      }
      return ok({ voters, learners: [...learners, member] });
    case "promote":
      if (!membership.learners.includes(member)) {
        return fail("E_CONFLICT", `${member} is not a learner`);
      }
      if (voters.length >= raftLimits.votersMax) return fail("E_VALIDATION", "too many voters");
      return ok({ voters: [...voters, member], learners });
    case "demote":
      if (!isVoter(membership, member)) return fail("E_CONFLICT", `${member} is not a voter`);
      if (voters.length === 0) return fail("E_VALIDATION", "the last voter cannot be demoted");
      return ok({ voters, learners: [...learners, member] });
    case "remove":
      if (!isMember(membership, member)) return fail("E_NOT_FOUND", `${member} is not a member`);
      if (voters.length === 0) return fail("E_VALIDATION", "the last voter cannot be removed");
      return ok({ voters, learners });
  }
}

export function encodeMembership(membership: Membership): Uint8Array {
  return encoder.encode(
    JSON.stringify({ voters: membership.voters, learners: membership.learners }),
  );
}

export function decodeMembership(data: Uint8Array): Membership {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new AssertionError(`undecodable membership entry: ${String(error)}`);
  }
  assert(typeof value === "object" && value !== null, "membership entry is not an object");
  const { voters, learners } = value as { voters?: unknown; learners?: unknown };
  assert(isIdList(voters) && isIdList(learners), "membership entry has no member lists");
  const membership = { voters, learners };
  assertMembershipValid(membership);
  return membership;
}

function isIdList(value: unknown): value is MemberId[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

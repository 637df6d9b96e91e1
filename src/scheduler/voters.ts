// Which single membership change the leader makes next so that 1, 3 or 5 voters, spread over
// `zone` labels, carry the cluster: promote healthy learners, replace long-dead voters, trim extras.
import { assert } from "../core/assert.ts";
import type { NodeInfo } from "../core/types.ts";

// The scheduler may not import raft, so these mirror raft's Membership and MembershipChange
// structurally; a value of one is a value of the other.
export interface Membership {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

export type MembershipChange =
  | { readonly type: "addLearner"; readonly member: string }
  | { readonly type: "promote"; readonly member: string }
  | { readonly type: "demote"; readonly member: string }
  | { readonly type: "remove"; readonly member: string };

export interface VoterPlanInput {
  readonly membership: Membership;
  /** The leader asking; it counts as reachable, caught up and heard from now. */
  readonly leader: string;
  /** Members that acknowledged the leader recently. */
  readonly reachable: ReadonlySet<string>;
  /** Members whose match index is close to the leader's last index. */
  readonly caughtUp: ReadonlySet<string>;
  /** Each member's `zone` label; a member without one is in the zone "". */
  readonly zones: ReadonlyMap<string, string>;
  /**
   * When the leader last heard from each member. A member missing here counts as heard from
   * now: a new leader seeds this map at its election, granting every member a fresh grace period.
   */
  readonly lastHeardAt: ReadonlyMap<string, number>;
  readonly now: number;
  /** A voter silent for longer than this is replaced (or trimmed) as though gone. */
  readonly voterReplaceAfterMs: number;
}

/**
 * The most voters this policy keeps at rest. Five tolerate two failures; more only slow commits
 * on a small fleet (raft itself allows up to votersMax, so a larger set is trimmed down).
 */
export const restingVotersMax = 5;

/** The voter count for a fleet of `memberCount` live members: never even at rest. */
export function targetVoterCount(memberCount: number): 1 | 3 | 5 {
  if (memberCount >= 5) return 5;
  if (memberCount >= 3) return 3;
  return 1;
}

/** Each node's zone from its `zone` label, keyed by node id (which is its member id). */
export function zonesOf(nodes: readonly Pick<NodeInfo, "id" | "labels">[]): Map<string, string> {
  return new Map(nodes.map((node) => [node.id, node.labels.zone ?? ""]));
}

/**
 * The one single-server change to propose next, or null when the voters are where they should
 * be or the leader cannot be sure. Raft allows one change at a time: the caller proposes it,
 * waits for it to commit, and asks again.
 *
 * Members are never removed here: a crashed node stays a member (a learner once replaced) until
 * someone runs `shoal node rm` or the node leaves on purpose, as Consul and rqlite do by default;
 * a long outage is not proof that a Pi is gone for good.
 */
export function nextMembershipChange(input: VoterPlanInput): MembershipChange | null {
  const { voters } = input.membership;
  // A leader outside the voters is stepping down; one without a reachable majority may be
  // deposed already and its view is stale. Neither changes anything.
  if (!voters.includes(input.leader)) return null;
  if (reachableCount(input, voters) < quorumSize(voters.length)) return null;
  const desired = desiredVoters(input);
  const additions = desired.filter((member) => !voters.includes(member));
  const removals = voters
    .filter((member) => !desired.includes(member))
    .sort((a, b) => compareLeastUseful(input, a, b));
  const change = chooseStep(voters.length, additions[0], removals[0]);
  if (change !== null) assertSafe(input, change);
  return change;
}

/**
 * Promote first when that keeps at most five voters, else demote first. Adding the replacement
 * before dropping the dead voter means that a leader crashing between the two steps leaves one
 * more copy of the committed log in the voters, never one fewer; both orders need every live
 * voter during the transient (4 voters with one dead need 3 of 3 alive, 2 voters need 2 of 2),
 * so neither is less available. At five, demoting first avoids a sixth voter that would only
 * slow commits. A demotion itself commits under the old quorum, which the gate above checked.
 */
function chooseStep(
  voterCount: number,
  addition: string | undefined,
  removal: string | undefined,
): MembershipChange | null {
  if (addition !== undefined && voterCount < restingVotersMax) {
    return { type: "promote", member: addition };
  }
  if (removal !== undefined) return { type: "demote", member: removal };
  return null;
}

/**
 * The voter set to converge to: the leader, then the voters that are not long-dead (the most
 * useful first, when there are too many), then learners ready to vote, spread over zones. Its
 * size is odd and never more than the ready members can fill, or the steps would stop at an
 * even count and flip between promoting and demoting.
 */
function desiredVoters(input: VoterPlanInput): string[] {
  const { voters, learners } = input.membership;
  const keepers = voters.filter((member) => !isLongDead(input, member));
  const candidates = learners.filter((member) => isReadyToVote(input, member));
  const liveMembers = [...voters, ...learners].filter((member) => !isLongDead(input, member));
  const size = Math.min(
    targetVoterCount(liveMembers.length),
    targetVoterCount(keepers.length + candidates.length),
  );
  const chosen = [input.leader];
  const otherKeepers = keepers.filter((member) => member !== input.leader);
  pickSpread(input, chosen, otherKeepers, Math.min(size, keepers.length));
  pickSpread(input, chosen, candidates, size);
  return chosen;
}

/** Moves the best of `pool` into `chosen`, one at a time, until `chosen` holds `size`. */
function pickSpread(
  input: VoterPlanInput,
  chosen: string[],
  pool: readonly string[],
  size: number,
): void {
  const remaining = [...pool];
  while (chosen.length < size && remaining.length > 0) {
    const zonesTaken = new Set(chosen.map((member) => zoneOf(input, member)));
    remaining.sort((a, b) => compareMostUseful(input, zonesTaken, a, b));
    const best = remaining.shift();
    if (best !== undefined) chosen.push(best);
  }
}

/**
 * Reachable before silent, and among the silent the one heard from last (it is likelier back
 * soon); then a zone not yet holding a voter; then the one heard from last; then the smallest id.
 */
function compareMostUseful(
  input: VoterPlanInput,
  zonesTaken: ReadonlySet<string>,
  a: string,
  b: string,
): number {
  const silentA = isReachable(input, a) ? 0 : 1;
  const silentB = isReachable(input, b) ? 0 : 1;
  if (silentA !== silentB) return silentA - silentB;
  if (silentA === 1 && heardAt(input, a) !== heardAt(input, b)) {
    return heardAt(input, b) - heardAt(input, a);
  }
  const takenA = zonesTaken.has(zoneOf(input, a)) ? 1 : 0;
  const takenB = zonesTaken.has(zoneOf(input, b)) ? 1 : 0;
  if (takenA !== takenB) return takenA - takenB;
  if (heardAt(input, a) !== heardAt(input, b)) return heardAt(input, b) - heardAt(input, a);
  return compareIds(a, b);
}

/** Silent voters go first, the one down longest first, so a demotion never costs the quorum. */
function compareLeastUseful(input: VoterPlanInput, a: string, b: string): number {
  const reachableA = isReachable(input, a) ? 1 : 0;
  const reachableB = isReachable(input, b) ? 1 : 0;
  if (reachableA !== reachableB) return reachableA - reachableB;
  if (heardAt(input, a) !== heardAt(input, b)) return heardAt(input, a) - heardAt(input, b);
  return compareIds(a, b);
}

/** What must hold of any step: the leader keeps its vote and a reachable majority remains. */
function assertSafe(input: VoterPlanInput, change: MembershipChange): void {
  const { voters } = input.membership;
  if (change.type === "promote") {
    assert(isReadyToVote(input, change.member), "promoting a learner that is not ready");
    return;
  }
  assert(change.type === "demote", "the voter plan only promotes and demotes");
  assert(change.member !== input.leader, "the leader demotes itself");
  const after = voters.filter((member) => member !== change.member);
  assert(reachableCount(input, after) >= quorumSize(after.length), "a demotion loses the quorum");
}

function isReadyToVote(input: VoterPlanInput, member: string): boolean {
  return isReachable(input, member) && (member === input.leader || input.caughtUp.has(member));
}

function isReachable(input: VoterPlanInput, member: string): boolean {
  return member === input.leader || input.reachable.has(member);
}

/** Silent for longer than voterReplaceAfterMs; a reachable member is never long-dead. */
function isLongDead(input: VoterPlanInput, member: string): boolean {
  if (isReachable(input, member)) return false;
  return input.now - heardAt(input, member) > input.voterReplaceAfterMs;
}

function heardAt(input: VoterPlanInput, member: string): number {
  if (member === input.leader) return input.now;
  return input.lastHeardAt.get(member) ?? input.now;
}

function zoneOf(input: VoterPlanInput, member: string): string {
  return input.zones.get(member) ?? "";
}

function reachableCount(input: VoterPlanInput, voters: readonly string[]): number {
  return voters.filter((member) => isReachable(input, member)).length;
}

function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** Code-unit order, the same on every machine (localeCompare is not). */
function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

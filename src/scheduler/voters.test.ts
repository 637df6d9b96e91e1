// The voter plan: promote ready learners up to 1, 3 or 5 voters spread over zones, replace
// long-dead voters, trim extras, never touch the leader, and do nothing without a majority.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../testing/prng.ts";
import { node } from "./test-harness.ts";
import type { Membership, MembershipChange, VoterPlanInput } from "./voters.ts";
import { nextMembershipChange, targetVoterCount, zonesOf } from "./voters.ts";

const now = 1_000_000;
const voterReplaceAfterMs = 60_000;
const longAgo = now - voterReplaceAfterMs - 1;
const lately = now - voterReplaceAfterMs + 1000;

interface Fleet {
  voters: string[];
  learners?: string[];
  /** Members not reachable; every other member is reachable. */
  silent?: Record<string, number>;
  /** Members not caught up; every other member is. */
  lagging?: string[];
  zones?: Record<string, string>;
  leader?: string;
}

/** A plan input where everyone is reachable, caught up and heard from now unless told. */
function fleet(spec: Fleet): VoterPlanInput {
  const learners = spec.learners ?? [];
  const members = [...spec.voters, ...learners];
  const silent = spec.silent ?? {};
  const lagging = new Set(spec.lagging ?? []);
  return {
    membership: { voters: spec.voters, learners },
    leader: spec.leader ?? spec.voters[0] ?? "",
    reachable: new Set(members.filter((member) => !(member in silent))),
    caughtUp: new Set(members.filter((member) => !lagging.has(member))),
    zones: new Map(Object.entries(spec.zones ?? {})),
    lastHeardAt: new Map(members.map((member) => [member, silent[member] ?? now])),
    now,
    voterReplaceAfterMs,
  };
}

function apply(membership: Membership, change: MembershipChange): Membership {
  const voters = membership.voters.filter((id) => id !== change.member);
  const learners = membership.learners.filter((id) => id !== change.member);
  if (change.type === "promote") {
    assert.ok(membership.learners.includes(change.member), `${change.member} is not a learner`);
    return { voters: [...voters, change.member], learners };
  }
  assert.equal(change.type, "demote", "the plan only promotes and demotes");
  assert.ok(membership.voters.includes(change.member), `${change.member} is not a voter`);
  return { voters, learners: [...learners, change.member] };
}

/**
 * Applies each change until the plan rests; returns the steps and the resting membership. Ten
 * steps bound the worst case: seven voters of which six are long dead, and four learners to
 * promote (one change per voter leaving or joining the target set).
 */
function settle(input: VoterPlanInput, stepsMax = 10) {
  const steps: MembershipChange[] = [];
  let current = input;
  for (let step = 0; step <= stepsMax; step += 1) {
    const change = nextMembershipChange(current);
    if (change === null) return { steps, membership: current.membership };
    steps.push(change);
    current = { ...current, membership: apply(current.membership, change) };
  }
  assert.fail(`no rest within ${stepsMax} steps: ${JSON.stringify(steps)}`);
}

const promote = (member: string): MembershipChange => ({ type: "promote", member });
const demote = (member: string): MembershipChange => ({ type: "demote", member });

describe("scheduler: voter plan", () => {
  it("targets 1, 3 or 5 voters", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 64].map(targetVoterCount), [1, 1, 1, 3, 3, 5, 5, 5]);
  });

  it("reads zones from node labels, none being the zone ''", () => {
    const zones = zonesOf([node("a", { labels: { zone: "attic" } }), node("b")]);
    assert.deepEqual(
      [...zones],
      [
        ["a", "attic"],
        ["b", ""],
      ],
    );
  });

  const cases: { name: string; spec: Fleet; steps: MembershipChange[]; voters: string[] }[] = [
    { name: "1 node: nothing", spec: { voters: ["a"] }, steps: [], voters: ["a"] },
    {
      name: "2 nodes: 1 voter stays",
      spec: { voters: ["a"], learners: ["b"] },
      steps: [],
      voters: ["a"],
    },
    {
      name: "3 nodes with 1 voter: promote one, then the next",
      spec: { voters: ["a"], learners: ["b", "c"] },
      steps: [promote("b"), promote("c")],
      voters: ["a", "b", "c"],
    },
    {
      name: "zone spread: the learner of a new zone first",
      spec: {
        voters: ["a"],
        learners: ["b", "c", "d"],
        zones: { a: "attic", b: "attic", c: "attic", d: "cellar" },
      },
      steps: [promote("d"), promote("b")],
      voters: ["a", "d", "b"],
    },
    {
      name: "a learner not caught up is not promoted",
      spec: { voters: ["a"], learners: ["b", "c", "d"], lagging: ["b"] },
      steps: [promote("c"), promote("d")],
      voters: ["a", "c", "d"],
    },
    {
      name: "one ready learner of two: no promotion to an even count",
      spec: { voters: ["a"], learners: ["b", "c"], lagging: ["c"] },
      steps: [],
      voters: ["a"],
    },
    {
      name: "a dead voter beyond the window: promote the replacement, then demote it",
      spec: { voters: ["a", "b", "c"], learners: ["d"], silent: { c: longAgo } },
      steps: [promote("d"), demote("c")],
      voters: ["a", "b", "d"],
    },
    {
      name: "a dead voter within the window is kept",
      spec: { voters: ["a", "b", "c"], learners: ["d"], silent: { c: lately } },
      steps: [],
      voters: ["a", "b", "c"],
    },
    {
      name: "five voters, one dead: demote first, then promote",
      spec: {
        voters: ["a", "b", "c", "d", "e"],
        learners: ["f"],
        silent: { e: longAgo },
      },
      steps: [demote("e"), promote("f")],
      voters: ["a", "b", "c", "d", "f"],
    },
    {
      name: "3 voters, one dead and no replacement: down to 1",
      spec: { voters: ["a", "b", "c"], silent: { c: longAgo } },
      steps: [demote("c"), demote("b")],
      voters: ["a"],
    },
    {
      name: "the leader without a reachable majority changes nothing",
      spec: {
        voters: ["a", "b", "c"],
        learners: ["d", "e"],
        silent: { b: longAgo, c: longAgo },
      },
      steps: [],
      voters: ["a", "b", "c"],
    },
    {
      name: "6 nodes: 5 voters",
      spec: { voters: ["a"], learners: ["b", "c", "d", "e", "f"] },
      steps: [promote("b"), promote("c"), promote("d"), promote("e")],
      voters: ["a", "b", "c", "d", "e"],
    },
    {
      name: "4 voters: demote to 3, the duplicated zone",
      spec: {
        voters: ["a", "b", "c", "d"],
        zones: { a: "x", b: "x", c: "y", d: "z" },
      },
      steps: [demote("b")],
      voters: ["a", "c", "d"],
    },
    {
      name: "4 voters: demote the silent one first, even within the window",
      spec: { voters: ["a", "b", "c", "d"], silent: { b: lately } },
      steps: [demote("b")],
      voters: ["a", "c", "d"],
    },
  ];

  for (const { name, spec, steps, voters } of cases) {
    it(name, () => {
      const rest = settle(fleet(spec));
      assert.deepEqual(rest.steps, steps);
      assert.deepEqual(rest.membership.voters, voters);
    });
  }

  it("never demotes the leader, even when it is the dead-looking one in the map", () => {
    const input = fleet({ voters: ["c", "a", "b"], learners: ["d"], leader: "c" });
    const stale = { ...input, lastHeardAt: new Map([...input.lastHeardAt, ["c", 0]]) };
    assert.equal(nextMembershipChange(stale), null);
    const four = fleet({
      voters: ["z", "a", "b", "c"],
      leader: "z",
      zones: { z: "x", a: "x", b: "y", c: "w" },
    });
    assert.deepEqual(nextMembershipChange(four), demote("a"));
  });

  it("does nothing when the leader is not a voter", () => {
    assert.equal(
      nextMembershipChange(fleet({ voters: ["a"], learners: ["b", "c"], leader: "b" })),
      null,
    );
  });

  it("is deterministic: the same input gives the same change", () => {
    const spec: Fleet = {
      voters: ["a", "b", "c"],
      learners: ["e", "d", "f"],
      silent: { b: longAgo },
      zones: { a: "x", c: "y", d: "y", e: "y", f: "z" },
    };
    const first = nextMembershipChange(fleet(spec));
    assert.deepEqual(first, promote("f"));
    for (let round = 0; round < 10; round += 1) {
      assert.deepEqual(nextMembershipChange(fleet(spec)), first);
    }
  });

  it("rests at 1, 3 or 5 voters within a few steps for random fleets", () => {
    let rested = 0;
    for (let seed = 1; seed <= 2000; seed += 1) {
      const input = randomFleet(seed);
      const { voters } = input.membership;
      const majority = Math.floor(voters.length / 2) + 1;
      const reachableVoters = voters.filter((id) => id === input.leader || input.reachable.has(id));
      if (reachableVoters.length < majority) {
        assert.equal(nextMembershipChange(input), null, `seed ${seed}`);
        continue;
      }
      const rest = settle(input);
      const restingVoters = rest.membership.voters;
      assert.ok([1, 3, 5].includes(restingVoters.length), `seed ${seed}: ${restingVoters}`);
      assert.ok(restingVoters.includes(input.leader), `seed ${seed}: the leader lost its vote`);
      const members = [...voters, ...input.membership.learners].sort();
      assert.deepEqual([...restingVoters, ...rest.membership.learners].sort(), members);
      rested += 1;
    }
    assert.ok(rested > 1000, `only ${rested} fleets had a majority`);
  });
});

/** A fleet of 1 to 12 members, some silent (some long), some lagging, over a few zones. */
function randomFleet(seed: number): VoterPlanInput {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const members = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, index) => `n${index}`);
  const voterCount = 1 + Math.floor(random() * Math.min(members.length, 7));
  const leader = pick(members.slice(0, voterCount));
  const silent = members.filter((id) => id !== leader && random() < 0.25);
  return {
    membership: { voters: members.slice(0, voterCount), learners: members.slice(voterCount) },
    leader,
    reachable: new Set(members.filter((id) => !silent.includes(id))),
    caughtUp: new Set(members.filter(() => random() < 0.8)),
    zones: new Map(members.map((id) => [id, pick(["", "x", "y", "z"])])),
    lastHeardAt: new Map(
      members.map((id) => [id, silent.includes(id) ? now - Math.floor(random() * 120_000) : now]),
    ),
    now,
    voterReplaceAfterMs,
  };
}

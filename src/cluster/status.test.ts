import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { HostUsage } from "../core/types.ts";
import { register } from "../state/test-harness.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { ManualTimers } from "../testing/manual-timers.ts";
import { MemberLogTwin } from "../testing/member-log-twin.ts";
import { clusterAccess, type MemberReport } from "./status.ts";

const logs: MemberLogTwin[] = [];
afterEach(() => {
  for (const log of logs.splice(0)) log.close();
});

/** Member "a"'s log with two entries applied (its commit and applied index are 2). */
function memberA(): MemberLogTwin {
  const log = new MemberLogTwin("a", new ManualTimers());
  logs.push(log);
  log.applyCommitted({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") });
  log.applyCommitted(register(2, { id: "a", name: "a" }));
  return log;
}

const progress = (id: string, match: number) => ({
  id,
  match,
  state: "replicate" as const,
  lastHeardMs: 0,
});

/** Another member's own word, as it answers a peer. */
function reportOf(id: string, fields: Partial<MemberReport>): MemberReport {
  const base = { role: "follower", term: 4, leader: "", commitIndex: 0, appliedIndex: 0 };
  return { id, ...base, leaseRemainingMs: 0, followers: [], ...fields };
}

const ownUsage: HostUsage = { load1: 0.5, memoryFreeMb: 100, at: 9 };
const heardUsage: HostUsage = { load1: 2, memoryFreeMb: 50, at: 8 };

/** The status sources over `log`; `answers` are the other members' reports (absent: silent). */
function access(log: MemberLogTwin, answers: Record<string, MemberReport>) {
  const asked: string[] = [];
  const api = clusterAccess({
    log,
    nodeId: "a",
    ask: (member) => {
      asked.push(member);
      return Promise.resolve(answers[member] ?? null);
    },
    usageOf: (id) => (id === "b" ? heardUsage : null),
    ownUsage: () => ownUsage,
  });
  return { api, asked };
}

describe("the cluster's status", () => {
  it("on the leader: its own term, lease and matches, and each member's own applied index", async () => {
    const log = memberA();
    log.membership = { voters: ["a", "b", "c"], learners: ["d"] };
    log.lead(2);
    log.followerList = [progress("b", 2), progress("c", 1), progress("d", 1)];
    const { api, asked } = access(log, {
      b: reportOf("b", { appliedIndex: 2 }),
      d: reportOf("d", { appliedIndex: 1 }),
    });
    assert.deepEqual(await api.status(), {
      leader: "a",
      term: 2,
      leaseHeld: true,
      leaseRemainingMs: log.leaseRemainingMs(),
      voters: ["a", "b", "c"],
      learners: ["d"],
      members: [
        { id: "a", role: "voter", match: 2, appliedIndex: 2 },
        { id: "b", role: "voter", match: 2, appliedIndex: 2 },
        // c did not answer: the leader still knows how far its log matches.
        { id: "c", role: "voter", match: 1, appliedIndex: null },
        { id: "d", role: "learner", match: 1, appliedIndex: 1 },
      ],
      snapshotIndex: 0,
    });
    assert.deepEqual(asked.sort(), ["b", "c", "d"], "the leader answers for itself");
  });

  it("on a follower: the leader's word on term, lease and matches", async () => {
    const log = memberA();
    log.membership = { voters: ["a", "b", "c"], learners: [] };
    log.loseLease("b");
    const leader = reportOf("b", {
      role: "leader",
      term: 4,
      leader: "b",
      commitIndex: 3,
      appliedIndex: 3,
      leaseRemainingMs: 300,
      followers: [
        { id: "a", match: 2 },
        { id: "c", match: 3 },
      ],
    });
    const { api } = access(log, { b: leader, c: reportOf("c", { appliedIndex: 3 }) });
    const status = await api.status();
    assert.equal(status.leader, "b");
    assert.equal(status.term, 4, "the leader's term, not this member's");
    assert.equal(status.leaseHeld, true);
    assert.equal(status.leaseRemainingMs, 300);
    assert.deepEqual(status.members, [
      { id: "a", role: "voter", match: 2, appliedIndex: 2 },
      { id: "b", role: "voter", match: 3, appliedIndex: 3 },
      { id: "c", role: "voter", match: 3, appliedIndex: 3 },
    ]);
  });

  it("asks a leader outside the configuration too, and shows no lease when no leader answers", async () => {
    const log = memberA();
    // x leads while it steps down, already taken out of the configuration.
    log.membership = { voters: ["a", "b"], learners: [] };
    log.loseLease("x");
    const x = reportOf("x", { role: "leader", term: 6, leaseRemainingMs: 50 });
    const answered = access(log, { x });
    assert.equal((await answered.api.status()).term, 6);
    assert.deepEqual(answered.asked, ["b", "x"]);
    const silent = await access(log, {}).api.status();
    assert.equal(silent.leaseHeld, false);
    assert.equal(silent.leaseRemainingMs, 0);
  });

  it("gives machine use only on the leader (its own measured now), and each member's role", () => {
    const log = memberA();
    log.membership = { voters: ["a", "b"], learners: ["c"] };
    const { api } = access(log, {});
    assert.equal(api.usageOf("b"), null, "a follower's figures are not current");
    log.lead(1);
    assert.deepEqual(api.usageOf("a"), ownUsage);
    assert.deepEqual(api.usageOf("b"), heardUsage);
    assert.equal(api.usageOf("c"), null);
    assert.deepEqual(
      ["a", "b", "c", "z"].map((id) => api.roleOf(id)),
      ["voter", "voter", "learner", null],
    );
  });
});

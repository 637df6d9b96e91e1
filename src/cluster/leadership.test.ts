import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { raftLimits } from "../raft/raft-limits.ts";
import { container, register } from "../state/test-harness.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { silentLogger as silent, twinMember } from "../testing/cluster-room.ts";
import { ManualTimers } from "../testing/manual-timers.ts";
import { MemberLogTwin } from "../testing/member-log-twin.ts";
import { Leadership } from "./leadership.ts";
import type { ClusterMember } from "./member.ts";

/** What only a lease holder proposes: each leader duty's own kind of work. */
const leaderWork = ["cluster.init", "plan.apply", "node.down", "node.up", "membership"];

interface Room {
  timers: ManualTimers;
  log: MemberLogTwin;
  member: ClusterMember;
}

const open: Room[] = [];
afterEach(() => {
  for (const room of open.splice(0)) {
    room.member.stop();
    room.log.close();
  }
});

/** A member "a" over the twin; `withCluster` applies a cluster row, nodes and a service first. */
function room(withCluster: boolean): Room {
  const timers = new ManualTimers();
  const log = new MemberLogTwin("a", timers);
  if (withCluster) {
    log.applyCommitted({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") });
    log.applyCommitted(register(2, { id: "a", name: "a" }));
    // b registers and is never heard again: a leader marks it down once its grace is over.
    log.applyCommitted(register(3, { id: "b", name: "b", address: "10.0.0.2" }));
    log.applyCommitted({
      type: "service.create",
      at: 4,
      name: "web",
      replicas: 1,
      containers: [container],
    });
  }
  const member = twinMember(log, timers);
  const made = { timers, log, member };
  open.push(made);
  member.start();
  member.startHeartbeats();
  return made;
}

/** The kinds of leader work that were asked for so far. */
function leaderWorkDone(log: MemberLogTwin, kinds: readonly string[]): string[] {
  return kinds.filter((kind) => log.recorded(kind).length > 0);
}

/** Followers a leader heard just now, caught up with its log. */
function caughtUp(ids: readonly string[], timers: ManualTimers) {
  const heard = timers.monotonic();
  return ids.map((id) => ({ id, match: 10, state: "replicate" as const, lastHeardMs: heard }));
}

describe("leadership: one door for every leader duty", () => {
  it("runs no leader duty on a follower, however long it waits", async () => {
    const { timers, log } = room(true);
    log.followerList = [];
    await timers.advance(limits.nodeDownAfterMs * 3);
    assert.deepEqual(leaderWorkDone(log, leaderWork), []);
    // The node's own duty runs everywhere: it registers.
    assert.ok(log.recorded("node.register").length > 0);
  });

  it("starts the cluster row's creation within one lease of gaining it", async () => {
    const { timers, log } = room(false);
    await timers.advance(1000);
    assert.equal(log.recorded("cluster.init").length, 0);
    log.lead(1);
    await timers.advance(raftLimits.leaseMs);
    assert.equal(log.recorded("cluster.init").length, 1);
    assert.ok(log.view().cluster(), "the cluster row is applied");
  });

  it("starts scheduling, voter keeping and liveness within one lease, and stops them within one tick of losing it", async () => {
    const { timers, log } = room(true);
    // c and e are caught-up, reachable learners: the voter keeper makes 3 voters of them.
    log.applyCommitted(register(6, { id: "c", name: "c", address: "10.0.0.3" }));
    log.applyCommitted(register(7, { id: "e", name: "e", address: "10.0.0.5" }));
    log.membership = { voters: ["a"], learners: ["c", "e"] };
    await timers.settle();
    // Registration and heartbeats run on every node; what the duties start comes on top.
    const everyNodesTimers = timers.pending;
    log.lead(1);
    log.followerList = caughtUp(["c", "e"], timers);
    await timers.advance(raftLimits.leaseMs);
    assert.ok(log.recorded("plan.apply").length > 0, "the scheduler placed web");
    assert.ok(log.recorded("membership").length > 0, "the voter keeper promoted a learner");
    assert.equal(log.view().nodeById("b")?.status, "ready");
    // The judge gives b a full grace from the start of the lease, then marks it down.
    await timers.advance(limits.nodeDownAfterMs + limits.livenessCheckMs * 2);
    assert.equal(log.view().nodeById("b")?.status, "down");

    log.loseLease();
    await timers.advance(limits.raftTickMs);
    assert.equal(timers.pending, everyNodesTimers, "every duty's timers are gone");
    const before = log.records.length;
    // Work for every duty: a new service to place, a learner to promote, a node to judge. The
    // member is still the leader, lease lost, and still hears its caught-up learners.
    log.applyCommitted({
      type: "service.create",
      at: 9,
      name: "api",
      replicas: 1,
      containers: [container],
    });
    log.membership = { voters: ["a"], learners: ["c", "e"] };
    log.followerList = caughtUp(["c", "e"], timers);
    log.applyCommitted(register(10, { id: "d", name: "d", address: "10.0.0.4" }));
    await timers.advance(limits.nodeDownAfterMs * 3);
    const after = log.records.slice(before).filter((r) => leaderWork.includes(r.what));
    assert.deepEqual(after, []);
    assert.ok(log.records.every((r) => !leaderWork.includes(r.what) || r.leading));
  });

  it("judges liveness from the lease's first check: a down node heard again is up within one check, a silent one down after exactly one grace", async () => {
    const { timers, log, member } = room(true);
    // d was marked down under an earlier leader, and is heard again before this lease begins.
    log.applyCommitted(register(6, { id: "d", name: "d", address: "10.0.0.4" }));
    const rowVersion = log.view().nodeById("d")?.rowVersion ?? 0;
    log.applyCommitted({ type: "node.down", at: 7, nodeId: "d", rowVersion, silentMs: 5000 });
    await timers.advance(1000);
    member.heard("d");
    const leadAt = timers.monotonic();
    log.lead(1);
    // The lease's notice arrives within the host's turn: the duties start at `leadAt`.
    await timers.settle();
    await timers.advance(limits.livenessCheckMs);
    assert.equal(log.view().nodeById("d")?.status, "ready", "d is up after the first check");
    const up = log.recorded("node.up")[0];
    assert.ok(up && up.at <= leadAt + limits.livenessCheckMs, `d up at ${up?.at}`);
    await timers.advance(limits.nodeDownAfterMs + limits.livenessCheckMs);
    // b, silent since before the lease, has a full grace from its start, and not a check more.
    const down = log.recorded("node.down")[0];
    const graceEnd = leadAt + limits.nodeDownAfterMs;
    assert.ok(down && down.at > graceEnd, `b down at ${down?.at}, not before ${graceEnd}`);
    assert.ok(down.at <= graceEnd + limits.livenessCheckMs, `b down at ${down.at}`);
    assert.equal(log.view().nodeById("b")?.status, "down");
  });

  it("establishes again on the next lease, once per term", async () => {
    const timers = new ManualTimers();
    const log = new MemberLogTwin("a", timers);
    const calls: string[] = [];
    const duty = {
      name: "probe",
      establish: (term: number) => calls.push(`establish ${term}`),
      revoke: () => calls.push("revoke"),
    };
    const leadership = new Leadership(log, [duty], silent);
    leadership.start();
    log.lead(1);
    log.lead(1);
    await timers.settle();
    log.loseLease();
    log.lead(2);
    await timers.settle();
    leadership.stop();
    assert.deepEqual(calls, ["establish 1", "revoke", "establish 2", "revoke"]);
    assert.equal(leadership.leading, false);
    log.close();
  });

  it("hears at once of a lease held before it started listening", async () => {
    const timers = new ManualTimers();
    const log = new MemberLogTwin("a", timers);
    log.lead(3);
    const terms: number[] = [];
    const leadership = new Leadership(
      log,
      [{ name: "probe", establish: (term) => terms.push(term), revoke: () => {} }],
      silent,
    );
    leadership.start();
    await timers.settle();
    assert.deepEqual(terms, [3]);
    assert.equal(leadership.leading, true);
    leadership.stop();
    log.close();
  });
});

// Unit tests of the Raft core: the paper's scenarios and the known bugs of other
// implementations, driven by hand through a tiny harness.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CoreHarness, harnessTiming } from "./core-harness.ts";
import { RaftCore } from "./raft-core.ts";
import { leaseMsFor, raftLimits } from "./raft-limits.ts";
import { SeededRandom } from "./seeded-random.ts";
import type { Entry, Message, RaftBugs } from "./types.ts";
import { noMember } from "./types.ts";

const encoder = new TextEncoder();
const leaseMs = leaseMsFor(harnessTiming.electionTimeoutMsMin, harnessTiming.clockDriftMax);

function threeMembers(seed = 1): CoreHarness {
  const harness = new CoreHarness(["a", "b", "c"], { seed });
  harness.campaign("a");
  assert.deepEqual(harness.leaders(), ["a"]);
  return harness;
}

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, kind: "command", data: encoder.encode(text) };
}

describe("election", () => {
  it("a single member elects itself and commits at once", () => {
    const harness = new CoreHarness(["a"]);
    harness.campaign("a");
    assert.equal(harness.core("a").status().role, "leader");
    assert.ok(harness.propose("a", "x").ok);
    harness.flush();
    assert.deepEqual(harness.appliedCommands("a"), ["x"]);
  });

  it("three members elect one leader whose no-op commits everywhere", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    for (const id of ["a", "b", "c"]) {
      const status = harness.core(id).status();
      assert.equal(status.term, 1);
      assert.equal(status.leader, "a");
      assert.equal(status.commitIndex, 1);
    }
  });

  it("elections happen by themselves on randomized timeouts", () => {
    const harness = new CoreHarness(["a", "b", "c", "d", "e"], { seed: 7 });
    harness.advanceTime(3000);
    assert.equal(harness.leaders().length, 1);
  });

  it("a vote compares the last term before the last index", () => {
    const core = new RaftCore({
      id: "b",
      state: {
        hardState: { term: 3, votedFor: noMember, commitIndex: 0 },
        snapshot: null,
        entries: [entry(1, 1), entry(2, 3)],
      },
      bootstrap: { voters: ["a", "b", "c"], learners: [] },
      nowMs: 0,
      random: new SeededRandom(1),
      timing: harnessTiming,
    });
    const longerOlder: Message = {
      type: "vote",
      from: "a",
      to: "b",
      term: 4,
      lastLogIndex: 9,
      lastLogTerm: 2,
      transfer: false,
    };
    core.step(longerOlder, 1000);
    const refused = core.ready();
    assert.deepEqual(
      refused.messages.map((message) => message.type === "voteResponse" && message.granted),
      [false],
    );
    core.advance(refused);
    core.step({ ...longerOlder, from: "c", lastLogIndex: 2, lastLogTerm: 3 }, 1000);
    const granted = core.ready();
    assert.equal(granted.hardState?.votedFor, "c");
    assert.ok(granted.messages.some((m) => m.type === "voteResponse" && m.granted));
  });

  it("a member that steps down keeps its vote for the term", () => {
    const harness = new CoreHarness(["a", "b", "c"]);
    harness.nowMs = 2000;
    harness.core("b").tick(harness.nowMs);
    // b runs pre-vote then vote for term 1; c grants, a never hears.
    harness.cutLinks.add("b>a");
    harness.deliverAll();
    assert.equal(harness.core("b").status().role, "leader");
    assert.equal(harness.core("c").status().votedFor, "b");
    // a now campaigns in term 1 too: c must refuse a second vote in that term.
    harness.nowMs = 2000;
    const vote: Message = {
      type: "vote",
      from: "a",
      to: "c",
      term: 1,
      lastLogIndex: 5,
      lastLogTerm: 1,
      transfer: false,
    };
    harness.core("c").step(vote, harness.nowMs);
    const ready = harness.core("c").ready();
    assert.ok(ready.messages.every((m) => m.type !== "voteResponse" || !m.granted));
    harness.core("c").advance(ready);
  });
});

describe("pre-vote, check-quorum and the vote refusal", () => {
  it("an isolated member does not raise its term and does not disturb the leader", () => {
    const harness = threeMembers();
    harness.isolate("c");
    harness.advanceTime(5000);
    assert.equal(harness.core("c").status().term, 1, "pre-vote kept the term");
    harness.heal();
    harness.advanceTime(500);
    assert.deepEqual(harness.leaders(), ["a"]);
    assert.equal(harness.core("a").status().term, 1);
  });

  it("followers that heard from the leader ignore a vote at a higher term", () => {
    const harness = threeMembers();
    harness.advanceTime(150);
    const vote: Message = {
      type: "vote",
      from: "c",
      to: "b",
      term: 9,
      lastLogIndex: 100,
      lastLogTerm: 9,
      transfer: false,
    };
    harness.core("b").step(vote, harness.nowMs);
    assert.equal(harness.core("b").status().term, 1);
    assert.equal(harness.core("b").hasReady(), false);
  });

  it("a vote asked for by a leadership transfer bypasses the refusal", () => {
    const harness = threeMembers();
    harness.advanceTime(150);
    const vote: Message = {
      type: "vote",
      from: "c",
      to: "b",
      term: 2,
      lastLogIndex: 100,
      lastLogTerm: 1,
      transfer: true,
    };
    harness.core("b").step(vote, harness.nowMs);
    assert.equal(harness.core("b").status().votedFor, "c");
  });

  it("a leader cut off from the majority steps down within an election timeout", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.isolate("a");
    harness.advanceTime(harnessTiming.electionTimeoutMsMin + 2 * harnessTiming.heartbeatMs);
    assert.equal(harness.core("a").status().role, "follower");
    assert.equal(harness.core("a").leaseValid(harness.nowMs), false);
  });

  it("a restarted member refuses votes for an election timeout after it starts", () => {
    const harness = threeMembers();
    harness.advanceTime(150);
    harness.crash("b");
    harness.start("b");
    const vote: Message = {
      type: "preVote",
      from: "c",
      to: "b",
      term: 2,
      lastLogIndex: 100,
      lastLogTerm: 1,
    };
    harness.core("b").step(vote, harness.nowMs + harnessTiming.electionTimeoutMsMin - 1);
    assert.equal(harness.core("b").hasReady(), false);
    harness.core("b").step(vote, harness.nowMs + harnessTiming.electionTimeoutMsMin);
    assert.ok(harness.core("b").hasReady());
  });
});

describe("replication", () => {
  it("commits proposals on a majority and applies them in order everywhere", () => {
    const harness = threeMembers();
    for (const text of ["x", "y", "z"]) assert.ok(harness.propose("a", text).ok);
    harness.advanceTime(300);
    for (const id of ["a", "b", "c"])
      assert.deepEqual(harness.appliedCommands(id), ["x", "y", "z"]);
  });

  it("refuses proposals on followers", () => {
    const harness = threeMembers();
    const result = harness.propose("b", "x");
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, "E_NOT_LEADER");
  });

  it("a duplicated or reordered older append never truncates a follower's log", () => {
    const harness = threeMembers();
    harness.propose("a", "x");
    harness.flush();
    const firstAppends = harness.queue.filter((m) => m.type === "append" && m.to === "b");
    harness.deliverAll();
    harness.propose("a", "y");
    harness.advanceTime(200);
    const before = harness.core("b").status().lastIndex;
    for (const message of firstAppends) harness.core("b").step(message, harness.nowMs);
    harness.flush();
    assert.equal(harness.core("b").status().lastIndex, before);
    assert.deepEqual(harness.appliedCommands("b"), ["x", "y"]);
  });

  it("skips a whole conflicting term per round trip when backtracking", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    // a, alone, appends 200 entries of term 1 that never commit.
    harness.isolate("a");
    for (let count = 0; count < 200; count++) harness.propose("a", `lost${count}`);
    harness.flush();
    harness.queue = [];
    // b becomes leader in term 2+ with c, and commits its own entries.
    harness.crash("a");
    harness.heal();
    harness.advanceTime(3000);
    const leader = harness.leaders()[0];
    assert.ok(leader === "b" || leader === "c");
    harness.propose(leader, "kept");
    harness.advanceTime(200);
    // a comes back: count the rejections it sends before it catches up.
    harness.start("a");
    let rejections = 0;
    const countRejections = (message: Message) => {
      if (message.type === "appendResponse" && !message.success) rejections++;
      return true;
    };
    for (let round = 0; round < 20; round++) {
      harness.nowMs += 100;
      for (const core of harness.cores.values()) core.tick(harness.nowMs);
      harness.deliverAll(countRejections);
    }
    assert.ok(rejections <= 3, `took ${rejections} rejections`);
    assert.deepEqual(harness.appliedCommands("a"), ["kept"]);
  });

  it("never commits an entry of an earlier term by counting replicas (figure 8)", () => {
    const harness = figureEight({});
    assert.equal(harness.core("a").status().commitIndex, 1);
  });

  it("the deliberately broken core does commit the earlier term's entry", () => {
    const harness = figureEight({ commitPreviousTermEntries: true });
    assert.equal(harness.core("a").status().commitIndex, 2);
  });

  it("bounds entries per message, messages in flight and uncommitted entries", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    let accepted = 0;
    while (harness.propose("a", `p${accepted}`).ok) accepted++;
    assert.equal(accepted, raftLimits.uncommittedEntriesMax);
    harness.flush();
    const toB = harness.queue.filter((m) => m.type === "append" && m.to === "b");
    const needed = Math.ceil(accepted / raftLimits.appendEntriesMax);
    assert.equal(toB.length, Math.min(needed, raftLimits.inflightMessagesMax));
    for (const message of toB) {
      assert.ok(message.type === "append" && message.entries.length <= raftLimits.appendEntriesMax);
    }
    harness.advanceTime(500);
    assert.equal(harness.core("b").status().commitIndex, accepted + 1);
  });
});

/**
 * Figure 8: a, leader of term 1, placed its entry at index 2 on b and c but learned of no
 * acknowledgement. Re-elected in a later term before its no-op spreads, it must not commit
 * index 2 by counting a, b and c.
 */
function figureEight(bugs: { commitPreviousTermEntries?: boolean }): CoreHarness {
  const harness = new CoreHarness(["a", "b", "c", "d", "e"], { bugs });
  harness.campaign("a");
  harness.advanceTime(200);
  harness.propose("a", "term1-entry");
  harness.flush();
  // a's append reaches b and c, but no acknowledgement gets back to a.
  harness.deliverAll((m) => m.type === "append" && (m.to === "b" || m.to === "c"));
  harness.queue = [];
  assert.equal(harness.core("c").status().lastIndex, 2);
  // a restarts and wins a later term; its no-op reaches nobody.
  harness.crash("a");
  harness.start("a");
  harness.nowMs += 2000;
  harness.core("a").tick(harness.nowMs);
  harness.deliverAll((m) => m.type !== "append");
  harness.queue = [];
  const status = harness.core("a").status();
  assert.equal(status.role, "leader");
  // b and c acknowledge index 2 (a majority with a), not the no-op at index 3.
  harness.core("a").step(
    {
      type: "appendResponse",
      from: "b",
      to: "a",
      term: status.term,
      success: true,
      index: 2,
      hintIndex: 0,
      hintTerm: 0,
      round: 1,
    },
    harness.nowMs,
  );
  harness.core("a").step(
    {
      type: "appendResponse",
      from: "c",
      to: "a",
      term: status.term,
      success: true,
      index: 2,
      hintIndex: 0,
      hintTerm: 0,
      round: 1,
    },
    harness.nowMs,
  );
  harness.flush();
  return harness;
}

describe("reads and the lease", () => {
  it("a ReadIndex is answered after a heartbeat round of the same term", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.propose("a", "x");
    harness.advanceTime(100);
    assert.ok(harness.core("a").readIndex("r1").ok);
    harness.flush();
    assert.deepEqual(harness.readStates.get("a") ?? [], []);
    harness.deliverAll();
    assert.deepEqual(harness.readStates.get("a"), [{ context: "r1", index: 2 }]);
  });

  it("a new leader serves no read before its no-op commits", () => {
    const harness = new CoreHarness(["a", "b", "c"]);
    harness.nowMs = 2000;
    harness.core("a").tick(harness.nowMs);
    // Let the election finish but hold back every append.
    harness.deliverAll((m) => m.type !== "append");
    assert.equal(harness.core("a").status().role, "leader");
    assert.ok(harness.core("a").readIndex("r1").ok);
    harness.deliverAll((m) => m.type !== "append");
    assert.equal(harness.readStates.get("a")?.length ?? 0, 0);
    assert.equal(harness.core("a").leaseValid(harness.nowMs), false);
    harness.advanceTime(300);
    assert.deepEqual(harness.readStates.get("a"), [{ context: "r1", index: 1 }]);
  });

  it("refuses ReadIndex on a follower", () => {
    const harness = threeMembers();
    assert.equal(harness.core("b").readIndex("r").ok, false);
  });

  it("holds a lease from the send time of an acknowledged round plus leaseMs", () => {
    const harness = threeMembers();
    harness.advanceTime(300);
    const core = harness.core("a");
    assert.ok(core.leaseValid(harness.nowMs));
    const expiry = core.status().leaseExpiryMs;
    assert.ok(expiry <= harness.nowMs + leaseMs);
    assert.ok(expiry > harness.nowMs + leaseMs - 2 * harnessTiming.heartbeatMs);
    harness.isolate("a");
    harness.advanceTime(leaseMs);
    assert.equal(core.leaseValid(harness.nowMs), false);
  });

  it("the lease ends before any follower would vote again", () => {
    const harness = threeMembers();
    harness.advanceTime(300);
    const expiry = harness.core("a").status().leaseExpiryMs;
    harness.isolate("a");
    // Followers refuse votes until at least expiry's round start + electionTimeoutMsMin.
    assert.ok(expiry < harness.nowMs + harnessTiming.electionTimeoutMsMin);
  });

  it("a leadership transfer gives up the lease and the target takes over", () => {
    const harness = threeMembers();
    harness.advanceTime(300);
    assert.ok(harness.core("a").transferLeadership("c").ok);
    assert.equal(harness.core("a").leaseValid(harness.nowMs), false);
    harness.deliverAll();
    assert.deepEqual(harness.leaders(), ["c"]);
    harness.advanceTime(300);
    assert.ok(harness.core("c").leaseValid(harness.nowMs));
    assert.equal(harness.core("a").status().leader, "c");
  });
});

describe("membership", () => {
  it("adds a learner that receives the log but does not vote, then promotes it", () => {
    const harness = threeMembers();
    harness.propose("a", "before");
    harness.advanceTime(200);
    harness.start("d", { voters: [], learners: [] });
    assert.ok(harness.core("a").proposeMembership({ type: "addLearner", member: "d" }).ok);
    harness.advanceTime(300);
    assert.deepEqual(harness.appliedCommands("d"), ["before"]);
    assert.deepEqual(harness.core("d").status().membership.learners, ["d"]);
    assert.ok(harness.core("a").proposeMembership({ type: "promote", member: "d" }).ok);
    harness.advanceTime(300);
    assert.deepEqual(harness.core("b").status().membership.voters, ["a", "b", "c", "d"]);
  });

  it("a write commits and is applied before any message for a learner leaves; learners get it at the tick", () => {
    const sentToLearner = (bugs: RaftBugs) => {
      const harness = new CoreHarness(["a", "b", "c"], { learners: ["d"], bugs });
      harness.campaign("a");
      harness.advanceTime(200);
      const toD: string[] = [];
      harness.propose("a", "write");
      // Deliver everything but what goes to d, without letting time pass: the write commits.
      harness.deliverAll((message) => {
        if (message.to === "d") toD.push(message.type);
        return message.to !== "d";
      });
      assert.deepEqual(harness.appliedCommands("a").at(-1), "write");
      const beforeTick = [...toD];
      harness.queue = harness.queue.filter((message) => message.to !== "d");
      harness.advanceTime(10);
      return { beforeTick, learnerHasIt: harness.appliedCommands("d").includes("write") };
    };
    assert.deepEqual(sentToLearner({}), { beforeTick: [], learnerHasIt: true });
    assert.notDeepEqual(
      sentToLearner({ eagerLearners: true }).beforeTick,
      [],
      "the mutant sends at once",
    );
  });

  it("a learner that waits on the leader is sent the write and its commit at once", () => {
    const harness = new CoreHarness(["a", "b", "c"], { learners: ["d"] });
    harness.campaign("a");
    harness.advanceTime(200);
    harness.propose("a", "through-d");
    harness.deliverAll();
    assert.equal(harness.appliedCommands("d").includes("through-d"), false, "not before the tick");
    harness.core("a").hurry("d");
    harness.deliverAll();
    assert.equal(harness.appliedCommands("d").includes("through-d"), true);
  });

  it("a commit reaches the voters in the next append or at the tick, not in an empty append each", () => {
    const noticed = (bugs: RaftBugs) => {
      const harness = new CoreHarness(["a", "b", "c"], { bugs });
      harness.campaign("a");
      harness.advanceTime(200);
      harness.propose("a", "first");
      const sent: string[] = [];
      harness.deliverAll((message) => {
        if (message.type === "append") sent.push(`${message.to}:${message.entries.length}`);
        return true;
      });
      const appliedOnB = harness.appliedCommands("b").includes("first");
      harness.advanceTime(10);
      return { sent, appliedOnB, afterTick: harness.appliedCommands("b").includes("first") };
    };
    // One append each with the entry; the commit waits for the tick (or the next write).
    assert.deepEqual(noticed({}), { sent: ["b:1", "c:1"], appliedOnB: false, afterTick: true });
    const eager = noticed({ eagerCommitNotices: true });
    assert.deepEqual(eager.sent, ["b:1", "c:1", "b:0", "c:0"], "the mutant sends empty appends");
    assert.equal(eager.appliedOnB, true);
  });

  it("the next write's append carries the commit: no notice at the tick then", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.propose("a", "first");
    harness.deliverAll();
    harness.propose("a", "second");
    harness.deliverAll();
    assert.ok(harness.appliedCommands("b").includes("first"));
    const sent: string[] = [];
    harness.propose("a", "third");
    harness.deliverAll((message) => {
      if (message.type === "append" && message.to === "b") sent.push(`${message.entries.length}`);
      return true;
    });
    harness.nowMs += 10;
    harness.core("a").tick(harness.nowMs);
    harness.deliverAll((message) => {
      if (message.type === "append" && message.to === "b")
        sent.push(`tick:${message.entries.length}`);
      return true;
    });
    assert.deepEqual(sent, ["1", "tick:0"], "one notice for the last commit, at the tick");
    assert.ok(harness.appliedCommands("b").includes("third"));
  });

  it("a voter that waits on the leader is sent the commit at once", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.propose("a", "through-b");
    harness.deliverAll();
    assert.equal(harness.appliedCommands("b").includes("through-b"), false);
    harness.core("a").hurry("b");
    harness.deliverAll();
    assert.equal(harness.appliedCommands("b").includes("through-b"), true);
    assert.equal(harness.appliedCommands("c").includes("through-b"), false, "c waits for the tick");
  });

  it("allows one change at a time", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.isolate("a");
    assert.ok(harness.core("a").proposeMembership({ type: "addLearner", member: "d" }).ok);
    const second = harness.core("a").proposeMembership({ type: "addLearner", member: "e" });
    assert.equal(!second.ok && second.code, "E_CONFLICT");
  });

  it("a learner stands in when no voter can win: a voter lost under churn", () => {
    const deadlocked = (bugs: RaftBugs) => {
      const harness = new CoreHarness(["a", "b", "c"], { bugs });
      // c hears nothing: its log stays empty, as a member that was deaf from the start.
      harness.isolate("c");
      harness.campaign("a");
      harness.start("d", { voters: [], learners: [] });
      assert.ok(harness.core("a").proposeMembership({ type: "addLearner", member: "d" }).ok);
      harness.advanceTime(300);
      // a alone appends d's promotion, which counts d's vote in a's configuration.
      harness.isolate("a");
      assert.ok(harness.core("a").proposeMembership({ type: "promote", member: "d" }).ok);
      // b wins with c's vote, and its no-op reaches d but not c; then b is lost for good.
      harness.heal();
      harness.isolate("a");
      harness.nowMs += harnessTiming.electionTimeoutMsMax * 2;
      harness.core("b").tick(harness.nowMs);
      const toC = (message: Message) => message.from === "b" && message.to === "c";
      harness.deliverAll((message) => !(toC(message) && message.type === "append"));
      assert.equal(harness.core("b").status().role, "leader");
      assert.equal(harness.core("d").status().lastTerm, 2);
      harness.crash("b");
      harness.heal();
      // a needs d's vote, which d's newer log refuses; c's empty log wins no one's: only d,
      // a learner in its own configuration, can win (counting a's vote and c's).
      harness.advanceTime(6000);
      return harness.leaders();
    };
    // d wins, repairs the logs and, leading a configuration it is no voter of, steps down once
    // its entry commits; then a voter wins.
    assert.equal(deadlocked({}).length, 1);
    assert.deepEqual(deadlocked({ learnerNeverStandsIn: true }), [], "the mutant elects no one");
  });

  it("a leader removed by a committed change steps down and hands over at once", () => {
    const harness = new CoreHarness(["a", "b", "c"]);
    harness.campaign("a");
    harness.advanceTime(200);
    assert.ok(harness.core("a").proposeMembership({ type: "remove", member: "a" }).ok);
    assert.equal(harness.core("a").status().role, "leader", "it leads until the change commits");
    // Well within an election timeout: the hand-over spares the voters their refusal.
    harness.advanceTime(harnessTiming.electionTimeoutMsMin / 2);
    assert.equal(harness.core("a").status().role, "follower");
    const leaders = harness.leaders();
    assert.equal(leaders.length, 1);
    assert.notEqual(leaders[0], "a");
  });

  it("a leader that removed itself and lost its lead before the commit stands in", () => {
    const removedAlone = (cutOff: boolean, bugs: RaftBugs) => {
      const harness = new CoreHarness(["a", "b"], { bugs });
      harness.campaign("a");
      harness.advanceTime(200);
      if (cutOff) harness.cut("a", "b");
      assert.ok(harness.core("a").proposeMembership({ type: "remove", member: "a" }).ok);
      if (cutOff) {
        harness.advanceTime(1500); // CheckQuorum deposes a; only its log holds the removal
        harness.heal();
      } else {
        harness.flush(); // the removal is on a's disk, its append still queued
        harness.crash("a");
        harness.start("a");
      }
      harness.advanceTime(10_000);
      return harness;
    };
    for (const cutOff of [true, false]) {
      const harness = removedAlone(cutOff, {});
      // a wins with b's vote, commits its removal, steps down and hands over to b.
      assert.deepEqual(harness.leaders(), ["b"]);
      assert.deepEqual(harness.core("b").status().membership, { voters: ["b"], learners: [] });
      const stuck = removedAlone(cutOff, { learnerNeverStandsIn: true });
      assert.deepEqual(stuck.leaders(), [], "b cannot beat a's log, and a never campaigns");
    }
  });
});

describe("snapshots", () => {
  it("a lagging member catches up from a snapshot after compaction", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.crash("c");
    for (let count = 0; count < 50; count++) harness.propose("a", `p${count}`);
    harness.advanceTime(200);
    const applied = harness.core("a").status().appliedIndex;
    harness.durable.get("a")!.snapshotData = encoder.encode(`image@${applied}`);
    harness.core("a").compact(applied);
    harness.flush();
    assert.equal(harness.core("a").status().firstIndex, applied + 1);
    harness.start("c");
    harness.advanceTime(300);
    const durableC = harness.durable.get("c")!;
    assert.equal(durableC.snapshot?.index, applied);
    assert.equal(new TextDecoder().decode(durableC.snapshotData!), `image@${applied}`);
    harness.propose("a", "after");
    harness.advanceTime(200);
    assert.equal(harness.core("c").status().commitIndex, harness.core("a").status().commitIndex);
    assert.deepEqual(harness.appliedCommands("c").at(-1), "after");
  });
});

/** Every two members that applied an entry at one index applied the same entry there. */
function appliedAgree(harness: CoreHarness): boolean {
  const byIndex = new Map<number, Entry>();
  for (const durable of harness.durable.values()) {
    for (const applied of durable.applied) {
      const seen = byIndex.get(applied.index);
      if (seen === undefined) byIndex.set(applied.index, applied);
      else if (seen.term !== applied.term || seen.kind !== applied.kind) return false;
    }
  }
  return true;
}

/**
 * Ongaro's single-server-change race (raft-dev, 2015): leader a promotes learner e and only e
 * hears of it; b wins the next term and at once removes d, committing that with c alone; then
 * a wins a later term with d and e, whose majority of a's five-voter configuration commits a
 * different entry at the same index. Returns whether b's removal was accepted.
 */
function membershipRace(bugs: RaftBugs): { harness: CoreHarness; removalAccepted: boolean } {
  const harness = new CoreHarness(["a", "b", "c", "d"], { learners: ["e"], bugs });
  harness.campaign("a");
  harness.advanceTime(200);
  harness.isolate("a");
  harness.connect("a", "e");
  assert.ok(harness.core("a").proposeMembership({ type: "promote", member: "e" }).ok);
  harness.deliverAll();
  harness.cut("a", "e");
  // b wins the votes of c and d, but from here its appends reach c only; a reaches d and e.
  harness.cut("b", "e");
  harness.nowMs += harnessTiming.electionTimeoutMsMax;
  harness.core("b").tick(harness.nowMs);
  harness.deliverAll((message) => message.type !== "append" || message.to === "c");
  assert.equal(harness.core("b").status().role, "leader");
  harness.cut("b", "d");
  harness.connect("a", "d");
  harness.connect("a", "e");
  const removal = harness.core("b").proposeMembership({ type: "remove", member: "d" });
  harness.advanceTime(3000);
  return { harness, removalAccepted: removal.ok };
}

describe("membership changes and elections", () => {
  it("a new leader changes membership only once an entry of its own term committed", () => {
    const broken = membershipRace({ membershipBeforeOwnTermCommit: true });
    assert.ok(broken.removalAccepted);
    assert.equal(appliedAgree(broken.harness), false, "the race splits the old core's brain");
    const fixed = membershipRace({});
    assert.equal(fixed.removalAccepted, false);
    assert.ok(appliedAgree(fixed.harness), "committed entries diverged");
  });

  it("a leader that demotes itself leads until the change commits; the sole voter left leads", () => {
    const harness = new CoreHarness(["a", "b"]);
    harness.campaign("a");
    harness.advanceTime(200);
    assert.ok(harness.core("a").proposeMembership({ type: "demote", member: "a" }).ok);
    harness.advanceTime(harnessTiming.electionTimeoutMsMin / 2);
    assert.deepEqual(harness.leaders(), ["b"]);
    assert.deepEqual(harness.core("a").status().membership, { voters: ["b"], learners: ["a"] });
  });

  /** a demotes b and only b hears of it; then a dies, leaving b with the longest log. */
  function demotedHoldsTheLongestLog(bugs: RaftBugs): CoreHarness {
    const harness = new CoreHarness(["a", "b", "c", "d"], { bugs });
    harness.campaign("a");
    harness.advanceTime(200);
    harness.isolate("a");
    harness.connect("a", "b");
    assert.ok(harness.core("a").proposeMembership({ type: "demote", member: "b" }).ok);
    harness.deliverAll();
    harness.crash("a");
    harness.heal();
    harness.advanceTime(5000);
    return harness;
  }

  it("a member whose demotion is not yet committed stands in", () => {
    assert.deepEqual(demotedHoldsTheLongestLog({ learnerNeverStandsIn: true }).leaders(), []);
    const harness = demotedHoldsTheLongestLog({});
    const leaders = harness.leaders();
    assert.equal(leaders.length, 1);
    const membership = harness.core(leaders[0] as string).status().membership;
    assert.deepEqual(membership.voters, ["a", "c", "d"]);
    assert.ok(membership.voters.includes(leaders[0] as string), "the demoted member stepped down");
  });

  it("a sole voter's appends of a new term wait until that term is durable", () => {
    const harness = new CoreHarness(["a"]);
    harness.advanceTime(10);
    harness.start("b", { voters: [], learners: [] });
    assert.ok(harness.core("a").proposeMembership({ type: "addLearner", member: "b" }).ok);
    harness.advanceTime(100);
    harness.crash("a");
    const core = harness.start("a");
    harness.flush();
    core.tick(harness.nowMs + harnessTiming.electionTimeoutMsMax * 2);
    const ready = core.ready();
    assert.equal(core.status().role, "leader");
    assert.equal(ready.hardState?.term, 2);
    assert.ok(ready.mustSync);
    // Sent before the flush, an append of term 2 would outlive a crash that forgets term 2.
    assert.deepEqual(ready.sendNow, []);
    assert.ok(ready.messages.some((message) => message.type === "append" && message.to === "b"));
  });

  it("a new one-voter cluster leads on its first tick", () => {
    const harness = new CoreHarness(["a"]);
    harness.advanceTime(10);
    assert.deepEqual(harness.leaders(), ["a"]);
  });

  /** A sole voter that has a past hears a leader (one leaving it the configuration), then ticks. */
  function soleVoterAfterHearingLeader(bugs: RaftBugs): RaftCore {
    const core = new RaftCore({
      id: "x",
      state: {
        hardState: { term: 3, votedFor: noMember, commitIndex: 4 },
        snapshot: { index: 4, term: 3, membership: { voters: ["x"], learners: [] } },
        entries: [],
      },
      nowMs: 0,
      random: new SeededRandom(1),
      timing: harnessTiming,
      bugs,
    });
    core.step({ type: "heartbeat", from: "l", to: "x", term: 3, commitIndex: 4, round: 1 }, 600);
    core.advance(core.ready());
    core.tick(610);
    return core;
  }

  it("a sole voter outlasts the lease of a leader it heard from before it campaigns", () => {
    assert.equal(
      soleVoterAfterHearingLeader({ soleVoterIgnoresLease: true }).status().role,
      "leader",
    );
    const core = soleVoterAfterHearingLeader({});
    assert.equal(core.status().role, "follower");
    core.tick(600 + harnessTiming.electionTimeoutMsMin);
    assert.equal(core.status().role, "leader");
  });

  it("votes and answers from non-members change nothing, not even the term", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.isolate("a");
    harness.nowMs += harnessTiming.electionTimeoutMsMax;
    // A log no further than b's own: b can judge the sender, and x is no voter of it.
    const lastLog = { lastLogIndex: 1, lastLogTerm: 1 };
    for (const type of ["preVote", "vote"] as const) {
      const request = { type, from: "x", to: "b", term: 9, ...lastLog, transfer: false };
      harness.core("b").step(request as Message, harness.nowMs);
    }
    assert.equal(harness.core("b").status().term, 1);
    assert.equal(harness.core("b").hasReady(), false);
    const answer: Message = { type: "heartbeatResponse", from: "x", to: "a", term: 9, round: 1 };
    harness.core("a").step(answer, harness.nowMs);
    assert.equal(harness.core("a").status().term, 1);
    const trusting = new CoreHarness(["a", "b", "c"], { bugs: { trustNonMembers: true } });
    trusting.campaign("a");
    trusting.core("a").step({ ...answer, term: 9 }, trusting.nowMs);
    assert.equal(trusting.core("a").status().term, 9, "the mutant moves the term");
  });

  it("a member that lags hears out a candidate whose log is ahead of its own", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.isolate("a");
    harness.nowMs += harnessTiming.electionTimeoutMsMax;
    const ahead = { lastLogIndex: 5, lastLogTerm: 1, transfer: false };
    harness.core("b").step({ type: "vote", from: "d", to: "b", term: 2, ...ahead }, harness.nowMs);
    assert.equal(harness.core("b").status().votedFor, "d", "b may lack the entry promoting d");
  });

  it("a member without any configuration votes, so those who counted it can elect", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.start("d", { voters: [], learners: [] });
    const request = { lastLogIndex: 1, lastLogTerm: 1, transfer: false };
    harness
      .core("d")
      .step({ type: "vote", from: "b", to: "d", term: 2, ...request }, harness.nowMs);
    assert.equal(harness.core("d").status().votedFor, "b");
  });

  it("appends from a leader move a joiner's term before it holds any configuration", () => {
    const harness = threeMembers();
    harness.advanceTime(200);
    harness.start("d", { voters: [], learners: [] });
    harness
      .core("d")
      .step(
        { type: "heartbeat", from: "a", to: "d", term: 1, commitIndex: 0, round: 1 },
        harness.nowMs,
      );
    assert.equal(harness.core("d").status().term, 1);
    assert.equal(harness.core("d").status().leader, "a");
  });
});

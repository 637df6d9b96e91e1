import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import type { Message } from "../raft/types.ts";
import type { Command } from "../state/commands.ts";
import { seededRandom } from "../testing/prng.ts";
import {
  type ForwardedAnswer,
  RaftCommandLog,
  type RaftCommandLogOptions,
} from "./raft-command-log.ts";
import { systemClock } from "./system-clock.ts";

/**
 * Members in one process; messages travel through a queue, and a cut member hears nothing. As
 * over HTTP, the receiver's answers come back with the request (`receiveAndReply`).
 */
class LoopbackFleet {
  readonly members = new Map<string, RaftCommandLog>();
  readonly cut = new Set<string>();
  readonly dirOf = new Map<string, string>();
  private readonly dirs: string[] = [];

  add(
    id: string,
    voters: string[] | null,
    leaderCall?: RaftCommandLogOptions["leaderCall"],
  ): RaftCommandLog {
    const dataDir = mkdtempSync(join(tmpdir(), `shoal-raft-${id}-`));
    this.dirs.push(dataDir);
    this.dirOf.set(id, dataDir);
    const log = new RaftCommandLog({
      nodeId: id,
      dataDir,
      clock: systemClock,
      random: { next: seededRandom(id.charCodeAt(0)) },
      sender: { send: (messages) => this.deliver(id, messages) },
      bootstrap: voters ? { voters, learners: [] } : undefined,
      leaderCall,
    });
    this.members.set(id, log);
    log.start();
    return log;
  }

  private deliver(from: string, messages: readonly Message[]): void {
    for (const message of messages) {
      setImmediate(async () => {
        if (this.cut.has(from) || this.cut.has(message.to)) return;
        const answers = await this.members.get(message.to)?.receiveAndReply(from, [message]);
        if (!answers?.length || this.cut.has(from) || this.cut.has(message.to)) return;
        this.members.get(from)?.receive(answers);
      });
    }
  }

  async leader(): Promise<RaftCommandLog> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      for (const [id, log] of this.members) if (!this.cut.has(id) && log.isLeader()) return log;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("no leader within 10 s");
  }

  stop(id: string): void {
    this.members.get(id)?.close();
    this.members.delete(id);
  }

  dispose(): void {
    for (const id of [...this.members.keys()]) this.stop(id);
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };
const create = (name: string, at: number): Command => ({
  type: "service.create",
  at,
  name,
  replicas: 1,
  containers: [container],
});

async function eventually(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("replicated command log", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("elects a leader, replicates and applies a write on every member", async () => {
    for (const id of ["a", "b", "c"]) fleet.add(id, ["a", "b", "c"]);
    const leader = await fleet.leader();
    const result = await leader.propose(create("web", 1));
    assert.equal(result.ok, true);
    await eventually("every member to apply", () =>
      [...fleet.members.values()].every((m) => m.view().service("web") !== null),
    );
  });

  it("refuses a write on a follower, which is not the leader", async () => {
    const leader = await fleet.leader();
    const follower = [...fleet.members.values()].find((m) => m !== leader);
    assert.ok(follower);
    const result = await follower.propose(create("nope", 2));
    assert.equal(result.ok ? "" : result.code, "E_NOT_LEADER");
  });

  it("elects a new leader when the leader stops, and keeps what was acknowledged", async () => {
    const old = await fleet.leader();
    const oldId = old.status().id;
    fleet.stop(oldId);
    const leader = await fleet.leader();
    assert.notEqual(leader.status().id, oldId);
    assert.ok(leader.view().service("web"));
    const result = await leader.propose(create("after", 3));
    assert.equal(result.ok, true);
    fleet.add(oldId, ["a", "b", "c"]);
    await eventually(
      "the restarted member to catch up",
      () => fleet.members.get(oldId)?.view().service("after") !== null,
    );
  });

  it("answers a cut-off leader's write with E_NO_QUORUM or E_NOT_LEADER, never success", async () => {
    const leader = await fleet.leader();
    const id = leader.status().id;
    fleet.cut.add(id);
    const result = await leader.propose(create("lost", 4));
    assert.equal(result.ok, false);
    fleet.cut.delete(id);
    const current = await fleet.leader();
    await eventually("convergence", () =>
      [...fleet.members.values()].every(
        (m) => m.view().appliedIndex() === current.view().appliedIndex(),
      ),
    );
  });

  it("brings a new learner up to date through a snapshot after compaction", async () => {
    const leader = await fleet.leader();
    leader.snapshotNow();
    const learner = fleet.add("d", null);
    const added = await leader.changeMembership({ type: "addLearner", member: "d" });
    assert.equal(added.ok, true);
    await eventually(
      "the learner to hold the state",
      () => learner.view().service("after") !== null,
    );
    const result = await leader.propose(create("later", 5));
    assert.equal(result.ok, true);
    await eventually(
      "the learner to apply new writes",
      () => learner.view().service("later") !== null,
    );
    assert.deepEqual(learner.status().membership.learners, ["d"]);
    assert.ok(
      existsSync(join(fleet.dirOf.get("d") ?? "", "snapshot.db")),
      "the learner installed a snapshot",
    );
  });
});

describe("linearizable reads on the replicated log", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("confirms leadership and waits for the applied index; a follower is refused", async () => {
    for (const id of ["r", "s", "t"]) fleet.add(id, ["r", "s", "t"]);
    const leader = await fleet.leader();
    assert.equal((await leader.propose(create("read-me", 1))).ok, true);
    const read = await leader.readBarrier();
    assert.equal(read.ok, true);
    assert.ok(leader.view().service("read-me"));
    const follower = [...fleet.members.values()].find((m) => m !== leader);
    const refused = await follower?.readBarrier();
    assert.equal(refused?.ok, false);
  });
});

describe("a write forwarded through a failover", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("is applied once when the leader commits it, loses the answer and is cut off", async () => {
    let lostOnce = false;
    // Delivers to the leader and, the first time, drops its answer as a dying leader's reset
    // connection would; then the leader is cut off and another member must take the resend.
    const leaderCall = async <T>(leaderId: string, kind: string, body: unknown): Promise<T> => {
      const target = fleet.members.get(leaderId);
      if (!target || fleet.cut.has(leaderId) || kind !== "propose") {
        throw new ShoalError("E_NOT_READY", `peer ${leaderId} does not answer`);
      }
      const { request, command } = body as { request: string; command: Command };
      const answer: ForwardedAnswer = await target.proposeForPeer(command, request);
      if (!lostOnce) {
        lostOnce = true;
        fleet.cut.add(leaderId);
        throw new ShoalError("E_NOT_READY", `peer ${leaderId} does not answer (ECONNRESET)`);
      }
      return answer as T;
    };
    for (const id of ["p", "q", "r"]) fleet.add(id, ["p", "q", "r"], leaderCall);
    const leader = await fleet.leader();
    const follower = [...fleet.members.values()].find((m) => m !== leader);
    assert.ok(follower);
    // A duplicate apply would answer E_CONFLICT ("already exists") instead of the first result.
    const result = await follower.propose(create("once", 1));
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(
      follower
        .view()
        .services()
        .filter((s) => s.name === "once").length,
      1,
    );
    const events = follower
      .view()
      .events()
      .filter((e) => e.type === "service.created" && e.service === "once");
    assert.equal(
      events.length,
      1,
      `the service was created by one entry only: ${JSON.stringify(events)}`,
    );
  });
});

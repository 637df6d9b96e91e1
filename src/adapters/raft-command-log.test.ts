import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { ProposalWaiters } from "../raft/host/sessions.ts";
import type { Entry, Message, SnapshotMessage } from "../raft/types.ts";
import type { Command } from "../state/commands.ts";
import type { ApplyResult } from "../state/machine.ts";
import { StateView } from "../state/views.ts";
import { seededRandom } from "../testing/prng.ts";
import { openDatabase } from "./libsql.ts";
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
  /** Sees (and may replace) every message on its way; null drops it. */
  rewrite: ((from: string, message: Message) => Message | null) | null = null;
  private readonly dirs: string[] = [];

  /** Starts member `id`, in a fresh data dir unless `dataDir` names one (a restart). */
  add(
    id: string,
    voters: string[] | null,
    leaderCall?: RaftCommandLogOptions["leaderCall"],
    dataDir = mkdtempSync(join(tmpdir(), `shoal-raft-${id}-`)),
  ): RaftCommandLog {
    if (!this.dirs.includes(dataDir)) this.dirs.push(dataDir);
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
    for (const sent of messages) {
      const message = this.rewrite ? this.rewrite(from, sent) : sent;
      if (message === null) continue;
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

/** The applied index a state image holds, or null when it is not one. */
/** A one-member log that wrote three services and took a snapshot of them. */
async function snapshottedLoneLeader(fleet: LoopbackFleet, id: string): Promise<RaftCommandLog> {
  const leader = fleet.add(id, [id]);
  await fleet.leader();
  for (let n = 1; n <= 3; n++) {
    assert.equal((await leader.propose(create(`before-${n}`, n))).ok, true);
  }
  leader.snapshotNow();
  return leader;
}

function imageIndexOf(image: Uint8Array): number | null {
  const dir = mkdtempSync(join(tmpdir(), "shoal-image-"));
  try {
    writeFileSync(join(dir, "image.db"), image);
    const db = openDatabase(join(dir, "image.db"), "NORMAL");
    try {
      return new StateView(db).appliedIndex();
    } finally {
      db.close();
    }
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of a stopped member's state.db, as its own snapshot would be taken now. */
function imageOfState(dataDir: string): Uint8Array {
  const path = join(dataDir, "copy.db.tmp");
  const db = openDatabase(join(dataDir, "state.db"), "NORMAL");
  try {
    db.prepare("VACUUM INTO ?").run(path);
  } finally {
    db.close();
  }
  const image = new Uint8Array(readFileSync(path));
  rmSync(path, { force: true });
  return image;
}

/**
 * Holds the apply of committed entries on `log` (a slow state machine) until released, so its
 * replica falls behind the commit index it knows: the seam is the host's own apply step.
 */
function holdApply(log: RaftCommandLog): { release(): void } {
  const host = (log as unknown as { pipeline: { applyEntries(entries: readonly Entry[]): void } })
    .pipeline;
  const apply = host.applyEntries.bind(host);
  const held: Entry[][] = [];
  let holding = true;
  host.applyEntries = (entries) => {
    if (holding) held.push([...entries]);
    else apply(entries);
  };
  return {
    release() {
      holding = false;
      for (const entries of held.splice(0)) apply(entries);
    },
  };
}

/** What a promise settled with by the next turn of the event loop, else "pending". */
async function settledWith<T>(promise: Promise<T>): Promise<T | "pending"> {
  const pending = new Promise<"pending">((resolve) => setImmediate(() => resolve("pending")));
  return Promise.race([promise, pending]);
}

const codeOf = (result: ApplyResult | "pending") =>
  result === "pending" ? "pending" : result.ok ? "ok" : result.code;

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
      existsSync(join(fleet.dirOf.get("d") ?? "", `snapshot.${learner.snapshotIndex()}.db`)),
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

describe("proposal waiters", () => {
  /** Timers the test fires by hand, in the order they were set. */
  function manualTimers() {
    const set: { callback: () => void; cancelled: boolean }[] = [];
    return {
      schedule(callback: () => void): () => void {
        const timer = { callback, cancelled: false };
        set.push(timer);
        return () => {
          timer.cancelled = true;
        };
      },
      fire(at: number): void {
        const timer = set[at];
        if (timer && !timer.cancelled) timer.callback();
      },
    };
  }
  const done: ApplyResult = { ok: true, value: "done" };

  it("answers a waiter replaced at its index with E_NOT_LEADER at once", async () => {
    const timers = manualTimers();
    const waiters = new ProposalWaiters(1000, timers.schedule);
    const older = waiters.wait(7, 1);
    const newer = waiters.wait(7, 2);
    assert.equal(
      codeOf(await settledWith(older)),
      "E_NOT_LEADER",
      "a waiter whose entry was replaced by a newer proposal is answered at once",
    );
    waiters.settle({ index: 7, term: 2 }, done);
    assert.equal(codeOf(await settledWith(newer)), "ok");
  });

  it("lets a timeout remove only its own waiter", async () => {
    const timers = manualTimers();
    const waiters = new ProposalWaiters(1000, timers.schedule);
    void waiters.wait(7, 1);
    const newer = waiters.wait(7, 2);
    timers.fire(0);
    waiters.settle({ index: 7, term: 2 }, done);
    assert.equal(
      codeOf(await settledWith(newer)),
      "ok",
      "the older waiter's timeout did not take the newer waiter's committed answer",
    );
  });

  it("answers a timeout E_NO_QUORUM, and a waiter of a lost entry E_NOT_LEADER", async () => {
    const timers = manualTimers();
    const waiters = new ProposalWaiters(1000, timers.schedule);
    const late = waiters.wait(3, 1);
    const lost = waiters.wait(4, 1);
    timers.fire(0);
    assert.equal(codeOf(await settledWith(late)), "E_NO_QUORUM");
    waiters.settle({ index: 3, term: 1 }, done);
    waiters.settle({ index: 4, term: 2 }, done);
    assert.equal(codeOf(await settledWith(lost)), "E_NOT_LEADER");
    const closing = waiters.wait(5, 2);
    waiters.settleAll({ ok: false, code: "E_NOT_READY", message: "closing" });
    assert.equal(codeOf(await settledWith(closing)), "E_NOT_READY");
  });
});

describe("a leader read right after an election", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("waits until the new leader applied everything it knows committed", async () => {
    for (const id of ["e", "f", "g"]) fleet.add(id, ["e", "f", "g"]);
    const old = await fleet.leader();
    const holds = [...fleet.members.values()].filter((m) => m !== old).map(holdApply);
    assert.equal((await old.propose(create("acknowledged", 1))).ok, true);
    fleet.cut.add(old.status().id);
    const leader = await fleet.leader();
    assert.equal(leader.view().service("acknowledged"), null, "the new leader's replica is behind");
    const release = () => {
      for (const hold of holds) hold.release();
    };
    const released = setTimeout(release, 200);
    try {
      const read = await leader.readAt("leader");
      assert.equal(read.ok, true, JSON.stringify(read));
      assert.ok(
        leader.view().service("acknowledged"),
        "a leader read on the new leader holds the write the previous leader acknowledged",
      );
    } finally {
      clearTimeout(released);
      release();
    }
  });
});

describe("a leader under a stream of writes", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("keeps its lease: a tick that falls during a flush runs after it", async () => {
    for (const id of ["h", "i", "j"]) fleet.add(id, ["h", "i", "j"]);
    const leader = await fleet.leader();
    // Writes arrive every few milliseconds, whether or not earlier ones committed (bounded), so
    // the leader always has a batch to flush; its lease is sampled meanwhile.
    const until = Date.now() + 2000;
    const inFlight = new Set<Promise<void>>();
    let proposed = 0;
    let committed = 0;
    let lapsedAt: number | null = null;
    let longestLapseMs = 0;
    while (Date.now() < until) {
      for (let k = 0; k < 4 && inFlight.size < 512; k++) {
        const write: Promise<void> = leader
          .proposeHere(create(`w-${proposed}`, proposed))
          .then((result) => {
            if (result.ok) committed += 1;
            inFlight.delete(write);
          });
        inFlight.add(write);
        proposed += 1;
      }
      const now = Date.now();
      if (leader.isLeader()) lapsedAt = null;
      else {
        lapsedAt ??= now;
        longestLapseMs = Math.max(longestLapseMs, now - lapsedAt);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await Promise.all(inFlight);
    assert.ok(committed > 0, "writes committed");
    assert.ok(
      longestLapseMs < limits.electionTimeoutMsMin,
      `the lease lapsed for ${longestLapseMs} ms while ${committed} writes committed`,
    );
  });
});

describe("a snapshot after a crash between its image and raft.db", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("restarts, and sends a lagging member the image of exactly the snapshot's index", async () => {
    let leader = await snapshottedLoneLeader(fleet, "k");
    const recorded = leader.snapshotIndex();
    assert.ok(recorded > 0);
    for (let n = 1; n <= 3; n++) {
      assert.equal((await leader.propose(create(`after-${n}`, n))).ok, true);
    }
    const dir = fleet.dirOf.get("k") ?? "";
    fleet.stop("k");
    // A crash after a newer snapshot's image step and before raft.db recorded its compaction
    // leaves the newer image beside the recorded one (under the old name and under today's),
    // and perhaps a temporary file.
    const newer = imageOfState(dir);
    const newerIndex = imageIndexOf(newer) ?? 0;
    assert.ok(newerIndex > recorded);
    writeFileSync(join(dir, "snapshot.db"), newer);
    writeFileSync(join(dir, `snapshot.${newerIndex}.db`), newer);
    writeFileSync(join(dir, `snapshot.${newerIndex + 1}.db.tmp`), newer.subarray(0, 100));
    const sent: SnapshotMessage[] = [];
    fleet.rewrite = (_from, message) => {
      if (message.type === "snapshot") sent.push(message);
      return message;
    };
    leader = fleet.add("k", ["k"], undefined, dir);
    await fleet.leader();
    assert.equal(leader.snapshotIndex(), recorded);
    const learner = fleet.add("l", null);
    assert.equal((await leader.changeMembership({ type: "addLearner", member: "l" })).ok, true);
    await eventually(
      "the learner to hold the state",
      () => learner.view().service("after-3") !== null,
    );
    assert.ok(sent.length > 0, "the learner was sent a snapshot");
    for (const message of sent) {
      assert.equal(
        imageIndexOf(message.data ?? new Uint8Array()),
        message.snapshot.index,
        "the image sent is the one taken at the snapshot's index",
      );
    }
    const images = readdirSync(dir).filter((name) => name.startsWith("snapshot"));
    assert.deepEqual(images, [`snapshot.${recorded}.db`], "only the recorded image is kept");
  });

  it("retakes the image when an older version's crash left only a newer one", async () => {
    let leader = fleet.add("u", ["u"]);
    await eventually("u to lead", () => leader.isLeader());
    assert.equal((await leader.propose(create("first", 1))).ok, true);
    const dir = fleet.dirOf.get("u") ?? "";
    const behind = imageOfState(dir);
    for (let n = 2; n <= 3; n++) assert.equal((await leader.propose(create(`s${n}`, n))).ok, true);
    leader.snapshotNow();
    const recorded = leader.snapshotIndex();
    assert.equal((await leader.propose(create("last", 4))).ok, true);
    fleet.stop("u");
    // The old layout's crash: the newer image was renamed over snapshot.db before raft.db
    // recorded it, so the recorded image is gone; and a power loss left state.db behind.
    const newer = imageOfState(dir);
    const newerIndex = imageIndexOf(newer) ?? 0;
    rmSync(join(dir, `snapshot.${recorded}.db`), { force: true });
    writeFileSync(join(dir, "snapshot.db"), newer);
    for (const suffix of ["", "-wal", "-shm"])
      rmSync(join(dir, `state.db${suffix}`), { force: true });
    writeFileSync(join(dir, "state.db"), behind);
    const sent: SnapshotMessage[] = [];
    fleet.rewrite = (_from, message) => {
      if (message.type === "snapshot") sent.push(message);
      return message;
    };
    leader = fleet.add("u", ["u"], undefined, dir);
    await eventually("u to lead again", () => leader.isLeader());
    assert.ok(leader.view().service("last"), "state.db was rebuilt from the newer image");
    const learner = fleet.add("v", null);
    assert.equal((await leader.changeMembership({ type: "addLearner", member: "v" })).ok, true);
    await eventually(
      "the learner to hold the state",
      () => learner.view().service("last") !== null,
    );
    assert.ok(sent.length > 0, "the learner was sent a snapshot");
    for (const message of sent) {
      assert.equal(imageIndexOf(message.data ?? new Uint8Array()), message.snapshot.index);
    }
    assert.ok(leader.snapshotIndex() >= newerIndex, "the snapshot was retaken");
    const images = readdirSync(dir).filter((name) => name.startsWith("snapshot"));
    assert.deepEqual(images, [`snapshot.${leader.snapshotIndex()}.db`]);
  });
});

describe("a snapshot whose image does not match its metadata", () => {
  const fleet = new LoopbackFleet();
  after(() => fleet.dispose());

  it("is refused by the receiver, which stays up and installs the right one next", async () => {
    const leader = await snapshottedLoneLeader(fleet, "n");
    assert.equal((await leader.propose(create("after", 4))).ok, true);
    // An image taken at another index than the metadata says: a peer's data is input.
    const wrong = imageOfState(fleet.dirOf.get("n") ?? "");
    assert.notEqual(imageIndexOf(wrong), leader.snapshotIndex());
    let tampered = 0;
    fleet.rewrite = (_from, message) => {
      if (message.type !== "snapshot" || tampered > 0) return message;
      tampered += 1;
      return { ...message, data: wrong };
    };
    const learner = fleet.add("o", null);
    assert.equal((await leader.changeMembership({ type: "addLearner", member: "o" })).ok, true);
    await eventually("a snapshot with the wrong image to be sent", () => tampered > 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(
      learner.snapshotIndex(),
      0,
      "the learner did not install an image that disagrees with the snapshot's metadata",
    );
    assert.equal(learner.view().appliedIndex(), 0);
    await eventually("the learner to install the right snapshot", () => {
      return learner.view().service("after") !== null;
    });
    assert.equal(learner.snapshotIndex(), leader.snapshotIndex());
  });
});

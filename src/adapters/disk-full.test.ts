// The real libSQL files of a lone node on a small tmpfs that fills up: the node's log holds what
// the disk refuses (raft.db or state.db, whichever fills first) instead of crashing, refuses new
// writes with E_NO_SPACE, and once the disk has room again applies what it held, exactly once.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import type { Command } from "../state/commands.ts";
import { StateMachine } from "../state/machine.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { Tmpfs, tmpfsUnavailable } from "../testing/tmpfs.ts";
import { loadNodeIdentity } from "./data-dir.ts";
import { DiskSpace, freeBytesOf, isDiskFullError } from "./disk-space.ts";
import { openDatabase } from "./libsql.ts";
import { RaftCommandLog } from "./raft-command-log.ts";
import { systemClock } from "./system-clock.ts";

const value = "x".repeat(30 * 1024);
const create = (name: string): Command => ({
  type: "service.create",
  at: 1,
  name,
  replicas: 0,
  containers: [
    {
      name: "c",
      image: "shoal-test/busybox:1",
      env: { A: value, B: value, C: value },
      ports: [],
      mounts: [],
      essential: true,
    },
  ],
});

async function until(what: string, test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

it("holds a write the full disk refuses and applies it once the disk has room", {
  skip: tmpfsUnavailable() ?? false,
}, async () => {
  const disk = Tmpfs.mount(16 * 1024 * 1024);
  let log: RaftCommandLog | null = null;
  try {
    const dir = join(disk.path, "data");
    mkdirSync(dir);
    // No reserve: this test is about the disk itself refusing, past any reserve.
    const space = new DiskSpace(dir, () => systemClock.monotonic(), 0, freeBytesOf, 0);
    log = await RaftCommandLog.openLone(dir, "node-1", systemClock, space);
    await log.propose({ type: "cluster.init", at: 1, clusterId: "c", ...apiTokenFields("t") });
    assert.equal((await log.propose(create("first"))).ok, true);
    disk.fill("filler");
    const held = log.propose(create("held"));
    const opened = log;
    await until("the log to hold the write", () => opened.disk().status === "full");
    const refused = await log.propose(create("refused"));
    assert.equal(refused.ok ? "" : refused.code, "E_NO_SPACE");
    assert.equal(log.view().service("held"), null, "nothing of the held write is applied");
    disk.resize(64 * 1024 * 1024);
    disk.remove("filler");
    const answer = await held;
    assert.equal(answer.ok, true, JSON.stringify(answer));
    await until("the disk to read ok", () => opened.disk().status === "ok");
    // A leader held longer than an election timeout steps down (CheckQuorum) and, alone, soon
    // leads again; a lone log has no leader to hold a write for meanwhile.
    await until("the node to lead again", () => opened.isLeader());
    const after = await log.propose(create("after"));
    assert.equal(after.ok, true, JSON.stringify(after));
    const names = log
      .view()
      .services()
      .map((s) => s.name);
    assert.deepEqual(names.sort(), ["after", "first", "held"]);
  } finally {
    log?.close();
    disk.unmount();
  }
});

it("a state.db transaction the full disk refuses fails whole with SQLITE_FULL, and applies later", {
  skip: tmpfsUnavailable() ?? false,
}, () => {
  const disk = Tmpfs.mount(1024 * 1024);
  try {
    const machine = new StateMachine(openDatabase(join(disk.path, "state.db"), "NORMAL"));
    machine.apply({ type: "cluster.init", at: 1, clusterId: "c", ...apiTokenFields("t") }, 1);
    let index = 2;
    let refused: unknown = null;
    for (; index < 200 && refused === null; index++) {
      try {
        machine.applyAll([{ index, command: create(`s${index}`) }]);
      } catch (error) {
        refused = error;
      }
    }
    const failedAt = index - 1;
    // The cause, not "cannot rollback - no transaction is active" from a second ROLLBACK.
    assert.equal(isDiskFullError(refused), true, String(refused));
    assert.equal(machine.appliedIndex(), failedAt - 1, "nothing of the refused batch applied");
    assert.equal(machine.view.service(`s${failedAt}`), null);
    disk.resize(16 * 1024 * 1024);
    machine.applyAll([{ index: failedAt, command: create(`s${failedAt}`) }]);
    assert.equal(machine.appliedIndex(), failedAt);
    assert.notEqual(machine.view.service(`s${failedAt}`), null);
  } finally {
    disk.unmount();
  }
});

it("tells a full disk from other failures", () => {
  const error = (fields: object) => Object.assign(new Error("x"), fields);
  assert.equal(isDiskFullError(error({ code: "ENOSPC" })), true);
  assert.equal(isDiskFullError(error({ code: "EDQUOT" })), true);
  assert.equal(isDiskFullError(error({ code: "SQLITE_FULL", rawCode: 13 })), true);
  assert.equal(isDiskFullError(error({ code: "EIO" })), false);
  assert.equal(isDiskFullError(error({ code: "SQLITE_ERROR", rawCode: 1 })), false);
  assert.equal(isDiskFullError("ENOSPC"), false);
});

it("measures free space at most once per interval, not once per question", () => {
  let now = 0;
  let measured = 0;
  const space = new DiskSpace(
    "/data",
    () => now,
    100,
    () => ++measured * 60,
    200,
  );
  assert.equal(space.short(), true, "60 free of a reserve of 100");
  for (let i = 0; i < 1000; i++) space.short();
  assert.equal(measured, 1);
  now = 199;
  assert.equal(space.freeBytes(), 60);
  now = 200;
  assert.equal(space.short(), false, "120 free, measured again");
  assert.equal(measured, 2);
  // After a write (a checkpoint may have taken megabytes), the next question measures again.
  space.wrote();
  space.short();
  space.short();
  assert.equal(measured, 3);
});

it("a node whose disk filled before its raft.db was stamped starts all the same", {
  skip: tmpfsUnavailable() ?? false,
}, async () => {
  const disk = Tmpfs.mount(16 * 1024 * 1024);
  try {
    const dir = join(disk.path, "data");
    mkdirSync(dir);
    // The first start makes node.id before raft.db exists: the stamp comes at the next start.
    assert.equal(loadNodeIdentity(dir, () => "node1a").id, "node1a");
    const log = await RaftCommandLog.openLone(dir, "node1a", systemClock);
    await log.propose({ type: "cluster.init", at: 1, clusterId: "c", ...apiTokenFields("t") });
    log.close();
    disk.fill("filler");
    assert.deepEqual(
      loadNodeIdentity(dir, () => "other"),
      { id: "node1a", retired: null },
    );
  } finally {
    disk.unmount();
  }
});

// The command log of a one-member cluster (what `shoal agent` runs until a second node joins):
// acknowledged means durable (answered only after the flush), a restart resumes, state.db is
// rebuilt from the log, and a SIGKILL loses nothing acknowledged.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { waitFor } from "../testing/wait.ts";
import { RaftCommandLog } from "./raft-command-log.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";
import { systemClock } from "./system-clock.ts";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-lone-"));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Holds every flush of raft.db until released (`held`, in order); `restore` puts the real flush
 * back and releases what is held.
 */
function holdFlushes(): { held: (() => void)[]; restore: () => void } {
  const realFlush = LibsqlRaftLogStore.prototype.flush;
  const held: (() => void)[] = [];
  LibsqlRaftLogStore.prototype.flush = function (this: LibsqlRaftLogStore) {
    return new Promise<void>((resolve) => held.push(resolve)).then(() => realFlush.call(this));
  };
  const restore = () => {
    LibsqlRaftLogStore.prototype.flush = realFlush;
    for (const release of held.splice(0)) release();
  };
  return { held, restore };
}

const flushesHeld = (held: unknown[], count: number) =>
  waitFor(`${count} held flush(es)`, async () => held.length === count, 3000, 5);

const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };
const open = (dir: string) => RaftCommandLog.openLone(dir, "lone1", systemClock);

async function writeTwo(log: RaftCommandLog): Promise<void> {
  const init = await log.propose({
    type: "cluster.init",
    at: 1,
    clusterId: "c1",
    ...apiTokenFields("t"),
  });
  assert.equal(init.ok, true);
  const created = await log.propose({
    type: "service.create",
    at: 2,
    name: "web",
    replicas: 2,
    containers: [container],
  });
  assert.equal(created.ok, true);
}

describe("a one-member cluster's command log", () => {
  it("leads at once and resumes after a restart, applying nothing twice", async () => {
    const dir = tempDir();
    const first = await open(dir);
    await writeTwo(first);
    const applied = first.view().appliedIndex();
    const events = first.view().events().length;
    first.close();
    const second = await open(dir);
    // The restart adds its own no-op entry for its new term; nothing else is applied again.
    assert.equal(second.view().appliedIndex(), applied + 1);
    assert.equal(second.view().services().length, 1);
    assert.equal(second.view().events().length, events);
    second.close();
  });

  it("answers a write only after raft.db is flushed, and batches what arrives meanwhile", async () => {
    const log = await open(tempDir());
    await writeTwo(log);
    const { held, restore } = holdFlushes();
    try {
      const before = log.view().appliedIndex();
      let answered = 0;
      const scale = (replicas: number) =>
        log.propose({ type: "service.update", at: 3, name: "web", replicas }).then((result) => {
          assert.equal(result.ok, true);
          answered += 1;
        });
      const first = scale(3);
      await flushesHeld(held, 1);
      const more = [scale(4), scale(5), scale(6)];
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(answered, 0, "a write was answered before its flush");
      assert.equal(log.view().appliedIndex(), before, "a write was applied before its flush");
      held.shift()?.();
      await first;
      // The three that waited during the first flush travel in one batch: one more flush.
      await flushesHeld(held, 1);
      assert.equal(answered, 1);
      held.shift()?.();
      await Promise.all(more);
      assert.equal(log.view().service("web")?.replicas, 6);
    } finally {
      restore();
      log.close();
    }
  });

  it("refuses work beyond its bound while a flush stalls, and takes the rest after it", async () => {
    const log = await open(tempDir());
    await writeTwo(log);
    const { held, restore } = holdFlushes();
    try {
      const scale = (replicas: number) =>
        log.propose({ type: "service.update", at: 3, name: "web", replicas });
      const first = scale(1);
      await flushesHeld(held, 1);
      const queued = Array.from({ length: limits.logWaitingMax }, (_, i) => scale(i % 50));
      const stillQueued = new Promise<{ ok: true }>((resolve) =>
        setTimeout(() => resolve({ ok: true }), 1000),
      );
      const refused = await Promise.race([scale(7), stillQueued]);
      assert.equal(refused.ok, false);
      assert.equal(refused.ok ? "" : refused.code, "E_NOT_READY");
      restore();
      assert.equal((await first).ok, true);
      const results = await Promise.all(queued);
      assert.ok(
        results.some((result) => result.ok),
        "the queued writes went on after the flush",
      );
    } finally {
      restore();
      log.close();
    }
  });

  it("rebuilds state.db from the log when the file is gone", async () => {
    const dir = tempDir();
    const first = await open(dir);
    await writeTwo(first);
    first.close();
    for (const suffix of ["", "-wal", "-shm"]) {
      rmSync(join(dir, `state.db${suffix}`), { force: true });
    }
    const second = await open(dir);
    assert.equal(second.view().service("web")?.replicas, 2);
    assert.equal(second.view().cluster()?.id, "c1");
    second.close();
  });

  it("loses nothing acknowledged when the process is killed with SIGKILL", async () => {
    const dir = tempDir();
    const fixture = join(import.meta.dirname, "fixtures", "propose-loop.ts");
    const child = spawn(process.execPath, ["--import", "tsx", fixture, dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acknowledged: string[] = [];
    let buffered = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        acknowledged.push(...lines);
        if (acknowledged.length >= 200) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
      child.on("error", reject);
    });
    assert.ok(acknowledged.length >= 200, "the fixture acknowledged fewer commands than expected");
    const log = await open(dir);
    const names = new Set(
      log
        .view()
        .services()
        .map((s) => s.name),
    );
    for (const name of acknowledged) {
      assert.ok(names.has(name), `${name} was acknowledged but is lost`);
    }
    log.close();
  });
});

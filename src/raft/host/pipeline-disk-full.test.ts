// A full disk under the Raft host: a lone leader whose log disk refuses writes, whose flushes
// fail and lose what they carried, or whose state machine refuses to apply. The host must not
// crash, must refuse new proposals with E_NO_SPACE, must apply nothing in part, and once the disk
// takes writes again must persist and apply every entry exactly once and answer the waiters.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { noSpaceError, type Result } from "../../core/errors.ts";
import { noImages } from "../../testing/host-stubs.ts";
import { ManualTimers } from "../../testing/manual-timers.ts";
import type { LogStoreBatch } from "../log-store.ts";
import { MemoryLogStore } from "../memory-log-store.ts";
import { SeededRandom } from "../seeded-random.ts";
import type { Entry } from "../types.ts";
import { RaftPipeline } from "./pipeline.ts";
import type { HostDiskSpace } from "./ports.ts";
import { ClientSessions } from "./sessions.ts";

const retryMs = 1000;

/** Which part of the disk is full right now. */
interface Full {
  write: boolean;
  flush: boolean;
  apply: boolean;
  image: boolean;
}

const enospc = () => Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
const sqliteFull = () =>
  Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });

/** A lone voter's host over a disk that a test fills and empties. */
function loneHost(options: { snapshotEntries?: number; space?: HostDiskSpace } = {}) {
  const full: Full = { write: false, flush: false, apply: false, image: false };
  const timers = new ManualTimers();
  /** What survives a crash: batches whose flush succeeded. */
  const durable = new MemoryLogStore();
  /** Written since the last flush: lost if that flush fails (the page cache dropped them). */
  let unflushed: LogStoreBatch[] = [];
  const applied: Entry[] = [];
  const fatals: unknown[] = [];
  const takes: number[] = [];
  let flushes = 0;
  const pipeline = new RaftPipeline({
    core: { id: "a", bootstrap: { voters: ["a"], learners: [] }, random: new SeededRandom(1) },
    state: durable.load(),
    disk: {
      load: () => durable.load(),
      write: (batch) => {
        if (full.write) throw noSpaceError("writing the log", enospc());
        unflushed.push(batch);
      },
      flush: (done, failed) => {
        flushes++;
        const batches = unflushed;
        unflushed = [];
        timers.soon(() => {
          if (full.flush) return failed(noSpaceError("flushing the log", enospc()));
          for (const batch of batches) durable.save(batch);
          done();
        });
      },
      close: () => {},
    },
    images: {
      ...noImages(),
      has: (index) => takes.includes(index),
      newestIndex: () => takes.at(-1) ?? null,
      take: (index) => {
        if (full.image) throw noSpaceError("taking a snapshot image", enospc());
        takes.push(index);
      },
    },
    machine: {
      appliedIndex: () => applied.at(-1)?.index ?? 0,
      applyAll: (entries): (Result<unknown> | null)[] => {
        // One transaction: the full disk refuses all of it, or it applies all of it.
        if (full.apply) throw noSpaceError("applying entries", sqliteFull());
        applied.push(...entries);
        return entries.map((entry) =>
          entry.kind === "command" ? { ok: true, value: `applied ${entry.index}` } : null,
        );
      },
      restore: () => {},
    },
    network: { send: () => {} },
    timers,
    tickMs: 10,
    waitingMax: 100,
    snapshotEntries: options.snapshotEntries ?? 0,
    diskFullRetryMs: retryMs,
    observer: { warn: () => {} },
    fatal: (error) => fatals.push(error),
  });
  const sessions = new ClientSessions<string>({
    pipeline,
    machine: {
      appliedIndex: () => applied.at(-1)?.index ?? 0,
      applyAll: () => [],
      restore: () => {},
    },
    timers,
    encode: (command) => new TextEncoder().encode(command),
    newRequestId: () => "r",
    tickMs: 10,
    proposeTimeoutMs: 60_000,
    leaderHoldMs: 1000,
    forwardTimeoutMs: 1800,
    space: options.space,
  });
  /** Proposes `command`, and keeps the answer once it comes. */
  const propose = (command: string) => {
    const answer: { result: Result<unknown> | null } = { result: null };
    void sessions.proposeHere(command).then((result) => {
      answer.result = result;
    });
    return answer;
  };
  const commandsIn = (entries: readonly Entry[]) =>
    entries
      .filter((entry) => entry.kind === "command")
      .map((entry) => new TextDecoder().decode(entry.data));
  return {
    full,
    timers,
    pipeline,
    fatals,
    takes,
    propose,
    flushes: () => flushes,
    applied: () => commandsIn(applied),
    appliedIndexes: () => applied.map((entry) => entry.index),
    durable: () => commandsIn(durable.load().entries),
    async lead(): Promise<void> {
      pipeline.start();
      await timers.advance(2000);
      assert.equal(pipeline.core.status().role, "leader");
    },
  };
}

type Host = ReturnType<typeof loneHost>;

/** The answer of a proposal refused because the disk is full. */
function assertNoSpace(answer: { result: Result<unknown> | null }): void {
  assert.ok(answer.result !== null, "a proposal while the disk is full is answered at once");
  assert.equal(answer.result.ok, false);
  if (!answer.result.ok) assert.equal(answer.result.code, "E_NO_SPACE");
}

/**
 * While `part` of the disk is full, a first write is held (not answered, not applied) and a
 * second is refused; once the disk has room again, the first is applied once and answered.
 */
async function holdsAndRecovers(host: Host, part: keyof Full): Promise<void> {
  await host.lead();
  const before = host.propose("before");
  await host.timers.advance(100);
  assert.deepEqual(before.result, { ok: true, value: "applied 2" });
  host.full[part] = true;
  const held = host.propose("held");
  await host.timers.advance(100);
  assert.equal(host.pipeline.diskFull, true, "the host reports the full disk");
  assert.equal(held.result, null, "the held write waits for the disk: its fate is not refused");
  assert.deepEqual(host.applied(), ["before"], "nothing of the held batch is applied");
  const refused = host.propose("refused");
  await host.timers.advance(10);
  assertNoSpace(refused);
  // The disk stays full through several tries: nothing crashes, nothing changes.
  await host.timers.advance(3 * retryMs);
  assert.deepEqual(host.applied(), ["before"]);
  assert.equal(held.result, null);
  host.full[part] = false;
  await host.timers.advance(retryMs + 100);
  assert.equal(host.pipeline.diskFull, false, "the host reports the disk recovered");
  assert.deepEqual(held.result, { ok: true, value: "applied 3" });
  const after = host.propose("after");
  await host.timers.advance(100);
  // (A lone leader that could not tick for longer than an election timeout steps down and
  // elects itself again, so `after` may follow a new term's no-op.)
  assert.equal(after.result?.ok, true);
  assert.deepEqual(host.durable(), ["before", "held", "after"], "every entry is durable, once");
  assert.deepEqual(host.applied(), ["before", "held", "after"], "every entry applied once");
  const indexes = host.appliedIndexes();
  assert.deepEqual(
    indexes,
    Array.from({ length: indexes.length }, (_, i) => i + 1),
  );
  assert.deepEqual(host.fatals, [], "a full disk is never fatal");
}

describe("the pipeline over a full disk", () => {
  it("holds a batch whose write the disk refuses, and writes it once space returns", async () => {
    await holdsAndRecovers(loneHost(), "write");
  });

  it("writes again, whole, a batch whose flush failed, before flushing it again", async () => {
    // The test's disk loses what a failed flush carried, as Linux may: only a batch written
    // again after the failure is durable.
    const host = loneHost();
    await holdsAndRecovers(host, "flush");
  });

  it("holds committed entries the state machine could not apply, and applies them once later", async () => {
    const host = loneHost();
    await holdsAndRecovers(host, "apply");
    assert.ok(host.flushes() > 0);
  });

  it("refuses work queued behind the batch the disk refused, with E_NO_SPACE", async () => {
    const host = loneHost();
    await host.lead();
    host.full.flush = true;
    const flushesBefore = host.flushes();
    const first = host.propose("first");
    host.timers.runTurn();
    assert.equal(host.flushes(), 1 + flushesBefore, "the batch carrying `first` is flushing");
    // Proposed while that flush is under way: it waits in the queue, and is refused once the
    // flush fails, not left waiting for as long as the disk stays full.
    const queued = host.propose("queued");
    assert.equal(queued.result, null);
    await host.timers.advance(50);
    assert.equal(first.result, null);
    assertNoSpace(queued);
    host.full.flush = false;
    await host.timers.advance(retryMs + 100);
    assert.deepEqual(first.result, { ok: true, value: "applied 2" });
    assert.deepEqual(host.applied(), ["first"]);
    assert.deepEqual(host.fatals, []);
  });

  it("still crashes on a flush that fails for another reason than a full disk", async () => {
    const host = loneHost();
    await host.lead();
    const broken = Object.assign(new Error("input/output error"), { code: "EIO" });
    const pipelineOptions = (host.pipeline as unknown as { options: { disk: { flush: unknown } } })
      .options;
    pipelineOptions.disk.flush = (_done: () => void, failed: (error: unknown) => void) =>
      host.timers.soon(() => failed(broken));
    host.propose("doomed");
    await host.timers.advance(50);
    assert.deepEqual(host.fatals, [broken]);
  });

  it("skips a snapshot image the full disk refuses, and takes it a retry interval later", async () => {
    const host = loneHost({ snapshotEntries: 2 });
    await host.lead();
    host.full.image = true;
    for (const command of ["one", "two", "three"]) host.propose(command);
    await host.timers.advance(retryMs / 2);
    assert.deepEqual(host.takes, [], "no image while the disk is full");
    assert.equal(host.pipeline.core.snapshotMeta.index, 0, "nothing compacted without an image");
    host.full.image = false;
    host.propose("four");
    await host.timers.advance(100);
    assert.deepEqual(host.takes, [], "not tried again before the retry interval");
    await host.timers.advance(retryMs);
    host.propose("five");
    await host.timers.advance(100);
    assert.ok(host.takes.length > 0, "taken once the interval passed");
    assert.ok(host.pipeline.core.snapshotMeta.index > 0, "and the log compacted behind it");
    assert.deepEqual(host.fatals, []);
  });

  it("refuses proposals as leader while free space is below the reserve, and takes them again after", async () => {
    let short = false;
    const host = loneHost({ space: { short: () => short, reserveBytes: 1 } });
    await host.lead();
    short = true;
    const refused = host.propose("refused");
    await host.timers.advance(50);
    assertNoSpace(refused);
    assert.equal(host.pipeline.diskFull, false, "the log itself is not held");
    short = false;
    const accepted = host.propose("accepted");
    await host.timers.advance(50);
    assert.deepEqual(accepted.result, { ok: true, value: "applied 2" });
    assert.deepEqual(host.applied(), ["accepted"]);
  });
});

describe("the pipeline's lease events", () => {
  it("tells a listener when a lone voter gains the lease, and that it ends when the host closes", async () => {
    const host = loneHost();
    const heard: string[] = [];
    host.pipeline.onLeadership((change) => heard.push(`${change.leading} ${change.term}`));
    await host.lead();
    const term = host.pipeline.core.status().term;
    assert.deepEqual(heard, [`true ${term}`]);
    host.pipeline.close();
    await host.timers.settle();
    assert.deepEqual(heard, [`true ${term}`, `false ${term}`]);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { noImages, recordingMachine } from "../../testing/host-stubs.ts";
import type { LogStoreBatch } from "../log-store.ts";
import { SeededRandom } from "../seeded-random.ts";
import type { Entry, Message, PersistentState } from "../types.ts";
import { RaftPipeline } from "./pipeline.ts";
import type { HostTimers } from "./ports.ts";

const data = new TextEncoder().encode("x");
const entry = (index: number, term: number): Entry => ({ index, term, kind: "command", data });

/** Leader a's append to b in `term`, after `prev`, committing through `commitIndex`. */
function append(
  term: number,
  prev: { index: number; term: number },
  entries: Entry[],
  commitIndex: number,
): Message {
  const { index: prevIndex, term: prevTerm } = prev;
  return {
    type: "append",
    from: "a",
    to: "b",
    term,
    prevIndex,
    prevTerm,
    entries,
    commitIndex,
    round: 1,
  };
}

/** A follower's host whose disk flushes only when the test says so. */
function follower(state: PersistentState) {
  const applied: Entry[] = [];
  const flushes: (() => void)[] = [];
  const written: LogStoreBatch[] = [];
  const sent: Message[] = [];
  const soon: (() => void)[] = [];
  const timers: HostTimers = {
    monotonic: () => 1000,
    after: () => () => {},
    every: () => () => {},
    soon: (callback) => soon.push(callback),
  };
  const pipeline = new RaftPipeline({
    core: {
      id: "b",
      bootstrap: { voters: ["a", "b", "c"], learners: [] },
      random: new SeededRandom(1),
    },
    state,
    disk: {
      load: () => state,
      write: (batch) => written.push(batch),
      flush: (done) => flushes.push(done),
      close: () => {},
    },
    images: noImages(),
    machine: recordingMachine(applied, () => ({ ok: true, value: null })),
    network: { send: (messages) => sent.push(...messages) },
    timers,
    tickMs: 10,
    waitingMax: 100,
    snapshotEntries: 0,
    diskFullRetryMs: 1000,
    fatal: (error) => {
      throw error;
    },
  });
  const runSoon = () => {
    for (const callback of soon.splice(0)) callback();
  };
  return { pipeline, applied, flushes, written, sent, runSoon };
}

/** A follower whose disk holds 1@1 (committed) and 2@1. */
function holdingOneAndTwo() {
  return follower({
    hardState: { term: 1, votedFor: "", commitIndex: 1 },
    snapshot: null,
    entries: [entry(1, 1), entry(2, 1)],
  });
}

function appliedOf(host: { applied: readonly Entry[] }): string[] {
  return host.applied.map((e) => `${e.index}@${e.term}`);
}

describe("the ready/flush pipeline", () => {
  it("applies early only entries on disk as they are: never one a batch in flight replaces", () => {
    // On disk: 1@1 committed and applied, and 2@1, which a new leader's entry 2@2 replaces.
    const host = holdingOneAndTwo();
    host.pipeline.start();
    assert.deepEqual(appliedOf(host), ["1@1"]);
    host.pipeline.receive([append(2, { index: 1, term: 1 }, [entry(2, 2)], 2)]);
    host.runSoon();
    assert.equal(host.flushes.length, 1, "the batch that replaces 2@1 is flushing");
    // Applied now, 2@2 would be in the state while the disk still holds 2@1: a crash here
    // would bring the member back holding 2@1 as committed.
    assert.deepEqual(appliedOf(host), ["1@1"]);
    assert.ok(
      !host.sent.some((m) => m.type === "appendResponse"),
      "no acknowledgement before the flush",
    );
    host.flushes.shift()?.();
    assert.deepEqual(appliedOf(host), ["1@1", "2@2"]);
    assert.ok(host.sent.some((m) => m.type === "appendResponse" && m.success && m.index === 2));
  });

  it("applies early what the disk already holds while a later batch flushes", () => {
    // On disk: 1@1 and 2@1, both in the leader's log; the append adds 3@1 and commits 2.
    const host = holdingOneAndTwo();
    host.pipeline.start();
    host.pipeline.receive([append(1, { index: 2, term: 1 }, [entry(3, 1)], 2)]);
    host.runSoon();
    assert.equal(host.flushes.length, 1);
    assert.deepEqual(appliedOf(host), ["1@1", "2@1"]);
  });
});

// One contract suite for every Raft log store (the libSQL store and the in-memory twin): what
// a save() leaves behind must come back from load(), also after the store is reopened.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RaftLogStore } from "../../raft/log-store.ts";
import type { Entry, SnapshotMeta } from "../../raft/types.ts";

export interface LogStoreFactory {
  /** A new, empty store. */
  create(): RaftLogStore;
  /** Closes the store and opens the same durable data again. */
  reopen(store: RaftLogStore): RaftLogStore;
}

const encoder = new TextEncoder();
const membership = { voters: ["a", "b", "c"], learners: ["d"] };

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, kind: "command", data: encoder.encode(text) };
}

function noBatch() {
  return { snapshot: null, compaction: null, entries: [], hardState: null };
}

function indexesAndTerms(entries: readonly Entry[]): string[] {
  return entries.map((item) => `${item.index}@${item.term}`);
}

export function runLogStoreContract(name: string, factory: LogStoreFactory): void {
  describe(`log store contract: ${name}`, () => {
    it("starts empty", () => {
      const store = factory.create();
      const state = store.load();
      assert.deepEqual(state.hardState, { term: 0, votedFor: "", commitIndex: 0 });
      assert.equal(state.snapshot, null);
      assert.deepEqual(state.entries, []);
      store.close();
    });

    it("keeps entries and hard state across a reopen", () => {
      let store = factory.create();
      const hardState = { term: 2, votedFor: "b", commitIndex: 1 };
      store.save({ ...noBatch(), entries: [entry(1, 1), entry(2, 2)], hardState });
      store = factory.reopen(store);
      const state = store.load();
      assert.deepEqual(state.hardState, hardState);
      assert.deepEqual(indexesAndTerms(state.entries), ["1@1", "2@2"]);
      assert.equal(new TextDecoder().decode(state.entries[1]?.data), "e2");
      store.close();
    });

    it("replaces the stored suffix from the first new entry", () => {
      let store = factory.create();
      store.save({ ...noBatch(), entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
      store.save({ ...noBatch(), entries: [entry(2, 2)] });
      store = factory.reopen(store);
      assert.deepEqual(indexesAndTerms(store.load().entries), ["1@1", "2@2"]);
      store.close();
    });

    it("round-trips every kind of entry and arbitrary bytes", () => {
      let store = factory.create();
      const bytes = new Uint8Array([0, 255, 1, 0, 128]);
      const entries: Entry[] = [
        { index: 1, term: 1, kind: "noop", data: new Uint8Array(0) },
        { index: 2, term: 1, kind: "command", data: bytes },
        { index: 3, term: 1, kind: "membership", data: encoder.encode(JSON.stringify(membership)) },
      ];
      store.save({ ...noBatch(), entries });
      store = factory.reopen(store);
      const loaded = store.load().entries;
      assert.deepEqual(
        loaded.map((item) => [item.kind, [...item.data]]),
        entries.map((item) => [item.kind, [...item.data]]),
      );
      store.close();
    });

    it("compacts behind a snapshot and keeps its metadata", () => {
      let store = factory.create();
      store.save({ ...noBatch(), entries: [1, 2, 3, 4].map((index) => entry(index, 1)) });
      const compaction: SnapshotMeta = { index: 2, term: 1, membership };
      store.save({ ...noBatch(), compaction });
      store = factory.reopen(store);
      const state = store.load();
      assert.deepEqual(state.snapshot, compaction);
      assert.deepEqual(indexesAndTerms(state.entries), ["3@1", "4@1"]);
      store.save({ ...noBatch(), entries: [entry(5, 2)] });
      assert.deepEqual(indexesAndTerms(store.load().entries), ["3@1", "4@1", "5@2"]);
      store.close();
    });

    it("an installed snapshot replaces the whole log", () => {
      let store = factory.create();
      store.save({ ...noBatch(), entries: [entry(1, 1), entry(2, 1)] });
      const snapshot: SnapshotMeta = { index: 10, term: 3, membership };
      store.save({ ...noBatch(), snapshot, entries: [entry(11, 3)] });
      store = factory.reopen(store);
      const state = store.load();
      assert.deepEqual(state.snapshot, snapshot);
      assert.deepEqual(indexesAndTerms(state.entries), ["11@3"]);
      store.close();
    });

    it("refuses a gap and leaves the store as it was (the batch is atomic)", () => {
      const store = factory.create();
      const hardState = { term: 1, votedFor: "a", commitIndex: 0 };
      store.save({ ...noBatch(), entries: [entry(1, 1)], hardState });
      const compaction: SnapshotMeta = { index: 1, term: 1, membership };
      assert.throws(() =>
        store.save({
          snapshot: null,
          compaction,
          entries: [entry(5, 2)],
          hardState: { term: 2, votedFor: "b", commitIndex: 1 },
        }),
      );
      const state = store.load();
      assert.deepEqual(state.hardState, hardState);
      assert.equal(state.snapshot, null);
      assert.deepEqual(indexesAndTerms(state.entries), ["1@1"]);
      store.close();
    });
  });
}

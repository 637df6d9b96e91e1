// The in-memory twin of the log store, for the simulator and tests. What it holds is what a
// crash keeps: the simulator discards the core but keeps this object.
import { assert } from "../core/assert.ts";
import type { LogStoreBatch, RaftLogStore } from "./log-store.ts";
import type { Entry, HardState, PersistentState, SnapshotMeta } from "./types.ts";
import { noMember } from "./types.ts";

export class MemoryLogStore implements RaftLogStore {
  private hardState: HardState = { term: 0, votedFor: noMember, commitIndex: 0 };
  private snapshot: SnapshotMeta | null = null;
  private entries: Entry[] = [];
  private closed = false;
  /** Number of save() calls, for tests and benchmarks. */
  saves = 0;

  load(): PersistentState {
    assert(!this.closed, "log store is closed");
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }

  save(batch: LogStoreBatch): void {
    assert(!this.closed, "log store is closed");
    // Build the new state first, so a failed batch changes nothing (as a transaction would).
    let snapshot = this.snapshot;
    let entries = this.entries;
    if (batch.snapshot !== null) {
      snapshot = batch.snapshot;
      entries = [];
    }
    if (batch.compaction !== null) {
      const through = batch.compaction.index;
      snapshot = batch.compaction;
      entries = entries.filter((entry) => entry.index > through);
    }
    const first = batch.entries[0];
    if (first !== undefined) {
      const firstStored = (snapshot?.index ?? 0) + 1;
      assert(first.index >= firstStored, "storing entries behind the snapshot");
      assert(first.index <= firstStored + entries.length, "gap in the stored log");
      entries = [...entries.slice(0, first.index - firstStored), ...batch.entries];
    }
    this.snapshot = snapshot;
    this.entries = entries;
    if (batch.hardState !== null) this.hardState = batch.hardState;
    this.saves++;
  }

  close(): void {
    this.closed = true;
  }

  /** The highest stored index (for checkers). */
  lastIndex(): number {
    return (this.snapshot?.index ?? 0) + this.entries.length;
  }

  snapshotIndex(): number {
    return this.snapshot?.index ?? 0;
  }

  /** The durable hard state without copying the log (for checkers). */
  durableHardState(): HardState {
    return this.hardState;
  }
}

// The core's view of its log: a snapshot point, the entries after it, the commit and apply
// marks, and which entries the host has not yet persisted. Pure and in memory; the host's log
// store holds the durable copy and hands it back on restart.
import { assert } from "../core/assert.ts";
import type { Entry, SnapshotMeta } from "./types.ts";

export class RaftLog {
  private snapshotMeta: SnapshotMeta;
  private entries: Entry[];
  commitIndex: number;
  appliedIndex: number;
  /** The first index the host has not been handed for persisting. */
  unstableFrom: number;

  constructor(snapshot: SnapshotMeta, entries: readonly Entry[], commitIndex: number) {
    this.snapshotMeta = snapshot;
    this.entries = [...entries];
    entries.forEach((entry, offset) => {
      assert(entry.index === snapshot.index + 1 + offset, "stored entries are not contiguous");
      assert(entry.term >= snapshot.term, "stored entry older than the snapshot");
    });
    assert(commitIndex >= snapshot.index, "commit index behind the snapshot");
    this.commitIndex = Math.min(commitIndex, this.lastIndex);
    this.appliedIndex = snapshot.index;
    this.unstableFrom = this.lastIndex + 1;
  }

  get snapshot(): SnapshotMeta {
    return this.snapshotMeta;
  }

  get firstIndex(): number {
    return this.snapshotMeta.index + 1;
  }

  get lastIndex(): number {
    return this.snapshotMeta.index + this.entries.length;
  }

  get lastTerm(): number {
    return this.term(this.lastIndex) ?? 0;
  }

  /** The term at index, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotMeta.index) return this.snapshotMeta.term;
    if (index < this.snapshotMeta.index || index > this.lastIndex) return undefined;
    return this.entry(index).term;
  }

  entry(index: number): Entry {
    const entry = this.entries[index - this.snapshotMeta.index - 1];
    assert(entry !== undefined && entry.index === index, `no entry at ${index}`);
    return entry;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft's up-to-date rule: compare the last term first, then the last index. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** Whether a log ending at (lastIndex, lastTerm) is strictly more up-to-date than this one. */
  isAhead(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex > this.lastIndex);
  }

  /** Entries from `from` on, at most `countMax` and `bytesMax` (at least one if any). */
  slice(from: number, countMax: number, bytesMax: number): Entry[] {
    assert(from >= this.firstIndex, "slice of compacted entries");
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex && result.length < countMax; index++) {
      const entry = this.entry(index);
      bytes += entry.data.byteLength;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** Appends entries, replacing any suffix they overwrite. Committed entries are never replaced. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.commitIndex, "truncating committed entries");
    assert(first.index <= this.lastIndex + 1, "gap in the log");
    this.entries.length = first.index - this.firstIndex;
    for (const entry of entries) {
      assert(entry.index === this.lastIndex + 1, "appended entries are not contiguous");
      assert(entry.term >= this.lastTerm, "appended entry older than the last one");
      this.entries.push(entry);
    }
    this.unstableFrom = Math.min(this.unstableFrom, first.index);
  }

  /** The index of the first entry that differs from or extends this log, or 0 if none does. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (entry.index <= this.snapshotMeta.index) continue;
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * A follower's rejection hint: the last index at most `index` whose term is at most `term`,
   * so the leader can skip a whole conflicting term in one round trip.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let candidate = Math.min(index, this.lastIndex);
    while (candidate > this.snapshotMeta.index) {
      const candidateTerm = this.term(candidate) ?? 0;
      if (candidateTerm <= term) return { index: candidate, term: candidateTerm };
      candidate--;
    }
    return { index: this.snapshotMeta.index, term: this.snapshotMeta.term };
  }

  commitTo(index: number): void {
    assert(index <= this.lastIndex, "commit beyond the log");
    if (index > this.commitIndex) this.commitIndex = index;
  }

  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex) return [];
    return this.entries.slice(this.unstableFrom - this.firstIndex);
  }

  stableTo(index: number): void {
    this.unstableFrom = Math.max(this.unstableFrom, index + 1);
  }

  committedToApply(through: number, countMax: number, bytesMax: number): Entry[] {
    const from = this.appliedIndex + 1;
    if (from > through) return [];
    return this.slice(from, Math.min(countMax, through - from + 1), bytesMax);
  }

  appliedTo(index: number): void {
    assert(index >= this.appliedIndex, "applied index went back");
    this.appliedIndex = index;
  }

  /** Drops entries up to the snapshot index, which the host's state machine has captured. */
  compact(snapshot: SnapshotMeta): void {
    assert(snapshot.index > this.snapshotMeta.index && snapshot.index <= this.appliedIndex);
    assert(this.term(snapshot.index) === snapshot.term, "snapshot term does not match the log");
    this.entries = this.entries.slice(snapshot.index - this.snapshotMeta.index);
    this.snapshotMeta = snapshot;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(snapshot: SnapshotMeta): void {
    assert(snapshot.index > this.commitIndex, "restoring a snapshot behind the commit index");
    this.entries = [];
    this.snapshotMeta = snapshot;
    this.commitIndex = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
  }

  /** Entries in [from, through], newest last, for scanning back (membership lookups). */
  entriesBetween(from: number, through: number): Entry[] {
    const start = Math.max(from, this.firstIndex);
    const end = Math.min(through, this.lastIndex);
    if (start > end) return [];
    return this.entries.slice(start - this.firstIndex, end - this.firstIndex + 1);
  }
}

// The log-storage port: where a member keeps its Raft log, term and vote, and snapshot
// metadata. Implementations: the libSQL store over raft.db and the in-memory twin.
import type { Entry, HardState, PersistentState, Ready, SnapshotMeta } from "./types.ts";

/** One ready batch's worth of persistence, applied atomically and durably. */
export interface LogStoreBatch {
  /** A snapshot installed from the leader: it replaces the whole log. */
  readonly snapshot: SnapshotMeta | null;
  /** The log was compacted behind this snapshot: entries up to its index go away. */
  readonly compaction: SnapshotMeta | null;
  /** Entries to store; stored entries at or after the first one's index are replaced. */
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

export interface RaftLogStore {
  /** The durable state, as the core needs it to restart. */
  load(): PersistentState;
  /** Applies the batch atomically; when it returns, the batch is on disk. */
  save(batch: LogStoreBatch): void;
  close(): void;
}

export function batchOf(ready: Ready): LogStoreBatch {
  return {
    snapshot: ready.snapshot?.meta ?? null,
    compaction: ready.compaction,
    entries: ready.entries,
    hardState: ready.hardState,
  };
}

export function isEmptyBatch(batch: LogStoreBatch): boolean {
  return (
    batch.snapshot === null &&
    batch.compaction === null &&
    batch.entries.length === 0 &&
    batch.hardState === null
  );
}

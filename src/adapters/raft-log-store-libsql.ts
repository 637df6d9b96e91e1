// The Raft log store over raft.db (libSQL): entries, term and vote, snapshot metadata. WAL with
// synchronous=NORMAL, and the WAL file flushed by the store itself: `save()` flushes before it
// returns, while `write()` then `flush()` lets the flush run off the event loop. Either way a
// batch is on disk before anything that depends on it is sent or applied. (A checkpoint under
// NORMAL syncs the WAL before and the database after, so nothing it moves is left unsynced.)
import { closeSync, constants, fdatasync, fdatasyncSync, openSync } from "node:fs";
import type Libsql from "libsql";
import { AssertionError, assert } from "../core/assert.ts";
import type { LogStoreBatch, RaftLogStore } from "../raft/log-store.ts";
import { decodeMembership, encodeMembership } from "../raft/membership.ts";
import type {
  Entry,
  EntryKind,
  HardState,
  Membership,
  PersistentState,
  SnapshotMeta,
} from "../raft/types.ts";
import { noMember } from "../raft/types.ts";
import { rollBack } from "../state/db.ts";
import { openDatabase } from "./libsql.ts";

const schema = `
  CREATE TABLE IF NOT EXISTS raft_entries (
    log_index INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('noop', 'command', 'membership')),
    data BLOB NOT NULL
  );
  CREATE TABLE IF NOT EXISTS raft_hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    term INTEGER NOT NULL,
    voted_for TEXT NOT NULL,
    commit_index INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS raft_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    log_index INTEGER NOT NULL,
    term INTEGER NOT NULL,
    membership BLOB NOT NULL
  );
`;

type Database = Libsql.Database;
type Statement = Libsql.Statement<unknown[]>;

interface EntryRow {
  log_index: number;
  term: number;
  kind: string;
  data: Uint8Array;
}

function syncFile(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class LibsqlRaftLogStore implements RaftLogStore {
  private readonly db: Database;
  private readonly statements: Record<
    | "insertEntry"
    | "deleteFrom"
    | "deleteThrough"
    | "deleteAll"
    | "putHardState"
    | "putSnapshot"
    | "snapshotIndex"
    | "lastIndex",
    Statement
  >;

  /** The WAL file, kept open to flush it: an fsync of any descriptor syncs the whole file. */
  private readonly walFd: number;

  constructor(path: string) {
    this.db = openDatabase(path, "NORMAL");
    this.db.exec(schema);
    this.walFd = openSync(`${path}-wal`, constants.O_RDONLY | constants.O_CREAT);
    // What a process that crashed wrote but did not flush may still be in the page cache only:
    // read as durable, it could be acknowledged without a flush and then lost to a power cut.
    // Flush it before anything is read.
    fdatasyncSync(this.walFd);
    syncFile(path);
    this.statements = {
      insertEntry: this.db.prepare(
        "INSERT INTO raft_entries (log_index, term, kind, data) VALUES (?, ?, ?, ?)",
      ),
      deleteFrom: this.db.prepare("DELETE FROM raft_entries WHERE log_index >= ?"),
      deleteThrough: this.db.prepare("DELETE FROM raft_entries WHERE log_index <= ?"),
      deleteAll: this.db.prepare("DELETE FROM raft_entries"),
      putHardState: this.db.prepare(
        `INSERT INTO raft_hard_state (id, term, voted_for, commit_index) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET term = excluded.term, voted_for = excluded.voted_for,
         commit_index = excluded.commit_index`,
      ),
      putSnapshot: this.db.prepare(
        `INSERT INTO raft_snapshot (id, log_index, term, membership) VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET log_index = excluded.log_index, term = excluded.term,
         membership = excluded.membership`,
      ),
      snapshotIndex: this.db.prepare("SELECT log_index FROM raft_snapshot WHERE id = 1"),
      lastIndex: this.db.prepare("SELECT max(log_index) AS last_index FROM raft_entries"),
    };
  }

  /**
   * Records a new cluster's first membership as the base at index 0, the same base the core
   * starts from with `bootstrap`: after a restart, a member that never changed its configuration
   * still knows it. Written once; a store with any history keeps what it has.
   */
  saveBootstrap(membership: Membership): void {
    this.db
      .prepare(
        `INSERT INTO raft_snapshot (id, log_index, term, membership) VALUES (1, 0, 0, ?)
         ON CONFLICT (id) DO NOTHING`,
      )
      // A lone Uint8Array argument would be taken for named parameters (libsql panics): wrap it.
      .run([encodeMembership(membership)]);
    fdatasyncSync(this.walFd);
  }

  load(): PersistentState {
    return {
      hardState: this.loadHardState(),
      snapshot: this.loadSnapshot(),
      entries: this.loadEntries(),
    };
  }

  /** Writes the batch and flushes it: on disk when this returns. */
  save(batch: LogStoreBatch): void {
    this.write(batch);
    fdatasyncSync(this.walFd);
  }

  /** Writes the batch in one transaction, not yet flushed: `flush()` makes it durable. */
  write(batch: LogStoreBatch): void {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      this.writeBatch(batch);
      this.db.exec("COMMIT");
    } catch (error) {
      // Not a plain ROLLBACK: after SQLITE_FULL, SQLite has rolled back already, and a second
      // one would fail and hide the cause (a node crashed on "no transaction is active").
      rollBack(this.db);
      throw error;
    }
  }

  /** Flushes everything written so far to disk, on libuv's thread pool. */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => {
      fdatasync(this.walFd, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    this.db.close();
    closeSync(this.walFd);
  }

  /** The durability settings in force (the store flushes the WAL itself, see the top). */
  durability(): { journalMode: string; synchronous: number } {
    const journal = this.db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
    const synchronous = this.db.prepare("PRAGMA synchronous").get() as { synchronous: number };
    return { journalMode: journal.journal_mode, synchronous: synchronous.synchronous };
  }

  private writeBatch(batch: LogStoreBatch): void {
    const stored = this.statements.snapshotIndex.get() as { log_index: number } | undefined;
    let snapshotIndex = stored?.log_index ?? 0;
    if (batch.snapshot !== null) {
      this.statements.deleteAll.run();
      this.writeSnapshot(batch.snapshot);
      snapshotIndex = batch.snapshot.index;
    }
    if (batch.compaction !== null) {
      this.statements.deleteThrough.run(batch.compaction.index);
      this.writeSnapshot(batch.compaction);
      snapshotIndex = batch.compaction.index;
    }
    const first = batch.entries[0];
    if (first !== undefined) {
      const row = this.statements.lastIndex.get() as { last_index: number | null };
      const lastStored = Math.max(row.last_index ?? 0, snapshotIndex);
      assert(first.index > snapshotIndex, "storing entries behind the snapshot");
      assert(first.index <= lastStored + 1, "gap in the stored log");
      // Appending after the last entry is the common case; only a conflict truncates.
      if (first.index <= lastStored) this.statements.deleteFrom.run(first.index);
      for (const entry of batch.entries) {
        this.statements.insertEntry.run(entry.index, entry.term, entry.kind, entry.data);
      }
    }
    const hardState = batch.hardState;
    if (hardState !== null) {
      this.statements.putHardState.run(hardState.term, hardState.votedFor, hardState.commitIndex);
    }
  }

  private writeSnapshot(meta: SnapshotMeta): void {
    this.statements.putSnapshot.run(meta.index, meta.term, encodeMembership(meta.membership));
  }

  private loadHardState(): HardState {
    const row = this.db
      .prepare("SELECT term, voted_for, commit_index FROM raft_hard_state WHERE id = 1")
      .get() as { term: number; voted_for: string; commit_index: number } | undefined;
    if (row === undefined) return { term: 0, votedFor: noMember, commitIndex: 0 };
    // Map the row explicitly: libsql's .get() rows carry an extra _metadata key.
    return { term: row.term, votedFor: row.voted_for, commitIndex: row.commit_index };
  }

  private loadSnapshot(): SnapshotMeta | null {
    const row = this.db
      .prepare("SELECT log_index, term, membership FROM raft_snapshot WHERE id = 1")
      .get() as { log_index: number; term: number; membership: Uint8Array } | undefined;
    if (row === undefined) return null;
    return {
      index: row.log_index,
      term: row.term,
      membership: decodeMembership(new Uint8Array(row.membership)),
    };
  }

  private loadEntries(): Entry[] {
    const rows = this.db
      .prepare("SELECT log_index, term, kind, data FROM raft_entries ORDER BY log_index")
      .all() as EntryRow[];
    return rows.map((row) => ({
      index: row.log_index,
      term: row.term,
      kind: entryKind(row.kind, row.log_index),
      data: new Uint8Array(row.data),
    }));
  }
}

function entryKind(kind: string, index: number): EntryKind {
  if (kind === "noop" || kind === "command" || kind === "membership") return kind;
  // An unknown entry in the log is a bug, never something to skip.
  throw new AssertionError(`unknown entry kind ${kind} at ${index}`);
}

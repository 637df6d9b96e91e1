// The database handle the state machine and views are given. They never open files themselves.
import type Libsql from "libsql";

export type Database = Libsql.Database;

/** Runs `work` in one transaction: all of it commits, or none of it. */
export function inTransaction<T>(db: Database, work: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = work();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}

/** Reads one pragma's value. libsql's `pragma(..., { simple: true })` returns a row, not a value. */
export function pragmaValue(db: Database, name: string): unknown {
  const row = db.prepare(`PRAGMA ${name}`).raw().get() as unknown[] | undefined;
  return row?.[0];
}

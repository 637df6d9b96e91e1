// The database handle the state machine and views are given. They never open files themselves.
import type Libsql from "libsql";

export type Database = Libsql.Database;
type Statement = Libsql.Statement<unknown[]>;

/** Prepared statements per database: preparing costs more than running most of shoal's queries. */
const statements = new WeakMap<Database, Map<string, Statement>>();
/** The SQL of shoal's code is a fixed set; a bound keeps a mistake from growing without end. */
const statementsPerDatabaseMax = 512;

/** The prepared statement for `sql` on `db`, prepared once. Never switch it to raw mode. */
export function statement(db: Database, sql: string): Statement {
  let cache = statements.get(db);
  if (!cache) {
    cache = new Map();
    statements.set(db, cache);
  }
  const cached = cache.get(sql);
  if (cached) return cached;
  const prepared = db.prepare(sql);
  if (cache.size < statementsPerDatabaseMax) cache.set(sql, prepared);
  return prepared;
}

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

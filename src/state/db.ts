// The database handle the state machine and views are given. They never open files themselves.
import type Libsql from "libsql";

export type Database = Libsql.Database;
type Statement = Libsql.Statement<unknown[]>;

/** The SQL of shoal's code is a fixed set; a bound keeps a mistake from growing without end. */
const statementsPerDatabaseMax = 512;

export type Row = Record<string, unknown>;

interface Prepared {
  statement: Statement;
  /** Column names of a statement that returns rows (read raw, named here), else null. */
  columns: string[] | null;
}

/** Prepared statements per database: preparing costs more than running most of shoal's queries. */
const prepared = new WeakMap<Database, Map<string, Prepared>>();

/**
 * The cached statement for `sql`, in raw mode when it returns rows: naming a row's columns in
 * JavaScript costs about half of what libsql's row objects do.
 */
function preparedOf(db: Database, sql: string): Prepared {
  let cache = prepared.get(db);
  if (!cache) {
    cache = new Map();
    prepared.set(db, cache);
  }
  const cached = cache.get(sql);
  if (cached) return cached;
  const statement = db.prepare(sql);
  const columns = statement.reader ? statement.columns().map((column) => column.name) : null;
  if (columns) statement.raw(true);
  const entry = { statement, columns };
  if (cache.size < statementsPerDatabaseMax) cache.set(sql, entry);
  return entry;
}

function named(columns: string[], values: unknown[]): Row {
  const row: Row = {};
  for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i];
  return row;
}

// Parameters go to libsql as one array: its spread form flattens them first, which costs more
// than running many of shoal's statements.

/** Runs a statement that writes; returns how many rows it changed. */
export function runSql(db: Database, sql: string, params: unknown[] = []): number {
  return preparedOf(db, sql).statement.run(params).changes;
}

export function getRow(db: Database, sql: string, params: unknown[] = []): Row | undefined {
  const { statement, columns } = preparedOf(db, sql);
  const values = statement.get(params) as unknown[] | undefined;
  return values && columns ? named(columns, values) : undefined;
}

export function allRows(db: Database, sql: string, params: unknown[] = []): Row[] {
  const { statement, columns } = preparedOf(db, sql);
  const rows: Row[] = [];
  if (!columns) return rows;
  for (const values of statement.iterate(params)) rows.push(named(columns, values as unknown[]));
  return rows;
}

/** Runs `work` in one transaction: all of it commits, or none of it. */
export function inTransaction<T>(db: Database, work: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = work();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    rollBack(db);
    throw error;
  }
}

/**
 * Rolls back the transaction under way, unless SQLite already did: it does so itself on some
 * errors (SQLITE_FULL among them), and a second ROLLBACK would fail with "no transaction is
 * active", hiding the error that mattered.
 */
export function rollBack(db: Database): void {
  if (db.inTransaction) db.exec("ROLLBACK");
}

/** Reads one pragma's value. libsql's `pragma(..., { simple: true })` returns a row, not a value. */
export function pragmaValue(db: Database, name: string): unknown {
  const row = db.prepare(`PRAGMA ${name}`).raw().get() as unknown[] | undefined;
  return row?.[0];
}

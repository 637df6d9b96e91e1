// Opens libSQL files the way shoal needs them: WAL journal, a busy timeout (libsql's default is
// 0, which fails at once under a second connection), and the synchronous level the caller asks.
import Libsql from "libsql";
import { limits } from "../core/limits.ts";
import type { Database } from "../state/db.ts";

export type Synchronous = "FULL" | "NORMAL";

export function openDatabase(path: string, synchronous: Synchronous): Database {
  const db = new Libsql(path, { timeout: limits.dbBusyTimeoutMs });
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma("foreign_keys = ON");
  return db;
}

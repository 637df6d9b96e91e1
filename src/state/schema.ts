// The state machine's tables in state.db, as versioned migrations. A migration runs once, in
// order, inside one transaction; `PRAGMA user_version` records how far a database has come.
import { type Database, pragmaValue, rollBack } from "./db.ts";

interface Migration {
  version: number;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE cluster (
        id TEXT PRIMARY KEY, api_token TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE nodes (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, address TEXT NOT NULL,
        status TEXT NOT NULL, arch TEXT NOT NULL, os TEXT NOT NULL, cpus REAL NOT NULL,
        memory_mb INTEGER NOT NULL, labels TEXT NOT NULL, engine_ready INTEGER NOT NULL,
        engine_message TEXT NOT NULL, version TEXT NOT NULL, registered_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, row_version INTEGER NOT NULL);
      CREATE TABLE task_definitions (
        family TEXT NOT NULL, revision INTEGER NOT NULL, containers TEXT NOT NULL,
        created_at INTEGER NOT NULL, PRIMARY KEY (family, revision));
      CREATE TABLE services (
        name TEXT PRIMARY KEY, mode TEXT NOT NULL, replicas INTEGER NOT NULL,
        td_family TEXT NOT NULL, td_revision INTEGER NOT NULL, failure_streak INTEGER NOT NULL,
        last_failure_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL);
      CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, service TEXT,
        td_family TEXT NOT NULL, td_revision INTEGER NOT NULL, node TEXT, node_name TEXT,
        desired TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, exit_code INTEGER,
        containers TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        started_at INTEGER, stopped_at INTEGER, version INTEGER NOT NULL);
      CREATE INDEX tasks_by_node ON tasks (node);
      CREATE INDEX tasks_by_service ON tasks (service);
      CREATE INDEX tasks_by_state ON tasks (state);
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, log_index INTEGER NOT NULL, at INTEGER NOT NULL,
        type TEXT NOT NULL, message TEXT NOT NULL, service TEXT, task TEXT, node TEXT);
      INSERT INTO meta (key, value) VALUES ('applied_index', '0');
    `,
  },
  {
    version: 2,
    sql: `ALTER TABLE nodes ADD COLUMN port INTEGER NOT NULL DEFAULT 7420;`,
  },
  {
    // Results of recent forwarded writes by request id: a write resent after a failover is
    // answered with its first result instead of being applied twice (Raft thesis, 6.3).
    version: 3,
    sql: `CREATE TABLE requests (
      id TEXT PRIMARY KEY, log_index INTEGER NOT NULL, result TEXT NOT NULL);
      CREATE INDEX requests_by_index ON requests (log_index);`,
  },
  {
    // Placement, deployment and disconnect settings as one JSON column (defaults when '{}'),
    // labels people set beside the agent's own, and each service's deployments.
    version: 4,
    sql: `ALTER TABLE services ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
      ALTER TABLE services ADD COLUMN rebalance_requested INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE nodes ADD COLUMN user_labels TEXT NOT NULL DEFAULT '{}';
      ALTER TABLE nodes ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, from_revision INTEGER,
        to_revision INTEGER NOT NULL, status TEXT NOT NULL, failed_tasks INTEGER NOT NULL,
        failure_threshold INTEGER NOT NULL, is_rollback INTEGER NOT NULL, reason TEXT NOT NULL,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE INDEX deployments_by_service ON deployments (service, id);`,
  },
  {
    // A node whose disk is full takes no new tasks (node.disk sets it).
    version: 5,
    sql: "ALTER TABLE nodes ADD COLUMN disk_full INTEGER NOT NULL DEFAULT 0;",
  },
  {
    // The API token is kept as its hash and sealed under the cluster key, never in plaintext.
    version: 6,
    sql: `
      ALTER TABLE cluster ADD COLUMN api_token_hash TEXT NOT NULL DEFAULT '';
      ALTER TABLE cluster ADD COLUMN api_token_sealed TEXT NOT NULL DEFAULT '';
      ALTER TABLE cluster ADD COLUMN join_secret_sealed TEXT NOT NULL DEFAULT '';
      ALTER TABLE cluster DROP COLUMN api_token;`,
  },
  {
    // What a node lets tasks mount from its own disk (`--allow-host-path`), as it registered it.
    version: 7,
    sql: `
      ALTER TABLE nodes ADD COLUMN host_paths TEXT NOT NULL DEFAULT '{"allowed":[],"denied":[]}';
      ALTER TABLE nodes ADD COLUMN key_digest TEXT NOT NULL DEFAULT '';`,
  },
  {
    // Whether the node listens on each ingress port (node.ingress sets it).
    version: 8,
    sql: "ALTER TABLE nodes ADD COLUMN ingress TEXT NOT NULL DEFAULT '[]';",
  },
];

export function migrate(db: Database): void {
  const current = Number(pragmaValue(db, "user_version"));
  for (const migration of migrations) {
    if (migration.version <= current) continue;
    db.exec("BEGIN");
    try {
      db.exec(migration.sql);
      db.exec(`PRAGMA user_version = ${migration.version}`);
      db.exec("COMMIT");
    } catch (error) {
      rollBack(db);
      throw error;
    }
  }
}

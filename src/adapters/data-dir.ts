// The node's data dir: its identity (node.id), its libSQL files, and the API token file that
// the CLI reads. Secrets are written with mode 0600.
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { ShoalError } from "../core/errors.ts";
import { StateView } from "../state/views.ts";
import { isDiskFullError } from "./disk-space.ts";
import { joinTokenPath } from "./join-token.ts";
import { openDatabase } from "./libsql.ts";

/** The data dir holds the tokens (also inside the databases): only its owner may enter it. */
export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file whole and on disk, or not at all (write, fsync, rename, fsync the folder): a
 * crash never leaves half a token or half a snapshot behind.
 */
export function writeDurably(path: string, content: string | Uint8Array, mode = 0o644): void {
  const temporary = `${path}.tmp`;
  writeWhole(temporary, content, mode);
  renameSync(temporary, path);
  syncPath(dirname(path));
}

/**
 * Writes `path` and syncs it; a write that fails (a full disk) removes what it wrote, so the
 * space it took is free again.
 */
export function writeWhole(path: string, content: string | Uint8Array, mode = 0o644): void {
  try {
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
    syncPath(path);
  } catch (error) {
    rmSync(path, { force: true });
    throw error;
  }
}

/** What a start found of this node's identity: the id it runs under, and any id it retired. */
export interface NodeIdentity {
  id: string;
  /** Set on the start that found the Raft log lost under a kept id; null on every other start. */
  retired: RetiredIdentity | null;
}

export interface RetiredIdentity {
  /** The id the node may never use again. */
  id: string;
  /** Where that id's replica went, inside the data dir. */
  folder: string;
  /** What showed that the node had lost its Raft log. */
  reason: string;
}

const nodeIdFile = "node.id";
const raftLogFile = "raft.db";
const retiredFolder = "retired";
/** A node's replica (log, state, snapshots, their -wal and -shm): what a new member starts without. */
const replicaFile = /^(raft\.db|state\.db|snapshot\.)/;
/** A snapshot image taken at an applied index (snapshot.db, or snapshot.<index>.db). */
const snapshotImage = /^snapshot\.(\d+\.)?db$/;

/**
 * The node's id, made once and kept: a node's identity is its id, never its name. A node that
 * kept its id but lost raft.db would come back with term 0 and no vote, free to vote a second
 * time in a term it already voted in, and without the entries it acknowledged. It retires the id
 * instead (its replica is moved aside) and starts as a new member that joins as a learner, as a
 * wiped node does; the leader replaces the old id once it has been down long enough.
 */
export function loadNodeIdentity(dir: string, newId: () => string): NodeIdentity {
  const kept = readNodeId(dir);
  const raftLog = inspectRaftLog(join(dir, raftLogFile));
  refuseForeignRaftLog(dir, raftLog, kept);
  if (kept === null) return { id: createNodeId(dir, newId), retired: null };
  const reason = amnesiaOf(raftLog, tracesOf(dir, kept));
  if (reason === null) {
    if (raftLog?.owner === null && !raftLog.legacy) stampWhenThereIsRoom(dir, kept);
    return { id: kept, retired: null };
  }
  const folder = retireReplica(dir, kept);
  return { id: createNodeId(dir, newId), retired: { id: kept, folder, reason } };
}

function readNodeId(dir: string): string | null {
  const path = join(dir, nodeIdFile);
  if (!existsSync(path)) return null;
  const id = readFileSync(path, "utf8").trim();
  if (!/^[0-9a-z]{6,64}$/.test(id)) {
    throw new Error(
      `${path} does not hold a node id ("${id.slice(0, 40)}"); remove it to start as a new node`,
    );
  }
  return id;
}

function createNodeId(dir: string, newId: () => string): string {
  const id = newId();
  writeDurably(join(dir, nodeIdFile), `${id}\n`, 0o644);
  return id;
}

/** What raft.db says of itself; null when there is no raft.db. */
interface RaftLogFacts {
  /** The node whose log it is; null in a log written before logs were stamped. */
  owner: string | null;
  /** A term, an entry or a snapshot: what a member writes as soon as it takes part. */
  history: boolean;
  /** A one-node log from before fleets, which openFleet refuses. */
  legacy: boolean;
}

/**
 * Reads raft.db's tables directly, without the log store, which would create them and load every
 * entry. The names are the store's (raft-log-store-libsql.ts); data-dir.test.ts writes a real log
 * through the store, so a renamed table fails there rather than retiring every node.
 */
function inspectRaftLog(path: string): RaftLogFacts | null {
  if (!existsSync(path)) return null;
  const db = openDatabase(path, "FULL");
  try {
    const tables = tableNames(db);
    const value = (table: string, sql: string): unknown =>
      tables.has(table)
        ? ((db.prepare(sql).get() as { value: unknown } | undefined)?.value ?? null)
        : null;
    const term = Number(value("raft_hard_state", "SELECT term AS value FROM raft_hard_state") ?? 0);
    const snapshot = Number(
      value("raft_snapshot", "SELECT log_index AS value FROM raft_snapshot") ?? 0,
    );
    const entry = value("raft_entries", "SELECT log_index AS value FROM raft_entries LIMIT 1");
    const owner = value(ownerTable, `SELECT node_id AS value FROM ${ownerTable}`);
    const legacy = tables.has("entries");
    return {
      owner: typeof owner === "string" ? owner : null,
      history: legacy || term > 0 || snapshot > 0 || entry !== null,
      legacy,
    };
  } finally {
    db.close();
  }
}

function tableNames(db: ReturnType<typeof openDatabase>): Set<string> {
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
    name: string;
  }[];
  return new Set(rows.map((row) => row.name));
}

/** What the data dir shows, besides raft.db, of a node that took part in a cluster. */
interface Traces {
  /** openFleet keeps join.token only once raft.db exists, so raft.db was there. */
  joinToken: boolean;
  /** state.db or a snapshot image holds applied entries, which only a log with history gives. */
  applied: boolean;
  /** `retired/<id>/` exists: a retirement of this id began, and a crash cut it short. */
  retiring: boolean;
}

function tracesOf(dir: string, id: string): Traces {
  return {
    joinToken: existsSync(joinTokenPath(dir)),
    applied:
      readdirSync(dir).some((name) => snapshotImage.test(name)) ||
      stateAppliedIndex(join(dir, "state.db")) > 0,
    retiring: existsSync(join(dir, retiredFolder, id)),
  };
}

/** The applied index state.db records (the machine's `meta` row), read without migrating it. */
function stateAppliedIndex(path: string): number {
  if (!existsSync(path)) return 0;
  const db = openDatabase(path, "NORMAL");
  try {
    return tableNames(db).has("meta") ? new StateView(db).appliedIndex() : 0;
  } finally {
    db.close();
  }
}

/** Why a node that kept its id may not go on under it (it lost its Raft log), or null. */
function amnesiaOf(raftLog: RaftLogFacts | null, traces: Traces): string | null {
  if (traces.retiring) return "a retirement of this id began and did not finish";
  if (raftLog === null && traces.joinToken) return "raft.db is missing but join.token is kept";
  if (raftLog === null && traces.applied) return "raft.db is missing but entries were applied";
  if (raftLog !== null && !raftLog.history && traces.applied) {
    return "raft.db holds no term, vote or entry but entries were applied";
  }
  return null;
}

/**
 * The table that names the node a raft.db belongs to. A log under another node's id is neither
 * node's to use, and which file is the wrong one (node.id or raft.db) is the operator's to say.
 */
const ownerTable = "raft_owner";

function refuseForeignRaftLog(dir: string, raftLog: RaftLogFacts | null, kept: string | null) {
  const owner = raftLog?.owner ?? null;
  if (owner === null || owner === kept) return;
  const log = join(dir, raftLogFile);
  const asideHint = "or move raft.db, state.db and snapshot.db aside to start as a new node";
  throw new ShoalError(
    "E_CONFLICT",
    kept === null
      ? `${log} belongs to node ${owner} but node.id is missing: write ${owner} to node.id, ${asideHint}`
      : `${log} belongs to node ${owner}, not to node ${kept} of node.id: put back the node's own raft.db or node.id, ${asideHint}`,
    { details: { raftLogOwner: owner, nodeId: kept } },
  );
}

/**
 * A node whose disk filled before its raft.db was stamped (the stamp comes at the start after
 * the one that made raft.db) starts all the same: the stamp waits for a start with room.
 */
function stampWhenThereIsRoom(dir: string, id: string): void {
  try {
    stampRaftLog(join(dir, raftLogFile), id);
  } catch (error) {
    if (!isDiskFullError(error)) throw error;
    console.error(`shoal: no room to stamp ${join(dir, raftLogFile)} with its node; next start`);
  }
}

/** Stamps an unstamped raft.db with its node (durably: the owner table is synchronous=FULL). */
function stampRaftLog(path: string, id: string): void {
  const db = openDatabase(path, "FULL");
  try {
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${ownerTable} (
        id INTEGER PRIMARY KEY CHECK (id = 1), node_id TEXT NOT NULL)`,
    );
    db.prepare(`INSERT INTO ${ownerTable} (id, node_id) VALUES (1, ?) ON CONFLICT DO NOTHING`).run(
      id,
    );
  } finally {
    db.close();
  }
}

/**
 * Moves a retired id's replica to `retired/<id>/`, for the operator to read or remove: the new
 * member starts from an empty log and an empty state.db, never from a state ahead of its log.
 * The folder is made first, so that a crash part way is finished at the next start. join.token
 * and api.token stay: they are the cluster's, not the node's.
 */
function retireReplica(dir: string, id: string): string {
  const folder = join(dir, retiredFolder, id);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  syncPath(join(dir, retiredFolder));
  syncPath(dir);
  for (const name of readdirSync(dir).filter((file) => replicaFile.test(file))) {
    renameSync(join(dir, name), join(folder, name));
  }
  writeDurably(join(folder, nodeIdFile), `${id}\n`, 0o644);
  syncPath(dir);
  return folder;
}

/** Writes a secret only its owner may read, unless the file already holds it. */
export function writeSecret(path: string, secret: string): void {
  if (existsSync(path) && readFileSync(path, "utf8").trim() === secret) return;
  writeDurably(path, `${secret}\n`, 0o600);
}

export function writeApiToken(dir: string, token: string): void {
  writeSecret(join(dir, "api.token"), token);
}

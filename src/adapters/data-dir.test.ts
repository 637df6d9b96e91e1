// The node's identity across starts, on real files: a fresh dir gets an id, a restart keeps it,
// and a node that kept its id but lost its Raft log (amnesia) retires the id and starts clean.
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { waitFor } from "../testing/wait.ts";
import { loadNodeIdentity } from "./data-dir.ts";
import { openDatabase } from "./libsql.ts";
import { RaftCommandLog } from "./raft-command-log.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";
import { systemClock } from "./system-clock.ts";

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-data-dir-"));
  dirs.push(dir);
  return dir;
}

/** Ids in order, so a test knows which one a start makes. */
function ids(...made: string[]): () => string {
  return () => {
    const id = made.shift();
    assert.ok(id, "made more ids than expected");
    return id;
  };
}

const joinToken = `shoal2.cluster1.${"ab".repeat(32)}.secret\n`;

/**
 * A member's data dir as a run leaves it: node.id, join.token, and a real raft.db, state.db and
 * a snapshot image, written by the real log (a lone leader with entries applied and a snapshot).
 */
async function memberDir(id: string): Promise<string> {
  const dir = freshDir();
  assert.equal(loadNodeIdentity(dir, ids(id)).id, id);
  const log = await RaftCommandLog.openLone(dir, id, systemClock);
  const init = await log.propose({
    type: "cluster.init",
    at: 1,
    clusterId: "c1",
    ...apiTokenFields("a"),
  });
  assert.equal(init.ok, true);
  log.snapshotNow();
  await waitFor("a snapshot image", async () => snapshotImages(dir).length > 0);
  log.close();
  writeFileSync(join(dir, "join.token"), joinToken, { mode: 0o600 });
  writeFileSync(join(dir, "api.token"), "api\n", { mode: 0o600 });
  assert.ok(existsSync(join(dir, "state.db")));
  return dir;
}

/** The snapshot images in `dir`: snapshot.db, or snapshot.<index>.db as the log now names them. */
function snapshotImages(dir: string): string[] {
  return readdirSync(dir).filter((name) => /^snapshot\.(\d+\.)?db$/.test(name));
}

function raftLogOwner(dir: string): string | null {
  const db = openDatabase(join(dir, "raft.db"), "NORMAL");
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'raft_owner'").get();
    if (!table) return null;
    const row = db.prepare("SELECT node_id FROM raft_owner").get() as { node_id: string };
    return row.node_id;
  } finally {
    db.close();
  }
}

/** The log a node opens in `dir` under `id`, as openFleet opens a joiner's. */
function openJoiner(dir: string, id: string): RaftCommandLog {
  return new RaftCommandLog({
    nodeId: id,
    dataDir: dir,
    clock: systemClock,
    random: new SeededRandom(1),
    sender: { send() {} },
  });
}

/** Files of the replica left in the data dir (none after a retirement). */
function replicaFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => /^(raft|state|snapshot)\./.test(name));
}

describe("the node's identity", () => {
  it("gives a fresh data dir a new id and keeps it in node.id", () => {
    const dir = freshDir();
    const identity = loadNodeIdentity(dir, ids("fresh01"));
    assert.deepEqual(identity, { id: "fresh01", retired: null });
    assert.equal(readFileSync(join(dir, "node.id"), "utf8"), "fresh01\n");
    assert.deepEqual(replicaFiles(dir), []);
  });

  it("keeps the id across a normal restart, and stamps raft.db with it", async () => {
    const dir = await memberDir("member1");
    const before = readdirSync(dir).sort();
    assert.equal(raftLogOwner(dir), null, "the run's log is not stamped yet");
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "member1", retired: null });
    assert.equal(raftLogOwner(dir), "member1");
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "member1", retired: null });
    assert.deepEqual(readdirSync(dir).sort(), before);
    // The stamp is a table of its own: the log store still opens and reads the log.
    const log = openJoiner(dir, "member1");
    assert.ok(log.view().cluster());
    log.close();
  });

  it("retires the id of a node that kept node.id and join.token but lost raft.db", async () => {
    const dir = await memberDir("member1");
    // Only raft.db is gone: a WAL left behind must not be replayed into the next raft.db.
    rmSync(join(dir, "raft.db"));
    writeFileSync(join(dir, "raft.db-wal"), "stale");
    const identity = loadNodeIdentity(dir, ids("member2"));
    const folder = join(dir, "retired", "member1");
    assert.deepEqual(identity, {
      id: "member2",
      retired: { id: "member1", folder, reason: "raft.db is missing but join.token is kept" },
    });
    assert.equal(readFileSync(join(dir, "node.id"), "utf8"), "member2\n");
    assert.equal(readFileSync(join(folder, "node.id"), "utf8"), "member1\n");
    for (const name of ["state.db", "raft.db-wal"]) assert.ok(existsSync(join(folder, name)), name);
    assert.equal(snapshotImages(folder).length, 1);
    assert.deepEqual(replicaFiles(dir), []);
    // The cluster's tokens stay: the new member rejoins the same cluster by itself.
    assert.equal(readFileSync(join(dir, "join.token"), "utf8"), joinToken);
    assert.ok(existsSync(join(dir, "api.token")));
    // It starts as a joiner does: no term, no vote, no membership, nothing applied.
    const log = openJoiner(dir, "member2");
    const status = log.status();
    assert.equal(status.term, 0);
    assert.deepEqual(status.membership, { voters: [], learners: [] });
    assert.equal(log.view().appliedIndex(), 0);
    assert.equal(log.view().cluster(), null);
    log.close();
    // The next start is a normal restart of the new member.
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "member2", retired: null });
  });

  it("retires the id when raft.db is blank but state.db has applied entries", async () => {
    const dir = await memberDir("member1");
    for (const suffix of ["", "-wal", "-shm"])
      rmSync(join(dir, `raft.db${suffix}`), { force: true });
    new LibsqlRaftLogStore(join(dir, "raft.db")).close();
    // Neither join.token nor a snapshot image: state.db's applied index is evidence enough.
    rmSync(join(dir, "join.token"));
    for (const image of snapshotImages(dir)) rmSync(join(dir, image));
    const identity = loadNodeIdentity(dir, ids("member2"));
    assert.equal(identity.id, "member2");
    assert.equal(identity.retired?.id, "member1");
    assert.match(identity.retired?.reason ?? "", /raft.db holds no term, vote or entry/);
    assert.ok(existsSync(join(dir, "retired", "member1", "raft.db")));
    assert.deepEqual(replicaFiles(dir), []);
  });

  it("keeps the id of a node that never took part: no log, no token, nothing applied", () => {
    const dir = freshDir();
    writeFileSync(join(dir, "node.id"), "seeded1\n");
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "seeded1", retired: null });
    // A joiner that kept the token and crashed before the cluster sent it anything.
    openJoiner(dir, "seeded1").close();
    writeFileSync(join(dir, "join.token"), joinToken);
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "seeded1", retired: null });
    assert.ok(existsSync(join(dir, "state.db")));
  });

  it("finishes a retirement that a crash cut short", async () => {
    const dir = await memberDir("member1");
    rmSync(join(dir, "raft.db"));
    // The crash came after the folder was made and one file moved, before node.id was written.
    mkdirSync(join(dir, "retired", "member1"), { recursive: true });
    for (const image of snapshotImages(dir)) {
      renameSync(join(dir, image), join(dir, "retired", "member1", image));
    }
    rmSync(join(dir, "join.token"));
    const identity = loadNodeIdentity(dir, ids("member2"));
    assert.equal(identity.id, "member2");
    assert.match(identity.retired?.reason ?? "", /did not finish/);
    assert.ok(existsSync(join(dir, "retired", "member1", "state.db")));
    assert.deepEqual(replicaFiles(dir), []);
  });

  it("refuses a raft.db stamped with another node's id, and changes nothing", async () => {
    const dir = await memberDir("member1");
    loadNodeIdentity(dir, ids());
    writeFileSync(join(dir, "node.id"), "other01\n");
    const foreign = (error: unknown) =>
      error instanceof ShoalError &&
      error.code === "E_CONFLICT" &&
      /belongs to node member1, not to node other01/.test(error.message);
    assert.throws(() => loadNodeIdentity(dir, ids()), foreign);
    rmSync(join(dir, "node.id"));
    assert.throws(() => loadNodeIdentity(dir, ids()), /belongs to node member1 but node.id is/);
    assert.ok(!existsSync(join(dir, "node.id")) && !existsSync(join(dir, "retired")));
    assert.equal(raftLogOwner(dir), "member1");
  });

  it("leaves a one-node log from before fleets for openFleet to refuse", () => {
    const dir = freshDir();
    writeFileSync(join(dir, "node.id"), "legacy1\n");
    const db = openDatabase(join(dir, "raft.db"), "NORMAL");
    db.exec("CREATE TABLE entries (log_index INTEGER PRIMARY KEY, data BLOB)");
    db.close();
    assert.deepEqual(loadNodeIdentity(dir, ids()), { id: "legacy1", retired: null });
    assert.equal(raftLogOwner(dir), null);
  });
});

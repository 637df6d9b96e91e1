// The log store contract, run against the libSQL store over a raft.db in a temporary directory.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import type { LogStoreBatch, RaftLogStore } from "../raft/log-store.ts";
import { batchOf } from "../raft/log-store.ts";
import { RaftCore } from "../raft/raft-core.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { runLogStoreContract } from "../testing/sim/log-store-contract.ts";
import { Tmpfs, tmpfsUnavailable } from "../testing/tmpfs.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";

const directory = mkdtempSync(join(tmpdir(), "shoal-raft-log-"));
const paths = new Map<RaftLogStore, string>();
let created = 0;

after(() => rmSync(directory, { recursive: true, force: true }));

runLogStoreContract("libsql", {
  create: () => {
    created++;
    const path = join(directory, `raft-${created}.db`);
    const store = new LibsqlRaftLogStore(path);
    paths.set(store, path);
    return store;
  },
  reopen: (store) => {
    const path = paths.get(store);
    if (path === undefined) throw new Error("reopening a store this suite did not create");
    store.close();
    const reopened = new LibsqlRaftLogStore(path);
    paths.set(reopened, path);
    return reopened;
  },
});

it("opens raft.db in WAL mode with synchronous=NORMAL: the store flushes the WAL itself", () => {
  const store = new LibsqlRaftLogStore(join(directory, "durability.db"));
  // synchronous=NORMAL is 1.
  assert.deepEqual(store.durability(), { journalMode: "wal", synchronous: 1 });
  store.close();
});

it("restarts a Raft core from what it persisted in raft.db", () => {
  const path = join(directory, "restart.db");
  const membership = { voters: ["a"], learners: [] };
  let store = new LibsqlRaftLogStore(path);
  const core = new RaftCore({
    id: "a",
    state: store.load(),
    bootstrap: membership,
    nowMs: 0,
    random: new SeededRandom(1),
  });
  core.tick(5000);
  core.propose(new TextEncoder().encode("x"));
  while (core.hasReady()) {
    const ready = core.ready();
    store.save(batchOf(ready));
    core.advance(ready);
  }
  store.close();
  store = new LibsqlRaftLogStore(path);
  const state = store.load();
  const restarted = new RaftCore({
    id: "a",
    state,
    bootstrap: membership,
    appliedIndex: 2,
    nowMs: 6000,
    random: new SeededRandom(2),
  });
  const status = restarted.status();
  assert.equal(status.term, 1);
  assert.equal(status.votedFor, "a");
  assert.equal(status.commitIndex, 2);
  assert.equal(status.lastIndex, 2);
  assert.equal(new TextDecoder().decode(restarted.entryAt(2).data), "x");
  store.close();
});

/** One entry of 64 KiB at `index`, in term 1. */
function bigEntry(index: number): LogStoreBatch {
  const data = new Uint8Array(64 * 1024).fill(index % 251);
  return {
    snapshot: null,
    compaction: null,
    entries: [{ index, term: 1, kind: "command", data }],
    hardState: null,
  };
}

it("a write the full disk refuses fails with SQLITE_FULL, leaves nothing, and succeeds once space returns", {
  skip: tmpfsUnavailable() ?? false,
}, async () => {
  const disk = Tmpfs.mount(1024 * 1024);
  try {
    const path = join(disk.path, "raft.db");
    let store = new LibsqlRaftLogStore(path);
    let refused: unknown = null;
    let next = 1;
    for (; next < 1000 && refused === null; next++) {
      try {
        store.write(bigEntry(next));
      } catch (error) {
        refused = error;
      }
    }
    const failedAt = next - 1;
    assert.ok(failedAt > 1, "some writes fit before the disk filled");
    // The cause, not "cannot rollback - no transaction is active" from a second ROLLBACK.
    assert.equal((refused as { code?: string }).code, "SQLITE_FULL");
    // Nothing of the refused batch is in the log, and the store still reads.
    assert.equal(store.load().entries.at(-1)?.index, failedAt - 1);
    disk.resize(16 * 1024 * 1024);
    store.write(bigEntry(failedAt));
    store.write(bigEntry(failedAt + 1));
    await store.flush();
    store.close();
    store = new LibsqlRaftLogStore(path);
    const indexes = store.load().entries.map((entry) => entry.index);
    assert.deepEqual(
      indexes,
      Array.from({ length: failedAt + 1 }, (_, i) => i + 1),
    );
    store.close();
  } finally {
    disk.unmount();
  }
});

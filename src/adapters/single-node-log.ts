// The one-node command log: each command is appended to raft.db (WAL, synchronous=FULL, so it is
// on disk before `propose` resolves) and then applied to state.db. On open, entries the state
// machine has not applied yet are replayed, so a kill -9 loses nothing acknowledged and applies
// nothing twice (the applied index commits in the same transaction as the command's effects).
import { join } from "node:path";
import { assert } from "../core/assert.ts";
import type { AppliedEntry, CommandLog } from "../state/command-log.ts";
import { type Command, decodeCommand, encodeCommand } from "../state/commands.ts";
import type { Database } from "../state/db.ts";
import { type ApplyResult, StateMachine } from "../state/machine.ts";
import type { StateView } from "../state/views.ts";
import { openDatabase } from "./libsql.ts";

const logSchema = `CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL)`;

/** A single node is leader of term 1 for as long as it runs. */
const singleNodeTerm = 1;

/**
 * An apply that throws is a bug, and the log cannot go on past an entry it could not apply:
 * crash the process (after the caller saw the error), so a restart replays from the last good
 * index rather than answering every later write with an error.
 */
export function applyOrCrash<T>(apply: () => T): T {
  try {
    return apply();
  } catch (error) {
    setImmediate(() => {
      throw error;
    });
    throw error;
  }
}

/** A listener's failure (an event stream, a reconcile trigger) must not undo an applied write. */
export function notify(listener: (entry: AppliedEntry) => void, entry: AppliedEntry): void {
  try {
    listener(entry);
  } catch (error) {
    console.error("shoal: a listener of applied entries failed", error);
  }
}

export class SingleNodeLog implements CommandLog {
  readonly machine: StateMachine;
  private readonly listeners = new Set<(entry: AppliedEntry) => void>();
  private lastIndex: number;

  private constructor(
    readonly logDb: Database,
    readonly stateDb: Database,
  ) {
    logDb.exec(logSchema);
    this.machine = new StateMachine(stateDb);
    this.lastIndex = Number(
      (logDb.prepare("SELECT MAX(idx) AS i FROM entries").get() as { i: unknown }).i ?? 0,
    );
  }

  static open(dataDir: string): SingleNodeLog {
    const log = new SingleNodeLog(
      openDatabase(join(dataDir, "raft.db"), "FULL"),
      openDatabase(join(dataDir, "state.db"), "NORMAL"),
    );
    log.replay();
    return log;
  }

  /** Applies every logged entry past the state machine's applied index, in order. */
  private replay(): void {
    const applied = this.machine.appliedIndex();
    assert(
      applied <= this.lastIndex,
      `state.db is ahead of raft.db: ${applied} > ${this.lastIndex}`,
    );
    const rows = this.logDb
      .prepare("SELECT idx, data FROM entries WHERE idx > ? ORDER BY idx")
      .iterate(applied);
    for (const row of rows as Iterable<{ idx: number; data: Uint8Array }>) {
      this.machine.apply(decodeCommand(row.data), Number(row.idx));
    }
  }

  async propose(command: Command): Promise<ApplyResult> {
    const data = encodeCommand(command);
    const index = this.lastIndex + 1;
    this.logDb
      .prepare("INSERT INTO entries (idx, term, data) VALUES (?, ?, ?)")
      .run(index, singleNodeTerm, data);
    this.lastIndex = index;
    // Apply what a replay would apply: the decoded entry, not the caller's object.
    const logged = decodeCommand(data);
    const result = applyOrCrash(() => this.machine.apply(logged, index));
    for (const listener of this.listeners) notify(listener, { index, command: logged, result });
    return result;
  }

  onApplied(listener: (entry: AppliedEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  view(): StateView {
    return this.machine.view;
  }

  isLeader(): boolean {
    return true;
  }

  close(): void {
    this.logDb.close();
    this.stateDb.close();
  }
}

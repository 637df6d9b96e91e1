// The deterministic state machine: one command, one transaction, one applied index. It never
// reads the clock, makes ids or does I/O beyond its own transaction, so every node that applies
// the same log holds the same state.
import { assert } from "../core/assert.ts";
import { ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import {
  applyClusterInit,
  applyNodeActivate,
  applyNodeDisk,
  applyNodeDown,
  applyNodeDrain,
  applyNodeEngine,
  applyNodeIngress,
  applyNodeLabel,
  applyNodeLeave,
  applyNodeRegister,
  applyNodeUp,
  applyRotateApiToken,
  applyRotateJoinSecret,
} from "./apply-cluster.ts";
import { applyPlan } from "./apply-plan.ts";
import {
  applyServiceCreate,
  applyServiceDelete,
  applyServiceRebalance,
  applyServiceRollback,
  applyServiceUpdate,
} from "./apply-service.ts";
import { applyTaskReport, applyTaskRun, applyTaskStop } from "./apply-task.ts";
import type { Command, CommandOf, CommandType } from "./commands.ts";
import { ApplyContext } from "./context.ts";
import { allRows, type Database, getRow, rollBack, runSql } from "./db.ts";
import { migrate } from "./schema.ts";
import { StateView } from "./views.ts";

type Handlers = {
  [T in CommandType]: (ctx: ApplyContext, command: CommandOf<T>) => Result<unknown>;
};

/** Exported so a test can put in a handler that misbehaves; nothing else changes it. */
export const handlers: Handlers = {
  "cluster.init": applyClusterInit,
  "cluster.rotate-api-token": applyRotateApiToken,
  "cluster.rotate-join-secret": applyRotateJoinSecret,
  "node.register": applyNodeRegister,
  "node.engine": applyNodeEngine,
  "node.disk": applyNodeDisk,
  "node.ingress": applyNodeIngress,
  "node.leave": applyNodeLeave,
  "node.down": applyNodeDown,
  "node.up": applyNodeUp,
  "node.drain": applyNodeDrain,
  "node.activate": applyNodeActivate,
  "node.label": applyNodeLabel,
  "service.create": applyServiceCreate,
  "service.update": applyServiceUpdate,
  "service.delete": applyServiceDelete,
  "service.rollback": applyServiceRollback,
  "service.rebalance": applyServiceRebalance,
  "task.run": applyTaskRun,
  "task.stop": applyTaskStop,
  "task.report": applyTaskReport,
  "plan.apply": applyPlan,
};

export type ApplyResult = Result<unknown>;

export class StateMachine {
  readonly view: StateView;
  /** The machine is the only writer of state.db, so its applied index is kept in memory too. */
  private applied: number;
  private readonly requestIds: KnownRequestIds;

  constructor(private readonly db: Database) {
    migrate(db);
    this.view = new StateView(db);
    this.applied = this.view.appliedIndex();
    this.requestIds = new KnownRequestIds(db);
  }

  appliedIndex(): number {
    return this.applied;
  }

  private run(sql: string): void {
    runSql(this.db, sql);
  }

  /** Records that the log entry at `index` carried no command (a Raft no-op or membership). */
  skip(index: number): void {
    this.applyAll([{ index, command: null }]);
  }

  /**
   * Applies the command at log `index`, which must follow the applied index. A refused command
   * rolls back whatever it did but still advances the applied index: it was in the log.
   */
  apply(command: Command, index: number): ApplyResult {
    const [result] = this.applyAll([{ index, command }]);
    assert(result !== undefined);
    return result;
  }

  /**
   * Applies consecutive log entries in one transaction (a null command is a Raft no-op or
   * membership entry): one commit for a batch of writes instead of one each. Each command still
   * succeeds or is refused on its own. Nearly every handler checks before it writes, so a batch
   * first runs without a savepoint per command; should a command be refused after writing, the
   * batch is rolled back and run again with one savepoint each, which undoes just that command.
   */
  applyAll(entries: readonly LogCommand[]): ApplyResult[] {
    if (entries.length === 0) return [];
    try {
      return this.applyBatch(entries, false);
    } catch (error) {
      if (!(error instanceof RefusedAfterWriting)) throw error;
      return this.applyBatch(entries, true);
    }
  }

  private applyBatch(entries: readonly LogCommand[], savepoints: boolean): ApplyResult[] {
    this.run("BEGIN IMMEDIATE");
    try {
      const results = entries.map((entry, offset) => {
        const expected = this.applied + 1 + offset;
        assert(
          entry.index === expected,
          `apply out of order: ${entry.index}, expected ${expected}`,
        );
        if (entry.command === null) return ok(null);
        return this.applyOnce(entry.command, entry.index, entry.requestId ?? null, savepoints);
      });
      const last = this.applied + entries.length;
      runSql(this.db, "UPDATE meta SET value = ? WHERE key = 'applied_index'", [String(last)]);
      this.run("COMMIT");
      this.applied = last;
      return results;
    } catch (error) {
      rollBack(this.db);
      throw error;
    }
  }

  /**
   * A command that carries a request id already applied (resent after a failover) is answered
   * with its first result and changes nothing else.
   */
  private applyOnce(
    command: Command,
    index: number,
    requestId: string | null,
    savepoints: boolean,
  ): ApplyResult {
    if (requestId === null) return this.applyOne(command, index, savepoints);
    const seen = this.requestIds.mayHold(requestId)
      ? getRow(this.db, "SELECT result FROM requests WHERE id = ?", [requestId])
      : undefined;
    if (seen) return JSON.parse(String(seen.result)) as ApplyResult;
    const result = this.applyOne(command, index, savepoints);
    runSql(this.db, "INSERT INTO requests (id, log_index, result) VALUES (?, ?, ?)", [
      requestId,
      index,
      storedResult(result),
    ]);
    this.requestIds.add(requestId);
    return result;
  }

  /** With savepoints, one opens at the first write (a refusal that only read needs none). */
  private applyOne(command: Command, index: number, savepoints: boolean): ApplyResult {
    const beforeFirstWrite = savepoints ? () => this.run("SAVEPOINT command") : () => {};
    const ctx = new ApplyContext(this.db, index, command.at, beforeFirstWrite);
    const handler = handlers[command.type] as (c: ApplyContext, k: Command) => ApplyResult;
    const result = handler(ctx, command);
    // Pruning every so many entries, by index, keeps replicas identical and writes cheap.
    if (result.ok && index % limits.pruneEveryEntries === 0) prune(ctx);
    if (!ctx.wrote) return result;
    if (!savepoints) {
      if (!result.ok) throw new RefusedAfterWriting();
      return result;
    }
    this.run(result.ok ? "RELEASE command" : "ROLLBACK TO command");
    if (!result.ok) this.run("RELEASE command");
    return result;
  }
}

/** A log entry to apply: null for a Raft no-op or membership entry. */
export interface LogCommand {
  index: number;
  command: Command | null;
  requestId?: string | null;
}

/** A command refused after it wrote: its batch runs again with a savepoint per command. */
class RefusedAfterWriting extends Error {}

/**
 * The request ids the requests table may hold, kept in memory: nearly every write carries a
 * fresh id, and an id missing here needs no lookup. It may still hold ids the table pruned (the
 * table then answers), and is read again from the table once it grows to twice the table's bound.
 */
class KnownRequestIds {
  private ids = new Set<string>();

  constructor(private readonly db: Database) {
    this.reload();
  }

  mayHold(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
    if (this.ids.size > 2 * limits.requestsRetainMax) this.reload();
  }

  private reload(): void {
    const rows = allRows(this.db, "SELECT id FROM requests");
    this.ids = new Set(rows.map((row) => String(row.id)));
  }
}

/** A result as kept for a resent request; one too large to keep is kept as its outcome only. */
function storedResult(result: ApplyResult): string {
  const text = JSON.stringify(result);
  if (new TextEncoder().encode(text).byteLength <= limits.requestResultBytesMax) return text;
  return JSON.stringify(result.ok ? { ok: true, value: null } : result);
}

/** Keeps history bounded: the oldest events and finished tasks go first. */
function prune(ctx: ApplyContext): void {
  ctx.run(
    "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?",
    limits.eventsRetainMax,
  );
  ctx.run(
    `DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks
     WHERE desired = 'stopped' AND state IN ('stopped', 'failed', 'lost')
     ORDER BY seq DESC LIMIT -1 OFFSET ?)`,
    limits.terminalTasksRetainMax,
  );
  ctx.run(
    `DELETE FROM requests WHERE id IN (SELECT id FROM requests
     ORDER BY log_index DESC LIMIT -1 OFFSET ?)`,
    limits.requestsRetainMax,
  );
}

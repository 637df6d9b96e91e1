// What every command handler gets: the database inside the command's transaction, the log
// index and the proposer's timestamp, and a way to record events.
import { type Database, runSql } from "./db.ts";
import { StateView } from "./views.ts";

export interface EventInput {
  type: string;
  message: string;
  service?: string | null;
  task?: string | null;
  node?: string | null;
}

export class ApplyContext {
  readonly view: StateView;
  /** Whether the command has written anything (so its savepoint is open). */
  wrote = false;

  constructor(
    readonly db: Database,
    readonly index: number,
    readonly at: number,
    private readonly beforeFirstWrite: () => void = () => {},
  ) {
    this.view = new StateView(db);
  }

  run(sql: string, ...params: unknown[]): number {
    if (!this.wrote) {
      this.beforeFirstWrite();
      this.wrote = true;
    }
    return runSql(this.db, sql, params);
  }

  event(input: EventInput): void {
    this.run(
      "INSERT INTO events (log_index, at, type, message, service, task, node) VALUES (?, ?, ?, ?, ?, ?, ?)",
      this.index,
      this.at,
      input.type,
      input.message,
      input.service ?? null,
      input.task ?? null,
      input.node ?? null,
    );
  }
}

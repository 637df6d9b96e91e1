// Parsed services kept in memory between reads. The scheduler reads every service after each
// write; at a few thousand services, reading and parsing them took tens of milliseconds, most
// of a create's time. Temporary triggers note each service a write touches, whatever code path
// wrote it, and a read parses only those rows again.
import { assert } from "../core/assert.ts";
import type { Service, TaskDefinition } from "../core/types.ts";
import { allRows, type Database, getRow, runSql } from "./db.ts";
import { serviceFromRow } from "./rows.ts";

/**
 * TEMP objects live on this connection only: they are in no file, no snapshot image and no
 * state hash, and a rolled-back write rolls back its notes with it.
 */
const setupSql = `
  CREATE TEMP TABLE IF NOT EXISTS shoal_changed_services (name TEXT PRIMARY KEY);
  CREATE TEMP TRIGGER IF NOT EXISTS shoal_service_inserted AFTER INSERT ON main.services
    BEGIN INSERT OR IGNORE INTO shoal_changed_services (name) VALUES (NEW.name); END;
  CREATE TEMP TRIGGER IF NOT EXISTS shoal_service_updated AFTER UPDATE ON main.services
    BEGIN
      INSERT OR IGNORE INTO shoal_changed_services (name) VALUES (OLD.name);
      INSERT OR IGNORE INTO shoal_changed_services (name) VALUES (NEW.name);
    END;
  CREATE TEMP TRIGGER IF NOT EXISTS shoal_service_deleted AFTER DELETE ON main.services
    BEGIN INSERT OR IGNORE INTO shoal_changed_services (name) VALUES (OLD.name); END;
`;

/** The trigger names, for the test that removes one and sees the mirror go stale. */
export const serviceMirrorTriggers = [
  "shoal_service_inserted",
  "shoal_service_updated",
  "shoal_service_deleted",
] as const;

interface TaskDefinitionRef {
  family: string;
  revision: number;
}

function refKey(ref: TaskDefinitionRef): string {
  return `${ref.revision}:${ref.family}`;
}

/** SQLite's BINARY order for the ASCII names shoal allows. */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Cached values are shared by every reader: none of them may change one. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

export class ServiceMirror {
  private readonly byName = new Map<string, Service>();
  /** The services sorted by name; null once a service came or went. */
  private sorted: readonly Service[] | null = null;
  /** The definitions the last `definitions` call returned, by ref: revisions never change. */
  private definitionsByRef = new Map<string, TaskDefinition>();

  /** Only outside a transaction: what a transaction reads may still be rolled back. */
  constructor(private readonly db: Database) {
    assert(!db.inTransaction);
    db.exec(setupSql);
    runSql(db, "DELETE FROM shoal_changed_services");
    for (const row of allRows(db, "SELECT * FROM services")) {
      const service = deepFreeze(serviceFromRow(row));
      this.byName.set(service.name, service);
    }
  }

  /** Every service, ordered by name, as committed. */
  services(): readonly Service[] {
    this.catchUp();
    if (this.sorted === null) {
      const names = [...this.byName.keys()].sort(byCodeUnit);
      this.sorted = Object.freeze(names.map((name) => this.byName.get(name) as Service));
    }
    return this.sorted;
  }

  /** The definitions of `refs`, each once, ordered as SQL's `ORDER BY family, revision`. */
  definitions(
    refs: Iterable<TaskDefinitionRef>,
    read: (ref: TaskDefinitionRef) => TaskDefinition | null,
  ): TaskDefinition[] {
    assert(!this.db.inTransaction);
    const next = new Map<string, TaskDefinition>();
    for (const ref of refs) {
      const key = refKey(ref);
      if (next.has(key)) continue;
      const definition = this.definitionsByRef.get(key) ?? read(ref);
      if (definition) next.set(key, definition);
    }
    // Kept: what this call returned, so the cache never outgrows what the fleet references.
    this.definitionsByRef = next;
    return [...next.values()].sort(
      (a, b) => byCodeUnit(a.family, b.family) || a.revision - b.revision,
    );
  }

  /** Parses again the services written since the last read. */
  private catchUp(): void {
    assert(!this.db.inTransaction);
    const changed = allRows(this.db, "SELECT name FROM shoal_changed_services");
    if (changed.length === 0) return;
    for (const { name } of changed) {
      const row = getRow(this.db, "SELECT * FROM services WHERE name = ?", [name]);
      const known = this.byName.has(String(name));
      if (row) this.byName.set(String(name), deepFreeze(serviceFromRow(row)));
      else this.byName.delete(String(name));
      if (known !== (row !== undefined)) this.sorted = null;
    }
    runSql(this.db, "DELETE FROM shoal_changed_services");
    // A changed service replaces its entry in place; the order holds unless one came or went.
    if (this.sorted !== null) {
      this.sorted = Object.freeze(this.sorted.map((s) => this.byName.get(s.name) as Service));
    }
  }
}

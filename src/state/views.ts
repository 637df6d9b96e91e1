// Read views over state.db, used by the API, the scheduler and the agent. Reads only.

import { limits } from "../core/limits.ts";
import type {
  Deployment,
  NodeInfo,
  Service,
  ShoalEvent,
  Task,
  TaskDefinition,
  TaskState,
} from "../core/types.ts";
import { allRows, type Database, getRow, type Row } from "./db.ts";
import {
  deploymentFromRow,
  eventFromRow,
  nodeFromRow,
  serviceFromRow,
  taskDefinitionFromRow,
  taskFromRow,
} from "./rows.ts";
import { deepFreeze, ServiceMirror } from "./service-mirror.ts";
import { stateHash } from "./state-hash.ts";

export interface TaskFilter {
  service?: string | undefined;
  node?: string | undefined;
  state?: TaskState | undefined;
  limit?: number | undefined;
}

export interface ClusterRecord {
  id: string;
  /** SHA-256 of the API token, hex. */
  apiTokenHash: string;
  /** The API token sealed under the cluster key. */
  apiTokenSealed: string;
  /** The join token's secret sealed under the cluster key. */
  joinSecretSealed: string;
  createdAt: number;
}

/**
 * The store's active tasks: desired running or not yet ended (a task being stopped still holds
 * its node's resources). The scheduler's narrower "wanted" (desired running and not yet ended)
 * is `isWanted`.
 */
const activeTaskCondition = "desired = 'running' OR state NOT IN ('stopped', 'failed', 'lost')";

const definitionCaches = new WeakMap<Database, Map<string, TaskDefinition>>();

function definitionCacheOf(db: Database): Map<string, TaskDefinition> {
  let cache = definitionCaches.get(db);
  if (!cache) {
    cache = new Map();
    definitionCaches.set(db, cache);
  }
  return cache;
}

const mirrors = new WeakMap<Database, ServiceMirror>();

export class StateView {
  constructor(private readonly db: Database) {}

  private one(sql: string, ...params: unknown[]): Row | undefined {
    return getRow(this.db, sql, params);
  }

  private many(sql: string, ...params: unknown[]): Row[] {
    return allRows(this.db, sql, params);
  }

  /** A digest of the whole state (see state-hash.ts); equal replicas have equal hashes. */
  stateHash(): string {
    return stateHash(this.db);
  }

  appliedIndex(): number {
    return Number(this.one("SELECT value FROM meta WHERE key = 'applied_index'")?.value ?? 0);
  }

  cluster(): ClusterRecord | null {
    const row = this.one(
      "SELECT id, api_token_hash, api_token_sealed, join_secret_sealed, created_at FROM cluster LIMIT 1",
    );
    if (!row) return null;
    return {
      id: String(row.id),
      apiTokenHash: String(row.api_token_hash),
      apiTokenSealed: String(row.api_token_sealed),
      joinSecretSealed: String(row.join_secret_sealed),
      createdAt: Number(row.created_at),
    };
  }

  nodes(): NodeInfo[] {
    return this.many("SELECT * FROM nodes ORDER BY name").map(nodeFromRow);
  }

  nodeById(id: string): NodeInfo | null {
    const row = this.one("SELECT * FROM nodes WHERE id = ?", id);
    return row ? nodeFromRow(row) : null;
  }

  nodeByName(name: string): NodeInfo | null {
    const row = this.one("SELECT * FROM nodes WHERE name = ?", name);
    return row ? nodeFromRow(row) : null;
  }

  /** Whether people drained the node (it stays draining through restarts and outages). */
  isDrained(id: string): boolean {
    return Number(this.one("SELECT drained FROM nodes WHERE id = ?", id)?.drained ?? 0) === 1;
  }

  /** For people: an id, else a name. The state machine uses the exact lookups above. */
  node(idOrName: string): NodeInfo | null {
    return this.nodeById(idOrName) ?? this.nodeByName(idOrName);
  }

  /** Outside a transaction from memory (service-mirror.ts): the scheduler reads all each time. */
  services(): readonly Service[] {
    if (this.db.inTransaction) {
      return this.many("SELECT * FROM services ORDER BY name").map(serviceFromRow);
    }
    return this.mirror().services();
  }

  private mirror(): ServiceMirror {
    let mirror = mirrors.get(this.db);
    if (!mirror) {
      mirror = new ServiceMirror(this.db);
      mirrors.set(this.db, mirror);
    }
    return mirror;
  }

  service(name: string): Service | null {
    const row = this.one("SELECT * FROM services WHERE name = ?", name);
    return row ? serviceFromRow(row) : null;
  }

  taskDefinitions(family?: string): TaskDefinition[] {
    const rows = family
      ? this.many(
          "SELECT * FROM task_definitions WHERE family = ? ORDER BY revision LIMIT ?",
          family,
          limits.listResultsMax,
        )
      : this.many(
          "SELECT * FROM task_definitions ORDER BY family, revision LIMIT ?",
          limits.listResultsMax,
        );
    return rows.map(taskDefinitionFromRow);
  }

  /** Served from memory once read: a registered revision never changes (task-definitions.ts). */
  taskDefinition(family: string, revision: number): TaskDefinition | null {
    const key = `${revision}:${family}`;
    const cache = definitionCacheOf(this.db);
    const cached = cache.get(key);
    if (cached) return cached;
    const row = this.one(
      "SELECT * FROM task_definitions WHERE family = ? AND revision = ?",
      family,
      revision,
    );
    if (!row) return null;
    const definition = taskDefinitionFromRow(row);
    // A revision read inside a write transaction may still be rolled back: keep committed ones.
    if (!this.db.inTransaction) {
      if (cache.size >= limits.taskDefinitionsCachedMax) cache.clear();
      cache.set(key, deepFreeze(definition));
    }
    return definition;
  }

  /**
   * The revisions some service or one of `tasks` runs, ordered by family and revision: the
   * scheduler's, which already holds the active tasks. Outside transactions only.
   */
  referencedTaskDefinitions(tasks: readonly Task[]): TaskDefinition[] {
    const refs = [...this.services(), ...tasks].map((item) => item.taskDefinition);
    return this.mirror().definitions(refs, (ref) => this.taskDefinition(ref.family, ref.revision));
  }

  latestRevision(family: string): number {
    const row = this.one(
      "SELECT MAX(revision) AS r FROM task_definitions WHERE family = ?",
      family,
    );
    return Number(row?.r ?? 0);
  }

  task(id: string): Task | null {
    const row = this.one("SELECT * FROM tasks WHERE id = ?", id);
    return row ? taskFromRow(row) : null;
  }

  tasks(filter: TaskFilter = {}): Task[] {
    const columns = { service: filter.service, node: filter.node, state: filter.state };
    const given = Object.entries(columns).filter(([, value]) => value !== undefined);
    const where = given.map(([column]) => `${column} = ?`);
    const params = given.map(([, value]) => value);
    const clause = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
    const limit = Math.min(filter.limit ?? limits.listResultsMax, limits.listResultsMax);
    return this.many(`SELECT * FROM tasks ${clause} ORDER BY seq DESC LIMIT ?`, ...params, limit)
      .map(taskFromRow)
      .reverse();
  }

  /** Tasks the scheduler and agents still care about: desired running or not yet stopped. */
  activeTasks(): Task[] {
    return this.many(`SELECT * FROM tasks WHERE ${activeTaskCondition} ORDER BY seq`).map(
      taskFromRow,
    );
  }

  activeTasksForNode(nodeId: string): Task[] {
    return this.many(
      `SELECT * FROM tasks WHERE node = ? AND (${activeTaskCondition}) ORDER BY seq`,
      nodeId,
    ).map(taskFromRow);
  }

  activeTasksForService(service: string): Task[] {
    return this.many(
      `SELECT * FROM tasks WHERE service = ? AND (${activeTaskCondition}) ORDER BY seq`,
      service,
    ).map(taskFromRow);
  }

  /** The service's deployments, newest first. */
  deployments(service: string): Deployment[] {
    return this.many(
      "SELECT * FROM deployments WHERE service = ? ORDER BY id DESC LIMIT ?",
      service,
      limits.deploymentsRetainPerService,
    ).map(deploymentFromRow);
  }

  deploymentInProgress(service: string): Deployment | null {
    const row = this.one(
      "SELECT * FROM deployments WHERE service = ? AND status = 'in_progress' ORDER BY id DESC LIMIT 1",
      service,
    );
    return row ? deploymentFromRow(row) : null;
  }

  /**
   * The revision of the service's latest completed deployment other than `excluding`: where a
   * rollback goes (ECS's rule), never to a revision that failed or never finished rolling out.
   */
  lastCompletedRevision(service: string, excluding: number): number | null {
    const row = this.one(
      `SELECT to_revision FROM deployments WHERE service = ? AND status = 'completed'
       AND to_revision != ? ORDER BY id DESC LIMIT 1`,
      service,
      excluding,
    );
    return row ? Number(row.to_revision) : null;
  }

  deploymentsInProgress(): Deployment[] {
    return this.many("SELECT * FROM deployments WHERE status = 'in_progress' ORDER BY id").map(
      deploymentFromRow,
    );
  }

  events(since = 0, limit: number = limits.eventsPageMax): ShoalEvent[] {
    return this.many(
      "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
      since,
      Math.min(limit, limits.eventsPageMax),
    ).map(eventFromRow);
  }

  lastEventSeq(): number {
    return Number(this.one("SELECT MAX(seq) AS s FROM events")?.s ?? 0);
  }
}

// Handlers for the cluster and its nodes.
import { fail, ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { NodeInfo } from "../core/types.ts";
import type { CommandOf } from "./commands.ts";
import type { ApplyContext } from "./context.ts";

export function applyClusterInit(
  ctx: ApplyContext,
  command: CommandOf<"cluster.init">,
): Result<unknown> {
  if (ctx.view.cluster()) return fail("E_CONFLICT", "the cluster is already initialised");
  ctx.run(
    `INSERT INTO cluster (id, api_token_hash, api_token_sealed, join_secret_sealed, created_at)
     VALUES (?, ?, ?, ?, ?)`,
    command.clusterId,
    command.apiTokenHash,
    command.apiTokenSealed,
    command.joinSecretSealed,
    command.at,
  );
  ctx.event({ type: "cluster.created", message: `cluster ${command.clusterId} created` });
  return ok({ clusterId: command.clusterId });
}

/** A new API token: from this entry on, only it opens the API on any node. */
export function applyRotateApiToken(
  ctx: ApplyContext,
  command: CommandOf<"cluster.rotate-api-token">,
): Result<unknown> {
  if (!ctx.view.cluster()) return fail("E_NOT_READY", "the cluster is not initialised yet");
  ctx.run(
    "UPDATE cluster SET api_token_hash = ?, api_token_sealed = ?",
    command.apiTokenHash,
    command.apiTokenSealed,
  );
  ctx.event({ type: "cluster.api-token-rotated", message: "the API token was rotated" });
  return ok({});
}

/** A new join secret: joiners must prove it; members are not affected. */
export function applyRotateJoinSecret(
  ctx: ApplyContext,
  command: CommandOf<"cluster.rotate-join-secret">,
): Result<unknown> {
  if (!ctx.view.cluster()) return fail("E_NOT_READY", "the cluster is not initialised yet");
  ctx.run("UPDATE cluster SET join_secret_sealed = ?", command.joinSecretSealed);
  ctx.event({ type: "cluster.join-secret-rotated", message: "the join token was rotated" });
  return ok({});
}

/** A name already taken by another node gets the first free numeric suffix. */
function uniqueName(ctx: ApplyContext, id: string, name: string): string {
  const taken = (candidate: string): boolean => {
    const holder = ctx.view.nodeByName(candidate);
    return holder !== null && holder.id !== id;
  };
  if (!taken(name)) return name;
  let suffix = 2;
  while (taken(`${name}-${suffix}`)) suffix += 1;
  return `${name}-${suffix}`;
}

export function applyNodeRegister(
  ctx: ApplyContext,
  command: CommandOf<"node.register">,
): Result<unknown> {
  const existing = ctx.view.nodeById(command.id);
  const name = uniqueName(ctx, command.id, command.name);
  const labels = JSON.stringify(command.labels);
  const hostPaths = JSON.stringify(command.hostPaths ?? { allowed: [], denied: [] });
  if (existing) {
    // A node that left stays left when it merely restarts: it is outside the Raft configuration
    // and must not be given work until it joins again (which sets `rejoin`).
    const status =
      existing.status === "left" && !command.rejoin ? "left" : drainedOrReady(ctx, existing.id);
    ctx.run(
      `UPDATE nodes SET name = ?, address = ?, port = ?, status = ?, arch = ?, os = ?, cpus = ?, memory_mb = ?,
       labels = ?, host_paths = ?, key_digest = coalesce(?, key_digest), version = ?,
       updated_at = ?, row_version = row_version + 1 WHERE id = ?`,
      name,
      command.address,
      command.port,
      status,
      command.arch,
      command.os,
      command.cpus,
      command.memoryMb,
      labels,
      hostPaths,
      command.keyDigest ?? null,
      command.version,
      command.at,
      command.id,
    );
    ctx.event({ type: "node.updated", message: `node ${name} registered again`, node: command.id });
    return ok({ id: command.id, name });
  }
  ctx.run(
    `INSERT INTO nodes (id, name, address, port, status, arch, os, cpus, memory_mb, labels, host_paths,
     key_digest, engine_ready, engine_message, version, registered_at, updated_at, row_version)
     VALUES (?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?, ?, 0, 'waiting for the agent', ?, ?, ?, 1)`,
    command.id,
    name,
    command.address,
    command.port,
    command.arch,
    command.os,
    command.cpus,
    command.memoryMb,
    labels,
    hostPaths,
    command.keyDigest ?? "",
    command.version,
    command.at,
    command.at,
  );
  ctx.event({ type: "node.registered", message: `node ${name} joined`, node: command.id });
  return ok({ id: command.id, name });
}

export function applyNodeEngine(
  ctx: ApplyContext,
  command: CommandOf<"node.engine">,
): Result<unknown> {
  const node = ctx.view.nodeById(command.nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${command.nodeId}`);
  if (node.engineReady === command.ready && node.engineMessage === command.message) return ok(null);
  ctx.run(
    `UPDATE nodes SET engine_ready = ?, engine_message = ?, updated_at = ?,
     row_version = row_version + 1 WHERE id = ?`,
    command.ready ? 1 : 0,
    command.message,
    command.at,
    command.nodeId,
  );
  const message = command.ready
    ? `container engine on ${node.name} answers`
    : `container engine on ${node.name} unreachable: ${command.message}`;
  ctx.event({
    type: command.ready ? "node.engine.up" : "node.engine.down",
    message,
    node: node.id,
  });
  return ok(null);
}

const megabytes = (bytes: number | null): string =>
  bytes === null ? "unknown" : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

/** A node's disk filled or has room again: recorded once per change, with an event. */
export function applyNodeDisk(ctx: ApplyContext, command: CommandOf<"node.disk">): Result<unknown> {
  const node = ctx.view.nodeById(command.nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${command.nodeId}`);
  if (node.diskFull === command.full) return ok(null);
  ctx.run(
    "UPDATE nodes SET disk_full = ?, updated_at = ?, row_version = row_version + 1 WHERE id = ?",
    command.full ? 1 : 0,
    command.at,
    node.id,
  );
  const free = `${megabytes(command.freeBytes)} free, reserve ${megabytes(command.reserveBytes)}`;
  ctx.event(
    command.full
      ? {
          type: "node.disk_full",
          message: `disk of node ${node.name} is full (${free}): it refuses writes as leader and takes no new tasks`,
          node: node.id,
        }
      : {
          type: "node.disk_ok",
          message: `disk of node ${node.name} has room again (${free})`,
          node: node.id,
        },
  );
  return ok(null);
}

/** Records what the node's ingress listens on; a port that starts or fails to listen is an event. */
export function applyNodeIngress(
  ctx: ApplyContext,
  command: CommandOf<"node.ingress">,
): Result<unknown> {
  const node = ctx.view.nodeById(command.nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${command.nodeId}`);
  if (JSON.stringify(node.ingress) === JSON.stringify(command.listeners)) return ok(null);
  ctx.run("UPDATE nodes SET ingress = ? WHERE id = ?", JSON.stringify(command.listeners), node.id);
  const before = new Map(node.ingress.map((each) => [each.port, each]));
  for (const each of command.listeners) {
    const was = before.get(each.port);
    if (was && was.listening === each.listening && was.message === each.message) continue;
    ctx.event(
      each.listening
        ? {
            type: "ingress.listening",
            message: `node ${node.name} listens on ingress port ${each.port}`,
            node: node.id,
          }
        : {
            type: "ingress.failed",
            message: `node ${node.name} cannot listen on ingress port ${each.port}: ${each.message}; the other nodes still serve it`,
            node: node.id,
          },
    );
  }
  return ok(null);
}

/**
 * A node that left on purpose (`shoal node rm`, `shoal agent --leave`) keeps its row, as ECS keeps
 * a deregistered instance, but takes no work: its tasks stop and the scheduler places them anew.
 */
export function applyNodeLeave(
  ctx: ApplyContext,
  command: CommandOf<"node.leave">,
): Result<unknown> {
  const node = ctx.view.nodeById(command.nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${command.nodeId}`);
  if (node.status === "left") return ok({ id: node.id, name: node.name });
  ctx.run(
    "UPDATE nodes SET status = 'left', updated_at = ?, row_version = row_version + 1 WHERE id = ?",
    command.at,
    node.id,
  );
  for (const task of ctx.view.activeTasksForNode(node.id)) {
    ctx.run(
      `UPDATE tasks SET desired = 'stopped', state = 'lost', reason = ?, stopped_at = ?, updated_at = ?,
       version = version + 1 WHERE id = ?`,
      `node ${node.name} left the cluster`,
      command.at,
      command.at,
      task.id,
    );
  }
  ctx.event({ type: "node.left", message: `node ${node.name} left the cluster`, node: node.id });
  return ok({ id: node.id, name: node.name });
}

/**
 * The leader judged a node silent for too long: the node is down and its tasks are lost, so the
 * scheduler places them elsewhere at once. Its containers may still run where it is cut off; it
 * stops those of replaced tasks when it comes back.
 */
export function applyNodeDown(ctx: ApplyContext, command: CommandOf<"node.down">): Result<unknown> {
  const node = judgedNode(ctx, command.nodeId, command.rowVersion);
  if (!node.ok) return node;
  const { id, name, status } = node.value;
  // Only a node that takes work goes down; one already down or gone stays as it is.
  if (status !== "ready" && status !== "draining") return ok({ id, name, lost: 0 });
  ctx.run(
    "UPDATE nodes SET status = 'down', updated_at = ?, row_version = row_version + 1 WHERE id = ?",
    command.at,
    id,
  );
  const silent = `node ${name} went silent for ${(command.silentMs / 1000).toFixed(1)} s`;
  const tasks = ctx.view.activeTasksForNode(id);
  for (const task of tasks) {
    ctx.run(
      `UPDATE tasks SET desired = 'stopped', state = 'lost', reason = ?, stopped_at = ?, updated_at = ?,
       version = version + 1 WHERE id = ?`,
      silent,
      command.at,
      command.at,
      task.id,
    );
  }
  ctx.event({ type: "node.down", message: `${silent}: ${tasks.length} task(s) lost`, node: id });
  return ok({ id, name, lost: tasks.length });
}

/** A down node was heard again: it takes work again. */
export function applyNodeUp(ctx: ApplyContext, command: CommandOf<"node.up">): Result<unknown> {
  const node = judgedNode(ctx, command.nodeId, command.rowVersion);
  if (!node.ok) return node;
  const { id, name, status } = node.value;
  if (status !== "down") return ok({ id, name });
  ctx.run(
    "UPDATE nodes SET status = ?, updated_at = ?, row_version = row_version + 1 WHERE id = ?",
    drainedOrReady(ctx, id),
    command.at,
    id,
  );
  ctx.event({ type: "node.up", message: `node ${name} is back`, node: id });
  return ok({ id, name });
}

/** The node a leader's judgement is about, as long as its row is the one the leader read. */
function judgedNode(ctx: ApplyContext, nodeId: string, rowVersion: number): Result<NodeInfo> {
  const node = ctx.view.nodeById(nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${nodeId}`);
  if (node.rowVersion !== rowVersion) {
    return fail("E_CONFLICT", `stale: node ${node.name} changed since it was judged`);
  }
  return ok(node);
}

/** A node people drained stays draining through a restart or an outage, until activated. */
function drainedOrReady(ctx: ApplyContext, nodeId: string): "draining" | "ready" {
  return ctx.view.isDrained(nodeId) ? "draining" : "ready";
}

/**
 * `shoal node drain`: the node takes no new tasks, and the scheduler moves its tasks away,
 * starting each replacement before it stops the old task (within minHealthyPercent).
 */
export function applyNodeDrain(
  ctx: ApplyContext,
  command: CommandOf<"node.drain">,
): Result<unknown> {
  return setDrained(ctx, command.nodeId, true);
}

/** `shoal node activate`: a drained node takes tasks again. */
export function applyNodeActivate(
  ctx: ApplyContext,
  command: CommandOf<"node.activate">,
): Result<unknown> {
  return setDrained(ctx, command.nodeId, false);
}

/** Drains or activates a node; a node down meanwhile keeps its status until it is back. */
function setDrained(ctx: ApplyContext, nodeId: string, drained: boolean): Result<unknown> {
  const node = ctx.view.nodeById(nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${nodeId}`);
  if (node.status === "left") return fail("E_CONFLICT", `node ${node.name} has left the cluster`);
  const { id, name } = node;
  if (ctx.view.isDrained(id) === drained) return ok({ id, name, status: node.status });
  const [from, to] = drained ? ["ready", "draining"] : ["draining", "ready"];
  const status = node.status === from ? to : node.status;
  ctx.run(
    `UPDATE nodes SET drained = ?, status = ?, updated_at = ?, row_version = row_version + 1
     WHERE id = ?`,
    drained ? 1 : 0,
    status,
    ctx.at,
    id,
  );
  ctx.event(
    drained
      ? { type: "node.draining", message: `node ${name} is draining`, node: id }
      : { type: "node.active", message: `node ${name} takes tasks again`, node: id },
  );
  return ok({ id, name, status, rescheduled: true });
}

/** `shoal node label`: labels people set, kept beside (and over) the agent's own. */
export function applyNodeLabel(
  ctx: ApplyContext,
  command: CommandOf<"node.label">,
): Result<unknown> {
  const node = ctx.view.nodeById(command.nodeId);
  if (!node) return fail("E_NOT_FOUND", `no node ${command.nodeId}`);
  const labels = { ...node.userLabels, ...command.set };
  for (const key of command.remove) {
    if (!Object.hasOwn(labels, key) && Object.hasOwn(node.labels, key)) {
      return fail(
        "E_CONFLICT",
        `label ${key} on ${node.name} comes from its agent's --labels: change it there`,
      );
    }
    delete labels[key];
  }
  if (Object.keys({ ...node.labels, ...labels }).length > limits.labelsPerNodeMax) {
    return fail("E_VALIDATION", `a node has at most ${limits.labelsPerNodeMax} labels`);
  }
  ctx.run(
    "UPDATE nodes SET user_labels = ?, updated_at = ?, row_version = row_version + 1 WHERE id = ?",
    JSON.stringify(labels),
    command.at,
    node.id,
  );
  const shown = Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  ctx.event({
    type: "node.labelled",
    message: `node ${node.name} labels: ${shown || "(none set)"}`,
    node: node.id,
  });
  return ok({
    id: node.id,
    name: node.name,
    labels: { ...node.labels, ...labels },
    rescheduled: true,
  });
}

// Handlers for tasks: one-off runs, stops, and the state agents report.
import { fail, ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { isTerminal, type PlannedTask, type Task, type TaskState } from "../core/types.ts";
import type { CommandOf } from "./commands.ts";
import type { ApplyContext } from "./context.ts";
import { countDeploymentFailure } from "./deployments.ts";
import { fixedPortTaken } from "./ingress.ts";
import { registerTaskDefinition } from "./task-definitions.ts";

type TaskReport = CommandOf<"task.report">["reports"][number];

export function insertTask(ctx: ApplyContext, planned: PlannedTask): void {
  const node = planned.node ? ctx.view.nodeById(planned.node) : null;
  const definition = ctx.view.taskDefinition(
    planned.taskDefinition.family,
    planned.taskDefinition.revision,
  );
  const containers = (definition?.containers ?? []).map((container) => ({
    name: container.name,
    containerId: null,
    state: "created",
    exitCode: null,
    health: null,
    ports: [],
  }));
  ctx.run(
    `INSERT INTO tasks (id, service, td_family, td_revision, node, node_name, desired, state, reason,
     exit_code, containers, created_at, updated_at, started_at, stopped_at, version)
     VALUES (?, ?, ?, ?, ?, ?, 'running', 'pending', '', NULL, ?, ?, ?, NULL, NULL, 1)`,
    planned.id,
    planned.service,
    planned.taskDefinition.family,
    planned.taskDefinition.revision,
    node?.id ?? null,
    node?.name ?? null,
    JSON.stringify(containers),
    ctx.at,
    ctx.at,
  );
  const what = planned.service ? `task ${planned.id} of ${planned.service}` : `task ${planned.id}`;
  ctx.event({
    type: node ? "task.placed" : "task.pending",
    message: node ? `${what} placed on ${node.name}` : `${what} waits for capacity`,
    service: planned.service,
    task: planned.id,
    node: node?.id ?? null,
  });
}

/**
 * Marks a task desired stopped. Only a task on no node stops at once: a placed task may already
 * have containers (holding its ports) until its agent reports them stopped.
 */
export function stopTask(ctx: ApplyContext, task: Task, reason: string): void {
  const stopsNow = task.node === null;
  ctx.run(
    `UPDATE tasks SET desired = 'stopped', reason = ?, state = ?, stopped_at = ?, updated_at = ?,
     version = version + 1 WHERE id = ?`,
    reason,
    stopsNow ? "stopped" : task.state,
    stopsNow ? ctx.at : task.stoppedAt,
    ctx.at,
    task.id,
  );
  ctx.event({
    type: stopsNow ? "task.stopped" : "task.stopping",
    message: `task ${task.id} ${stopsNow ? "stopped" : "stopping"}: ${reason}`,
    service: task.service,
    task: task.id,
    node: task.node,
  });
}

export function applyTaskRun(ctx: ApplyContext, command: CommandOf<"task.run">): Result<unknown> {
  if (ctx.view.task(command.taskId)) return fail("E_CONFLICT", `task ${command.taskId} exists`);
  const revision = runRevision(ctx, command);
  if (!revision.ok) return revision;
  insertTask(ctx, {
    id: command.taskId,
    service: null,
    taskDefinition: { family: command.family, revision: revision.value },
    node: null,
  });
  return ok({ taskId: command.taskId });
}

/** The revision a one-off task runs: its containers registered, or one named that exists. */
function runRevision(ctx: ApplyContext, command: CommandOf<"task.run">): Result<number> {
  const { family, revision } = command;
  const known = revision === undefined ? null : ctx.view.taskDefinition(family, revision);
  const containers = command.containers ?? known?.containers;
  if (!containers) return fail("E_NOT_FOUND", `no task definition ${family}:${revision ?? "?"}`);
  const taken = fixedPortTaken(ctx.view, null, containers);
  if (taken !== null) return fail("E_PORT_CONFLICT", taken);
  return ok(command.containers ? registerTaskDefinition(ctx, family, containers) : (revision ?? 0));
}

export function applyTaskStop(ctx: ApplyContext, command: CommandOf<"task.stop">): Result<unknown> {
  const task = ctx.view.task(command.taskId);
  if (!task) return fail("E_NOT_FOUND", `no task ${command.taskId}`);
  if (task.desired === "stopped") return ok({ taskId: task.id });
  stopTask(ctx, task, command.reason);
  return ok({ taskId: task.id });
}

export function applyTaskReport(
  ctx: ApplyContext,
  command: CommandOf<"task.report">,
): Result<unknown> {
  let changed = 0;
  for (const report of command.reports) {
    if (applyOneReport(ctx, report)) changed += 1;
  }
  return ok({ changed });
}

/** Reports from a node the task is not on, or about a finished task, change nothing. */
function applyOneReport(ctx: ApplyContext, report: TaskReport): boolean {
  const task = ctx.view.task(report.taskId);
  if (!task || task.node !== report.node || isTerminal(task.state)) return false;
  const sameState = task.state === report.state && task.reason === report.reason;
  if (sameState && JSON.stringify(task.containers) === JSON.stringify(report.containers)) {
    return false;
  }
  if (!reportAdvances(task.state, report.state)) return false;
  const terminal = isTerminal(report.state);
  ctx.run(
    `UPDATE tasks SET state = ?, reason = ?, exit_code = ?, containers = ?, updated_at = ?,
     started_at = COALESCE(started_at, ?), stopped_at = ?, desired = ?, version = version + 1
     WHERE id = ?`,
    report.state,
    report.reason || (terminal ? task.reason : ""),
    report.exitCode,
    JSON.stringify(report.containers),
    ctx.at,
    report.state === "running" ? ctx.at : null,
    terminal ? ctx.at : null,
    terminal ? "stopped" : task.desired,
    task.id,
  );
  if (!sameState) recordTransition(ctx, task, report);
  // A task already asked to stop (scaled down, replaced) failing on its way out is no crash loop.
  if (report.state === "failed" && task.service && task.desired === "running")
    countFailure(ctx, task);
  return true;
}

const stateOrder: Record<TaskState, number> = {
  pending: 0,
  starting: 1,
  running: 2,
  stopped: 3,
  failed: 3,
  lost: 3,
};

/** A task only moves forward; a late report of an earlier state is ignored. */
function reportAdvances(current: TaskState, reported: TaskState): boolean {
  return stateOrder[reported] >= stateOrder[current];
}

function recordTransition(ctx: ApplyContext, task: Task, report: TaskReport): void {
  const reason = report.reason ? `: ${report.reason}` : "";
  ctx.event({
    type: `task.${report.state}`,
    message: `task ${task.id}${task.service ? ` of ${task.service}` : ""} ${report.state}${reason}`,
    service: task.service,
    task: task.id,
    node: task.node,
  });
}

/**
 * A failure after a stable run starts a new streak; quick failures lengthen the backoff. A task
 * of a revision being deployed also counts towards the deployment's circuit breaker.
 */
function countFailure(ctx: ApplyContext, task: Task): void {
  const ranStably = task.startedAt !== null && ctx.at - task.startedAt >= limits.taskStableMs;
  ctx.run(
    `UPDATE services SET failure_streak = CASE WHEN ? THEN 1 ELSE failure_streak + 1 END,
     last_failure_at = ?, version = version + 1 WHERE name = ?`,
    ranStably ? 1 : 0,
    ctx.at,
    task.service,
  );
  // After the streak: a tripped breaker's rollback starts the old revision with a fresh one.
  const service = task.service === null ? null : ctx.view.service(task.service);
  if (service) countDeploymentFailure(ctx, service, task);
}

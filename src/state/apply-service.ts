// Handlers for services and the task definitions they register.
import { fail, ok, type Result } from "../core/errors.ts";
import type { ContainerSpec, Service } from "../core/types.ts";
import { stopTask } from "./apply-task.ts";
import type { CommandOf } from "./commands.ts";
import type { ApplyContext } from "./context.ts";
import { registerTaskDefinition } from "./task-definitions.ts";

export function applyServiceCreate(
  ctx: ApplyContext,
  command: CommandOf<"service.create">,
): Result<unknown> {
  if (ctx.view.service(command.name)) {
    return fail("E_CONFLICT", `a service named ${command.name} already exists`);
  }
  const revision = registerTaskDefinition(ctx, command.name, command.containers);
  ctx.run(
    `INSERT INTO services (name, mode, replicas, td_family, td_revision, failure_streak,
     last_failure_at, created_at, updated_at, version) VALUES (?, 'replicated', ?, ?, ?, 0, NULL, ?, ?, 1)`,
    command.name,
    command.replicas,
    command.name,
    revision,
    command.at,
    command.at,
  );
  ctx.event({
    type: "service.created",
    message: `service ${command.name} created with ${command.replicas} replica(s)`,
    service: command.name,
  });
  return ok({ name: command.name, revision });
}

export function applyServiceUpdate(
  ctx: ApplyContext,
  command: CommandOf<"service.update">,
): Result<unknown> {
  const service = ctx.view.service(command.name);
  if (!service) return fail("E_NOT_FOUND", `no service named ${command.name}`);
  const changed =
    command.containers !== undefined && containersDiffer(ctx, service, command.containers);
  let revision = service.taskDefinition.revision;
  if (changed && command.containers) {
    revision = registerTaskDefinition(ctx, service.taskDefinition.family, command.containers);
    replaceOldRevision(ctx, command.name, revision);
  }
  const replicas = command.replicas ?? service.replicas;
  // New containers start a fresh failure streak; scaling alone does not forgive a crash loop.
  ctx.run(
    `UPDATE services SET replicas = ?, td_revision = ?,
     failure_streak = CASE WHEN ? THEN 0 ELSE failure_streak END,
     last_failure_at = CASE WHEN ? THEN NULL ELSE last_failure_at END,
     updated_at = ?, version = version + 1 WHERE name = ?`,
    replicas,
    revision,
    changed ? 1 : 0,
    changed ? 1 : 0,
    command.at,
    command.name,
  );
  if (replicas !== service.replicas) {
    ctx.event({
      type: "service.scaled",
      message: `service ${command.name} scaled from ${service.replicas} to ${replicas}`,
      service: command.name,
    });
  }
  // `rescheduled` tells the leader's scheduler whether it has anything new to place or stop.
  const rescheduled = changed || replicas !== service.replicas;
  return ok({ name: command.name, revision, replicas, rescheduled });
}

function containersDiffer(
  ctx: ApplyContext,
  service: Service,
  containers: readonly ContainerSpec[],
): boolean {
  const { family, revision } = service.taskDefinition;
  const current = ctx.view.taskDefinition(family, revision);
  // Both sides were decoded by the same schema, so equal containers encode equally.
  return JSON.stringify(containers) !== JSON.stringify(current?.containers);
}

/** Tasks of an older revision stop; the scheduler starts the new revision's in their place. */
function replaceOldRevision(ctx: ApplyContext, service: string, revision: number): void {
  for (const task of ctx.view.activeTasks()) {
    if (
      task.service !== service ||
      task.desired !== "running" ||
      task.taskDefinition.revision === revision
    )
      continue;
    stopTask(ctx, task, `replaced by revision ${revision}`);
  }
  ctx.event({
    type: "service.updated",
    message: `service ${service} moves to revision ${revision}`,
    service,
  });
}

export function applyServiceDelete(
  ctx: ApplyContext,
  command: CommandOf<"service.delete">,
): Result<unknown> {
  const service = ctx.view.service(command.name);
  if (!service) return fail("E_NOT_FOUND", `no service named ${command.name}`);
  for (const task of ctx.view.activeTasks()) {
    if (task.service === command.name && task.desired === "running") {
      stopTask(ctx, task, "service deleted");
    }
  }
  ctx.run("DELETE FROM services WHERE name = ?", command.name);
  ctx.event({
    type: "service.deleted",
    message: `service ${command.name} deleted`,
    service: command.name,
  });
  return ok({ name: command.name });
}

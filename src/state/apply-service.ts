// Handlers for services and the task definitions they register. A change of containers is a new
// revision and a deployment; the scheduler then moves the tasks within the deployment's bounds.
import { fail, ok, type Result } from "../core/errors.ts";
import {
  type ContainerSpec,
  deploymentDefaults,
  drainMsDefault,
  type Ingress,
  placementDefaults,
  type Service,
} from "../core/types.ts";
import { stopTask } from "./apply-task.ts";
import type { CommandOf } from "./commands.ts";
import type { ApplyContext } from "./context.ts";
import { setRevision, startDeployment } from "./deployments.ts";
import { fixedPortTaken, ingressConflict, resolveIngress, withIngressPorts } from "./ingress.ts";
import type { ServiceSettings } from "./rows.ts";
import { registerTaskDefinition } from "./task-definitions.ts";

export function applyServiceCreate(
  ctx: ApplyContext,
  command: CommandOf<"service.create">,
): Result<unknown> {
  if (ctx.view.service(command.name)) {
    return fail("E_CONFLICT", `a service named ${command.name} already exists`);
  }
  const mode = command.mode ?? "replicated";
  const ingress = resolveIngress(command.ingress ?? [], command.containers);
  if (!ingress.ok) return ingress;
  const containers = withIngressPorts(command.containers, ingress.value);
  const refused = portsRefused(ctx, command.name, ingress.value, containers);
  if (refused) return refused;
  const settings: ServiceSettings = {
    placement: command.placement ?? placementDefaults,
    deployment: command.deployment ?? deploymentDefaults,
    stopAfterDisconnectMs: command.stopAfterDisconnectMs ?? null,
    ingress: ingress.value,
    drainMs: command.drainMs ?? drainMsDefault,
  };
  const revision = registerTaskDefinition(ctx, command.name, containers);
  ctx.run(
    `INSERT INTO services (name, mode, replicas, td_family, td_revision, failure_streak,
     last_failure_at, created_at, updated_at, version, settings, rebalance_requested)
     VALUES (?, ?, ?, ?, ?, 0, NULL, ?, ?, 1, ?, 0)`,
    command.name,
    mode,
    command.replicas,
    command.name,
    revision,
    command.at,
    command.at,
    JSON.stringify(settings),
  );
  const count = mode === "global" ? "one task per eligible node" : `${command.replicas} replica(s)`;
  ctx.event({
    type: "service.created",
    message: `service ${command.name} created with ${count}`,
    service: command.name,
  });
  const service = { name: command.name, mode, replicas: command.replicas };
  startDeployment(ctx, service, null, revision, false, `revision ${revision} created`);
  return ok({ name: command.name, revision });
}

/** E_PORT_CONFLICT when the ingress or a fixed host port of `containers` is taken. */
function portsRefused(
  ctx: ApplyContext,
  name: string,
  ingress: readonly Ingress[],
  containers: readonly ContainerSpec[],
): Result<never> | null {
  const reason =
    ingressConflict(ctx.view, name, ingress, containers) ??
    fixedPortTaken(ctx.view, name, containers);
  return reason === null ? null : fail("E_PORT_CONFLICT", reason);
}

function settingsOf(service: Service): ServiceSettings {
  const { placement, deployment, stopAfterDisconnectMs, ingress, drainMs } = service;
  return { placement, deployment, stopAfterDisconnectMs, ingress, drainMs };
}

/**
 * The containers and ingress an update leads to: ingress given is resolved against the
 * containers, ingress kept must still name one of them; the ingress ports are published.
 */
function updatedContainers(
  ctx: ApplyContext,
  service: Service,
  command: CommandOf<"service.update">,
): Result<{ containers: ContainerSpec[]; ingress: Ingress[] }> {
  const { family, revision } = service.taskDefinition;
  const given = command.containers ?? ctx.view.taskDefinition(family, revision)?.containers ?? [];
  let ingress: Ingress[] = service.ingress;
  if (command.ingress !== undefined) {
    const resolved = resolveIngress(command.ingress, given);
    if (!resolved.ok) return resolved;
    ingress = resolved.value;
  }
  const lost = ingress.find((each) => !given.some((c) => c.name === each.container));
  if (lost) {
    return fail(
      "E_VALIDATION",
      `ingress ${lost.port} names container ${lost.container}, which the task no longer has`,
    );
  }
  return ok({ containers: withIngressPorts(given, ingress), ingress });
}

export function applyServiceUpdate(
  ctx: ApplyContext,
  command: CommandOf<"service.update">,
): Result<unknown> {
  const service = ctx.view.service(command.name);
  if (!service) return fail("E_NOT_FOUND", `no service named ${command.name}`);
  if (service.mode === "global" && command.replicas !== undefined) {
    return fail("E_VALIDATION", `service ${command.name} is global: it has no replica count`);
  }
  const next = updatedContainers(ctx, service, command);
  if (!next.ok) return next;
  const { containers, ingress } = next.value;
  const refused = portsRefused(ctx, command.name, ingress, containers);
  if (refused) return refused;
  const changed = containersDiffer(ctx, service, containers);
  const before = JSON.stringify(settingsOf(service));
  const settings: ServiceSettings = {
    placement: command.placement ?? service.placement,
    deployment: command.deployment ?? service.deployment,
    stopAfterDisconnectMs:
      command.stopAfterDisconnectMs === undefined
        ? service.stopAfterDisconnectMs
        : command.stopAfterDisconnectMs,
    ingress,
    drainMs: command.drainMs ?? service.drainMs,
  };
  const settingsChanged = JSON.stringify(settings) !== before;
  const replicas = command.replicas ?? service.replicas;
  ctx.run(
    `UPDATE services SET replicas = ?, settings = ?, updated_at = ?, version = version + 1
     WHERE name = ?`,
    replicas,
    JSON.stringify(settings),
    command.at,
    command.name,
  );
  let revision = service.taskDefinition.revision;
  if (changed) {
    revision = registerTaskDefinition(ctx, service.taskDefinition.family, containers);
    setRevision(ctx, command.name, revision);
    const reason = `revision ${service.taskDefinition.revision} -> ${revision}`;
    startDeployment(
      ctx,
      { ...service, replicas },
      service.taskDefinition.revision,
      revision,
      false,
      reason,
    );
  }
  if (replicas !== service.replicas) {
    ctx.event({
      type: "service.scaled",
      message: `service ${command.name} scaled from ${service.replicas} to ${replicas}`,
      service: command.name,
    });
  }
  if (settingsChanged) {
    ctx.event({
      type: "service.updated",
      message: `service ${command.name}: placement, deployment, disconnect, ingress or drain settings changed`,
      service: command.name,
    });
  }
  // `rescheduled` tells the leader's scheduler whether it has anything new to place or stop.
  const rescheduled = changed || settingsChanged || replicas !== service.replicas;
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

/** Back to the revision of the last completed deployment (not the current one), as a deployment. */
export function applyServiceRollback(
  ctx: ApplyContext,
  command: CommandOf<"service.rollback">,
): Result<unknown> {
  const service = ctx.view.service(command.name);
  if (!service) return fail("E_NOT_FOUND", `no service named ${command.name}`);
  const current = service.taskDefinition.revision;
  const back = ctx.view.lastCompletedRevision(command.name, current);
  if (back === null) {
    return fail(
      "E_CONFLICT",
      `service ${command.name} has no other revision that completed a deployment to roll back to`,
    );
  }
  const target = ctx.view.taskDefinition(service.taskDefinition.family, back);
  if (!target) return fail("E_CONFLICT", `revision ${back} of ${command.name} is no longer kept`);
  // The revision must serve today's ingress and hold no port taken since.
  const refused = portsRefused(ctx, command.name, service.ingress, target.containers);
  if (refused) return refused;
  setRevision(ctx, command.name, back);
  startDeployment(
    ctx,
    service,
    current,
    back,
    true,
    `rollback asked: revision ${current} -> ${back}`,
  );
  return ok({ name: command.name, revision: back, rescheduled: true });
}

export function applyServiceRebalance(
  ctx: ApplyContext,
  command: CommandOf<"service.rebalance">,
): Result<unknown> {
  const service = ctx.view.service(command.name);
  if (!service) return fail("E_NOT_FOUND", `no service named ${command.name}`);
  if (service.mode === "global") {
    return fail("E_VALIDATION", `service ${command.name} is global: it runs one task per node`);
  }
  ctx.run(
    "UPDATE services SET rebalance_requested = 1, version = version + 1 WHERE name = ?",
    command.name,
  );
  ctx.event({
    type: "service.rebalance",
    message: `service ${command.name} spreads its tasks again`,
    service: command.name,
  });
  return ok({ name: command.name, rescheduled: true });
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
  ctx.run("DELETE FROM deployments WHERE service = ?", command.name);
  ctx.event({
    type: "service.deleted",
    message: `service ${command.name} deleted`,
    service: command.name,
  });
  return ok({ name: command.name });
}

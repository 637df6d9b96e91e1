// Deployments: each change of a service's revision is one, and its circuit breaker counts the
// failed tasks of the new revision (ECS's semantics: the threshold is half the desired count,
// clamped to 3..200). A tripped breaker rolls back to the revision of the last completed
// deployment when the service allows it, as a deployment of its own; a failed rollback is not
// rolled back again. All of it
// runs in the state machine, so every replica agrees without the leader's help; only the
// scheduler's "every task healthy" completes a deployment (plan.apply).
import { limits } from "../core/limits.ts";
import type { Deployment, Service, Task } from "../core/types.ts";
import type { ApplyContext } from "./context.ts";

function failureThreshold(desired: number): number {
  const share = Math.ceil(desired * limits.deploymentFailureShare);
  return Math.min(limits.deploymentFailuresMax, Math.max(limits.deploymentFailuresMin, share));
}

/** The count a deployment of the service aims for: a global service's is its ready nodes. */
function desiredCount(ctx: ApplyContext, service: Pick<Service, "mode" | "replicas">): number {
  if (service.mode === "replicated") return service.replicas;
  return ctx.view.nodes().filter((node) => node.status === "ready").length;
}

/** Starts a deployment to `toRevision`; one still in progress is superseded by it. */
export function startDeployment(
  ctx: ApplyContext,
  service: Pick<Service, "name" | "mode" | "replicas">,
  fromRevision: number | null,
  toRevision: number,
  isRollback: boolean,
  reason: string,
): void {
  ctx.run(
    `UPDATE deployments SET status = 'superseded', updated_at = ?
     WHERE service = ? AND status = 'in_progress'`,
    ctx.at,
    service.name,
  );
  ctx.run(
    `INSERT INTO deployments (service, from_revision, to_revision, status, failed_tasks,
     failure_threshold, is_rollback, reason, created_at, updated_at)
     VALUES (?, ?, ?, 'in_progress', 0, ?, ?, ?, ?, ?)`,
    service.name,
    fromRevision,
    toRevision,
    failureThreshold(desiredCount(ctx, service)),
    isRollback ? 1 : 0,
    reason,
    ctx.at,
    ctx.at,
  );
  ctx.run(
    `DELETE FROM deployments WHERE service = ? AND id NOT IN (
       SELECT id FROM deployments WHERE service = ? ORDER BY id DESC LIMIT ?)`,
    service.name,
    service.name,
    limits.deploymentsRetainPerService,
  );
  ctx.event({
    type: isRollback ? "deployment.rollback" : "deployment.started",
    message: `service ${service.name}: ${reason}`,
    service: service.name,
  });
}

export function completeDeployment(ctx: ApplyContext, service: string): void {
  const deployment = ctx.view.deploymentInProgress(service);
  if (!deployment) return;
  setStatus(ctx, deployment, "completed", "");
  ctx.event({
    type: "deployment.completed",
    message: `service ${service} runs revision ${deployment.toRevision} on every task`,
    service,
  });
}

/** A task of the service failed while it was desired running: the breaker counts it. */
export function countDeploymentFailure(ctx: ApplyContext, service: Service, task: Task): void {
  const deployment = ctx.view.deploymentInProgress(service.name);
  if (!deployment || deployment.toRevision !== task.taskDefinition.revision) return;
  const failed = deployment.failedTasks + 1;
  ctx.run("UPDATE deployments SET failed_tasks = ? WHERE id = ?", failed, deployment.id);
  if (failed < deployment.failureThreshold) return;
  trip(ctx, service, { ...deployment, failedTasks: failed });
}

function trip(ctx: ApplyContext, service: Service, deployment: Deployment): void {
  const why = `${deployment.failedTasks} task(s) of revision ${deployment.toRevision} failed`;
  const back = ctx.view.lastCompletedRevision(service.name, deployment.toRevision);
  const canRollBack =
    service.deployment.rollback &&
    !deployment.isRollback &&
    back !== null &&
    ctx.view.taskDefinition(service.taskDefinition.family, back) !== null;
  if (!canRollBack) {
    setStatus(ctx, deployment, "failed", why);
    ctx.event({
      type: "deployment.failed",
      message: `service ${service.name}: deployment of revision ${deployment.toRevision} failed: ${why}`,
      service: service.name,
    });
    return;
  }
  setStatus(ctx, deployment, "rolled_back", why);
  setRevision(ctx, service.name, back);
  startDeployment(
    ctx,
    service,
    deployment.toRevision,
    back,
    true,
    `${why}: rolling back to revision ${back}`,
  );
}

/** Points the service at a revision; its new containers start with a fresh failure streak. */
export function setRevision(ctx: ApplyContext, service: string, revision: number): void {
  ctx.run(
    `UPDATE services SET td_revision = ?, failure_streak = 0, last_failure_at = NULL,
     updated_at = ?, version = version + 1 WHERE name = ?`,
    revision,
    ctx.at,
    service,
  );
}

function setStatus(
  ctx: ApplyContext,
  deployment: Deployment,
  status: Deployment["status"],
  reason: string,
): void {
  ctx.run(
    "UPDATE deployments SET status = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END, updated_at = ? WHERE id = ?",
    status,
    reason,
    reason,
    ctx.at,
    deployment.id,
  );
}

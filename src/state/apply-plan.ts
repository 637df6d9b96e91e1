// Applies a scheduler plan, fenced: a plan derived from rows that have changed since it was
// computed (for example by a deposed leader) is refused whole and changes nothing.
import { fail, ok, type Result } from "../core/errors.ts";
import type { Plan } from "../core/types.ts";
import { insertTask, stopTask } from "./apply-task.ts";
import type { CommandOf } from "./commands.ts";
import type { ApplyContext } from "./context.ts";
import { completeDeployment } from "./deployments.ts";

function staleRead(ctx: ApplyContext, plan: Plan): string | null {
  for (const [name, version] of Object.entries(plan.reads.services)) {
    const service = ctx.view.service(name);
    if (!service || service.version !== version) return `service ${name}`;
  }
  for (const [id, version] of Object.entries(plan.reads.tasks)) {
    const task = ctx.view.task(id);
    if (!task || task.version !== version) return `task ${id}`;
  }
  for (const [id, version] of Object.entries(plan.reads.nodes)) {
    const node = ctx.view.nodeById(id);
    if (!node || node.rowVersion !== version) return `node ${node?.name ?? id}`;
  }
  return null;
}

export function applyPlan(ctx: ApplyContext, command: CommandOf<"plan.apply">): Result<unknown> {
  const { plan } = command;
  const stale = staleRead(ctx, plan);
  if (stale) return fail("E_CONFLICT", `stale plan: ${stale} changed since it was read`);
  for (const planned of plan.create) insertTask(ctx, planned);
  for (const assignment of plan.assign) assignTask(ctx, assignment.taskId, assignment.node);
  for (const stop of plan.stop) {
    const task = ctx.view.task(stop.taskId);
    if (task && task.desired === "running") stopTask(ctx, task, stop.reason);
  }
  for (const event of plan.events) {
    ctx.event(event);
    if (event.type === "E_NO_CAPACITY" && event.task) {
      ctx.run(
        "UPDATE tasks SET reason = ? WHERE id = ?",
        `E_NO_CAPACITY: ${event.message}`,
        event.task,
      );
    }
  }
  for (const name of plan.completeDeployments) completeDeployment(ctx, name);
  for (const name of plan.rebalanced) {
    ctx.run("UPDATE services SET rebalance_requested = 0 WHERE name = ?", name);
  }
  bumpServices(ctx, plan);
  return ok({
    created: plan.create.length,
    assigned: plan.assign.length,
    stopped: plan.stop.length,
  });
}

function assignTask(ctx: ApplyContext, taskId: string, nodeId: string): void {
  const task = ctx.view.task(taskId);
  const node = ctx.view.nodeById(nodeId);
  if (!task || !node || task.node !== null || task.desired !== "running") return;
  ctx.run(
    "UPDATE tasks SET node = ?, node_name = ?, reason = '', updated_at = ?, version = version + 1 WHERE id = ?",
    node.id,
    node.name,
    ctx.at,
    task.id,
  );
  ctx.event({
    type: "task.placed",
    message: `task ${task.id}${task.service ? ` of ${task.service}` : ""} placed on ${node.name}`,
    service: task.service,
    task: task.id,
    node: node.id,
  });
}

/** Every service a plan touched changes version, so a second plan from the same view is stale. */
function bumpServices(ctx: ApplyContext, plan: Plan): void {
  const touched = new Set<string>([...Object.keys(plan.reads.services), ...plan.rebalanced]);
  for (const planned of plan.create) if (planned.service) touched.add(planned.service);
  for (const name of touched) {
    ctx.run("UPDATE services SET version = version + 1 WHERE name = ?", name);
  }
}

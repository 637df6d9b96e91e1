// Records decisions into a Plan together with the row versions they were derived from, so that
// every placement or stop carries its fencing reads.
import type { Plan, PlannedTask, Service, Task } from "../core/types.ts";

export function emptyPlan(): Plan {
  return { create: [], assign: [], stop: [], events: [], reads: { services: {}, tasks: {} } };
}

export function recordCreate(plan: Plan, service: Service, task: PlannedTask): void {
  plan.create.push(task);
  plan.reads.services[service.name] = service.version;
}

export function recordAssign(plan: Plan, task: Task, node: string): void {
  plan.assign.push({ taskId: task.id, node });
  plan.reads.tasks[task.id] = task.version;
}

export function recordStop(plan: Plan, service: Service, task: Task, reason: string): void {
  plan.stop.push({ taskId: task.id, reason });
  plan.reads.services[service.name] = service.version;
  plan.reads.tasks[task.id] = task.version;
}

export function recordNoCapacity(
  plan: Plan,
  message: string,
  service: string | null,
  task: string,
): void {
  plan.events.push({ type: "E_NO_CAPACITY", message, service, task });
}

// The JSON shapes the API answers with. Task definitions read as `family:revision`, as in ECS.
import type { Service, Task, TaskDefinition } from "../core/types.ts";
import type { StateView } from "../state/views.ts";

const ref = (td: { family: string; revision: number }): string => `${td.family}:${td.revision}`;

export function renderTask(task: Task) {
  return { ...task, taskDefinition: ref(task.taskDefinition) };
}

export function renderTaskDefinition(definition: TaskDefinition) {
  return { ...definition, id: ref(definition) };
}

export function renderService(view: StateView, service: Service) {
  const tasks = view.activeTasksForService(service.name).filter((t) => t.desired === "running");
  const count = (state: Task["state"]) => tasks.filter((t) => t.state === state).length;
  const definition = view.taskDefinition(
    service.taskDefinition.family,
    service.taskDefinition.revision,
  );
  return {
    name: service.name,
    mode: service.mode,
    replicas: service.replicas,
    taskDefinition: ref(service.taskDefinition),
    containers: definition?.containers ?? [],
    runningCount: count("running"),
    pendingCount: count("pending") + count("starting"),
    failureStreak: service.failureStreak,
    createdAt: service.createdAt,
    updatedAt: service.updatedAt,
    version: service.version,
  };
}

// The JSON shapes the API answers with. Task definitions read as `family:revision`, as in ECS.
import type { Deployment, Service, Task, TaskDefinition } from "../core/types.ts";
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
    // A global service wants one task per node that may run it; the scheduler keeps that count.
    desiredCount: service.mode === "global" ? tasks.length : service.replicas,
    taskDefinition: ref(service.taskDefinition),
    containers: definition?.containers ?? [],
    placement: service.placement,
    deployment: service.deployment,
    stopAfterDisconnectMs: service.stopAfterDisconnectMs,
    ingress: ingressOf(view, service),
    drainMs: service.drainMs,
    rebalanceRequested: service.rebalanceRequested,
    runningCount: count("running"),
    pendingCount: count("pending") + count("starting"),
    failureStreak: service.failureStreak,
    createdAt: service.createdAt,
    updatedAt: service.updatedAt,
    version: service.version,
  };
}

/** Each ingress of the service, with whether each node that is in the fleet listens on it. */
function ingressOf(view: StateView, service: Service) {
  const nodes = service.ingress.length === 0 ? [] : view.nodes().filter((n) => n.status !== "left");
  return service.ingress.map((ingress) => ({
    ...ingress,
    nodes: nodes.map((node) => {
      const report = node.ingress.find((each) => each.port === ingress.port);
      return {
        node: node.id,
        name: node.name,
        status: node.status,
        listening: node.status !== "down" && (report?.listening ?? false),
        message: node.status === "down" ? "node down" : (report?.message ?? "not reported yet"),
      };
    }),
  }));
}

/** A deployment with its progress: tasks of its revision desired running, and how many run. */
export function renderDeployment(deployment: Deployment, tasks: readonly Task[]) {
  const mine = tasks.filter(
    (t) => t.desired === "running" && t.taskDefinition.revision === deployment.toRevision,
  );
  const others = tasks.filter(
    (t) => t.desired === "running" && t.taskDefinition.revision !== deployment.toRevision,
  );
  const live = deployment.status === "in_progress";
  return {
    ...deployment,
    taskCount: live ? mine.length : null,
    runningCount: live ? mine.filter((t) => t.state === "running").length : null,
    oldTaskCount: live ? others.length : null,
  };
}

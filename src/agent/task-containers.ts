// Pure helpers of the reconciler: how a task's containers are named and labelled on the engine,
// how an engine container maps back to a task's container, and what a report says.
import type {
  ContainerSpec,
  Task,
  TaskContainer,
  TaskContainerPort,
  TaskReport,
} from "../core/types.ts";
import {
  labelKeys,
  type RuntimeContainerDetails,
  type RuntimeContainerSpec,
  type RuntimeContainerSummary,
} from "./runtime.ts";

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; anything else becomes a dash. */
function safeName(text: string): string {
  return text.replace(/[^a-zA-Z0-9_.-]/g, "-");
}

/** `shoal-<service, or "task" for a one-off>-<container>-<task id>`: unique, and readable in `docker ps`. */
export function containerName(task: Task, spec: ContainerSpec): string {
  return safeName(`shoal-${task.service ?? "task"}-${spec.name}-${task.id}`);
}

/** The labels that make a container this node's: both the cluster and the node must match. */
export function ownLabels(clusterId: string, nodeId: string): Record<string, string> {
  return { [labelKeys.cluster]: clusterId, [labelKeys.node]: nodeId };
}

export function runtimeSpec(
  clusterId: string,
  nodeId: string,
  task: Task,
  spec: ContainerSpec,
): RuntimeContainerSpec {
  const definition = `${task.taskDefinition.family}:${task.taskDefinition.revision}`;
  return {
    name: containerName(task, spec),
    image: spec.image,
    command: spec.command,
    env: { ...spec.env },
    ports: spec.ports.map((port) => ({ ...port })),
    mounts: spec.mounts.map((mount) => ({ ...mount })),
    cpu: spec.cpu,
    memoryMb: spec.memoryMb,
    healthcheck: spec.healthcheck,
    labels: {
      ...ownLabels(clusterId, nodeId),
      [labelKeys.task]: task.id,
      [labelKeys.service]: task.service ?? "",
      [labelKeys.container]: spec.name,
      [labelKeys.taskDefinition]: definition,
    },
  };
}

export type Observed = RuntimeContainerSummary | RuntimeContainerDetails;

/** A task's container as reported: the spec's ports with the host ports the engine bound. */
export function taskContainer(
  spec: ContainerSpec,
  observed: Observed | null,
  exitCode: number | null,
): TaskContainer {
  const ports: TaskContainerPort[] = spec.ports.map((port) => {
    const bound = observed?.ports.find(
      (p) => p.container === port.container && p.protocol === port.protocol,
    );
    return {
      container: port.container,
      host: bound?.host ?? (port.host || null),
      protocol: port.protocol,
    };
  });
  if (!observed) {
    return {
      name: spec.name,
      containerId: null,
      state: "missing",
      exitCode: null,
      health: null,
      ports,
    };
  }
  const exited = isExited(observed);
  return {
    name: spec.name,
    containerId: observed.id,
    state: exited ? "exited" : observed.state === "created" ? "created" : "running",
    exitCode: exited ? exitCode : null,
    health: exited ? null : observed.health,
    ports,
  };
}

/** What the store already knows of a task, in report form: the baseline for "changed". */
export function reportFromTask(task: Task, nodeId: string): TaskReport {
  return {
    taskId: task.id,
    node: nodeId,
    state: task.state,
    reason: task.reason,
    exitCode: task.exitCode,
    containers: task.containers,
  };
}

/** A stable text of a report, so two reports compare equal when they say the same. */
export function reportKey(report: TaskReport): string {
  const containers = report.containers.map((c) => [
    c.name,
    c.containerId,
    c.state,
    c.exitCode,
    c.health,
    c.ports.map((p) => [p.container, p.host, p.protocol]),
  ]);
  return JSON.stringify([report.state, report.reason, report.exitCode, containers]);
}

/** `container httpd exited with code 137`, the reason people read in `shoal task ls`. */
export function exitReason(
  containerName: string,
  exitCode: number | null,
  oomKilled: boolean,
): string {
  const code = exitCode === null ? "" : ` with code ${exitCode}`;
  return `container ${containerName} exited${code}${oomKilled ? " (out of memory)" : ""}`;
}

/** Exited or dead: the container's process has ended (a `removing` one has not, yet). */
export function isExited(container: Observed | undefined): boolean {
  return container?.state === "exited" || container?.state === "dead";
}

// Maps database rows to domain objects, field by field: libsql's `.get()` rows carry extra keys
// (`_metadata`) that must never leak out, and JSON columns are parsed here, once.
import type { HostPathPolicy } from "../core/host-paths.ts";
import type {
  ContainerSpec,
  Deployment,
  DeploymentSettings,
  DeploymentStatus,
  DesiredState,
  Ingress,
  IngressListening,
  NodeInfo,
  NodeStatus,
  Placement,
  Service,
  ServiceMode,
  ShoalEvent,
  Task,
  TaskContainer,
  TaskDefinition,
  TaskState,
} from "../core/types.ts";
import { deploymentDefaults, drainMsDefault, placementDefaults } from "../core/types.ts";

type Row = Record<string, unknown>;

export function deploymentFromRow(row: Row): Deployment {
  return {
    id: int(row.id),
    service: text(row.service),
    fromRevision: intOrNull(row.from_revision),
    toRevision: int(row.to_revision),
    status: text(row.status) as DeploymentStatus,
    failedTasks: int(row.failed_tasks),
    failureThreshold: int(row.failure_threshold),
    isRollback: int(row.is_rollback) === 1,
    reason: text(row.reason),
    createdAt: int(row.created_at),
    updatedAt: int(row.updated_at),
  };
}

const text = (value: unknown): string => String(value);
const int = (value: unknown): number => Number(value);
const intOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
const textOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);

export function nodeFromRow(row: Row): NodeInfo {
  return {
    id: text(row.id),
    name: text(row.name),
    address: text(row.address),
    port: int(row.port),
    status: text(row.status) as NodeStatus,
    arch: text(row.arch),
    os: text(row.os),
    cpus: Number(row.cpus),
    memoryMb: int(row.memory_mb),
    // Labels people set (`shoal node label`) win over the agent's own (`--labels`).
    labels: { ...parseLabels(row.labels), ...parseLabels(row.user_labels) },
    userLabels: parseLabels(row.user_labels),
    engineReady: int(row.engine_ready) === 1,
    engineMessage: text(row.engine_message),
    diskFull: int(row.disk_full) === 1,
    ingress: JSON.parse(text(row.ingress ?? "[]")) as IngressListening[],
    keyDigest: text(row.key_digest ?? ""),
    hostPaths: JSON.parse(text(row.host_paths ?? '{"allowed":[],"denied":[]}')) as HostPathPolicy,
    version: text(row.version),
    registeredAt: int(row.registered_at),
    updatedAt: int(row.updated_at),
    rowVersion: int(row.row_version),
  };
}

function parseLabels(value: unknown): Record<string, string> {
  return value === null || value === undefined
    ? {}
    : (JSON.parse(text(value)) as Record<string, string>);
}

/** The settings column as written by apply-service.ts; '{}' for a service that predates it. */
export interface ServiceSettings {
  placement?: Placement;
  deployment?: DeploymentSettings;
  stopAfterDisconnectMs?: number | null;
  ingress?: Ingress[];
  drainMs?: number;
}

export function serviceFromRow(row: Row): Service {
  const settings = JSON.parse(text(row.settings ?? "{}")) as ServiceSettings;
  return {
    name: text(row.name),
    mode: text(row.mode) as ServiceMode,
    replicas: int(row.replicas),
    taskDefinition: { family: text(row.td_family), revision: int(row.td_revision) },
    placement: settings.placement ?? placementDefaults,
    deployment: settings.deployment ?? deploymentDefaults,
    stopAfterDisconnectMs: settings.stopAfterDisconnectMs ?? null,
    ingress: settings.ingress ?? [],
    drainMs: settings.drainMs ?? drainMsDefault,
    rebalanceRequested: int(row.rebalance_requested ?? 0) === 1,
    failureStreak: int(row.failure_streak),
    lastFailureAt: intOrNull(row.last_failure_at),
    createdAt: int(row.created_at),
    updatedAt: int(row.updated_at),
    version: int(row.version),
  };
}

export function taskDefinitionFromRow(row: Row): TaskDefinition {
  return {
    family: text(row.family),
    revision: int(row.revision),
    containers: JSON.parse(text(row.containers)) as ContainerSpec[],
    createdAt: int(row.created_at),
  };
}

export function taskFromRow(row: Row): Task {
  return {
    id: text(row.id),
    service: textOrNull(row.service),
    taskDefinition: { family: text(row.td_family), revision: int(row.td_revision) },
    node: textOrNull(row.node),
    nodeName: textOrNull(row.node_name),
    desired: text(row.desired) as DesiredState,
    state: text(row.state) as TaskState,
    reason: text(row.reason),
    exitCode: intOrNull(row.exit_code),
    containers: JSON.parse(text(row.containers)) as TaskContainer[],
    createdAt: int(row.created_at),
    updatedAt: int(row.updated_at),
    startedAt: intOrNull(row.started_at),
    stoppedAt: intOrNull(row.stopped_at),
    version: int(row.version),
  };
}

export function eventFromRow(row: Row): ShoalEvent {
  return {
    seq: int(row.seq),
    index: int(row.log_index),
    at: int(row.at),
    type: text(row.type),
    message: text(row.message),
    service: textOrNull(row.service),
    task: textOrNull(row.task),
    node: textOrNull(row.node),
  };
}

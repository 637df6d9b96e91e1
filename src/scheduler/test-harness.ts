// Builders for scheduler tests: a SchedulerInput from a few plain objects with sensible
// defaults, so each test states only what it is about.
import {
  type ContainerSpec,
  deploymentDefaults,
  drainMsDefault,
  isTerminal,
  type NodeInfo,
  type Plan,
  placementDefaults,
  type Service,
  type Task,
  type TaskDefinition,
} from "../core/types.ts";
import type { SchedulerInput } from "./types.ts";

export function node(id: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id,
    name: id,
    address: "10.0.0.1",
    port: 7420,
    status: "ready",
    arch: "arm64",
    os: "linux",
    cpus: 4,
    memoryMb: 4096,
    labels: {},
    userLabels: {},
    engineReady: true,
    engineMessage: "",
    diskFull: false,
    ingress: [],
    hostPaths: { allowed: [], denied: [] },
    keyDigest: "",
    version: "0.1.0",
    registeredAt: 0,
    updatedAt: 0,
    rowVersion: 1,
    ...overrides,
  };
}

export function container(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    name: "main",
    image: "shoal-test/busybox:1",
    env: {},
    ports: [],
    mounts: [],
    essential: true,
    ...overrides,
  };
}

export function definition(
  family: string,
  containers: Partial<ContainerSpec>[] = [{}],
  revision = 1,
): TaskDefinition {
  return { family, revision, containers: containers.map(container), createdAt: 0 };
}

export function service(name: string, overrides: Partial<Service> = {}): Service {
  return {
    name,
    mode: "replicated",
    replicas: 1,
    taskDefinition: { family: name, revision: 1 },
    placement: { ...placementDefaults },
    deployment: { ...deploymentDefaults },
    stopAfterDisconnectMs: null,
    ingress: [],
    drainMs: drainMsDefault,
    rebalanceRequested: false,
    failureStreak: 0,
    lastFailureAt: null,
    createdAt: 0,
    updatedAt: 0,
    version: 1,
    ...overrides,
  };
}

/** A running task of `serviceName` on `nodeId` (null: waiting for a node). */
export function task(
  id: string,
  serviceName: string | null,
  nodeId: string | null,
  overrides: Partial<Task> = {},
): Task {
  return {
    id,
    service: serviceName,
    taskDefinition: { family: serviceName ?? "oneoff", revision: 1 },
    node: nodeId,
    nodeName: nodeId,
    desired: "running",
    state: nodeId === null ? "pending" : "running",
    reason: "",
    exitCode: null,
    containers: [],
    createdAt: 0,
    updatedAt: 0,
    startedAt: null,
    stoppedAt: null,
    version: 1,
    ...overrides,
  };
}

export function schedulerInput(parts: Partial<SchedulerInput> = {}): SchedulerInput {
  let next = 0;
  return {
    nodes: [],
    services: [],
    taskDefinitions: [],
    tasks: [],
    deployments: [],
    now: 1_000_000,
    newId: () => {
      next += 1;
      return `new-${next}`;
    },
    random: () => 0,
    ...parts,
  };
}

/** Node id of each created task, in plan order. */
export function createdNodes(plan: Plan): (string | null)[] {
  return plan.create.map((planned) => planned.node);
}

/** How many created tasks each node received. */
export function createdPerNode(plan: Plan): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const planned of plan.create) {
    const key = planned.node ?? "pending";
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * The input of the next evaluation once a plan is applied, as the state machine applies it
 * (src/state/apply-plan.ts): new tasks start pending, placement clears the reason, a task
 * stopped before it reached a node stops at once, and an E_NO_CAPACITY event naming a task
 * writes its message into the task's reason.
 */
export function applyPlan(input: SchedulerInput, plan: Plan): SchedulerInput {
  const tasks = new Map(input.tasks.map((each) => [each.id, each]));
  for (const planned of plan.create) {
    const created = task(planned.id, planned.service, planned.node, { state: "pending" });
    tasks.set(planned.id, { ...created, taskDefinition: planned.taskDefinition });
  }
  for (const { taskId, node } of plan.assign) {
    const found = tasks.get(taskId);
    if (found === undefined || found.node !== null) continue;
    tasks.set(taskId, { ...found, node, nodeName: node, reason: "", version: found.version + 1 });
  }
  for (const { taskId, reason } of plan.stop) {
    const found = tasks.get(taskId);
    if (found === undefined) continue;
    const state = found.node === null || found.state === "pending" ? "stopped" : found.state;
    tasks.set(taskId, { ...found, desired: "stopped", reason, state, version: found.version + 1 });
  }
  for (const event of plan.events) {
    const found = event.task === null ? undefined : tasks.get(event.task);
    if (event.type !== "E_NO_CAPACITY" || found === undefined) continue;
    tasks.set(found.id, { ...found, reason: `E_NO_CAPACITY: ${event.message}` });
  }
  const remaining = [...tasks.values()].filter((each) => !isTerminal(each.state));
  return { ...input, tasks: remaining };
}

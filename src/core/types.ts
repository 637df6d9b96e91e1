// The domain of shoal, in the ECS model: nodes, task definitions, services, tasks, events.
// Plain data only; every layer speaks these types.
import type { HostPathPolicy } from "./host-paths.ts";

export type NodeStatus = "ready" | "draining" | "down" | "left";
export type DesiredState = "running" | "stopped";
export type TaskState = "pending" | "starting" | "running" | "stopped" | "failed" | "lost";
export type ContainerState = "created" | "running" | "exited" | "missing" | "failed";
export type ServiceMode = "replicated" | "global";
export type PlacementStrategy = "spread" | "binpack";

export const terminalTaskStates: readonly TaskState[] = ["stopped", "failed", "lost"];

export function isTerminal(state: TaskState): boolean {
  return terminalTaskStates.includes(state);
}

export interface PortMapping {
  container: number;
  /** Fixed host port; 0 or absent lets the engine pick a free one, reported in the task. */
  host?: number | undefined;
  protocol: "tcp" | "udp";
}

export interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface Healthcheck {
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[] | undefined;
  env: Record<string, string>;
  ports: PortMapping[];
  mounts: Mount[];
  /** Reservation and limit, in whole or fractional cpus. */
  cpu?: number | undefined;
  memoryMb?: number | undefined;
  healthcheck?: Healthcheck | undefined;
  /** When an essential container stops, its task stops. */
  essential: boolean;
}

export interface TaskDefinition {
  family: string;
  revision: number;
  containers: ContainerSpec[];
  createdAt: number;
}

/** Where a service's tasks may run, and how they are ranked among the nodes that fit. */
export interface Placement {
  /** Constraint texts (`zone != garage`); see core/constraints.ts. */
  constraints: string[];
  /** `spread` over `spreadBy` (an attribute, `node` for the node itself), or `binpack` on memory. */
  strategy: PlacementStrategy;
  spreadBy: string;
  /** Spread the tasks again, on its own, when a node comes back or joins. */
  rebalance: boolean;
}

/** How a change of containers rolls out (ECS's deployment configuration). */
export interface DeploymentSettings {
  /** Tasks that may run during a deployment, in percent of the desired count. */
  maxPercent: number;
  /** Healthy tasks that must stay during a deployment, in percent of the desired count. */
  minHealthyPercent: number;
  /** Whether a deployment the circuit breaker stops goes back to the previous revision. */
  rollback: boolean;
}

/** The settings of a service that leaves them out, and of one written before they existed. */
export const placementDefaults: Readonly<Placement> = Object.freeze({
  constraints: [],
  strategy: "spread",
  spreadBy: "node",
  rebalance: false,
});

export const deploymentDefaults: Readonly<DeploymentSettings> = Object.freeze({
  maxPercent: 200,
  minHealthyPercent: 100,
  rollback: true,
});

export type IngressProtocol = "tcp" | "http";

/**
 * A port every node that is up listens on, forwarding to a healthy task of the service wherever it
 * runs (Swarm's routing mesh, ECS's load balancer). `container` is resolved when the service is
 * written: the one named, else the first with ports, else the first.
 */
export interface Ingress {
  port: number;
  container: string;
  containerPort: number;
  protocol: IngressProtocol;
  /** HTTP only: the Host names routed to the service; empty routes every Host. */
  hosts: string[];
  /** TCP only: send a PROXY protocol v2 header first, so the task sees the client's address. */
  proxyProtocol: "v2" | null;
}

/** How long a leaving task keeps its open ingress connections, for a service that leaves it out. */
export const drainMsDefault = 5000;

export interface Service {
  name: string;
  mode: ServiceMode;
  /** The desired count of a replicated service; a global service runs one task per eligible node. */
  replicas: number;
  taskDefinition: { family: string; revision: number };
  placement: Placement;
  deployment: DeploymentSettings;
  /**
   * A node cut off from the leader for this long stops the service's containers (Nomad's
   * `stop_after_client_disconnect`); null keeps them running until the node hears otherwise.
   */
  stopAfterDisconnectMs: number | null;
  /** The service's ingress ports; empty when it has none. */
  ingress: Ingress[];
  /**
   * How long a task about to stop keeps its open ingress connections before its containers stop
   * (ECS's deregistration delay); only a service with ingress waits.
   */
  drainMs: number;
  /** Set by `service rebalance`: the scheduler spreads the tasks again, then clears it. */
  rebalanceRequested: boolean;
  /** Consecutive task failures without a stable run; drives restart backoff. */
  failureStreak: number;
  lastFailureAt: number | null;
  createdAt: number;
  updatedAt: number;
  /** Bumped by every change; leader-derived commands carry it for fencing. */
  version: number;
}

export interface NodeInfo {
  id: string;
  name: string;
  address: string;
  /** The port of its API and peer routes. */
  port: number;
  status: NodeStatus;
  arch: string;
  os: string;
  cpus: number;
  memoryMb: number;
  /** The agent's labels (`--labels`) with those people set on top. */
  labels: Record<string, string>;
  /** The labels people set with `shoal node label`; they outlive the agent's restarts. */
  userLabels: Record<string, string>;
  /** Whether the node's container engine answers; a node without one takes no tasks. */
  engineReady: boolean;
  engineMessage: string;
  /** Whether the node said its disk is full; such a node takes no new tasks. */
  diskFull: boolean;
  /** What the node lets tasks mount from its own disk (`--allow-host-path`). */
  hostPaths: HostPathPolicy;
  /** Whether the node listens on each ingress port, as it last reported. */
  ingress: IngressListening[];
  /** SHA-256 of the node's public key, pinned at admission; empty when none was pinned. */
  keyDigest: string;
  version: string;
  registeredAt: number;
  updatedAt: number;
  rowVersion: number;
}

/** A node's report of one ingress port: listening, or why not (another program holds it). */
export interface IngressListening {
  port: number;
  listening: boolean;
  message: string;
}

export interface TaskContainerPort {
  container: number;
  host: number | null;
  protocol: "tcp" | "udp";
}

export interface TaskContainer {
  name: string;
  containerId: string | null;
  state: ContainerState;
  exitCode: number | null;
  health: "starting" | "healthy" | "unhealthy" | null;
  ports: TaskContainerPort[];
}

export interface Task {
  id: string;
  /** The service's name, or null for a one-off task. */
  service: string | null;
  taskDefinition: { family: string; revision: number };
  /** The node id, or null while the task waits for capacity. */
  node: string | null;
  nodeName: string | null;
  desired: DesiredState;
  state: TaskState;
  reason: string;
  exitCode: number | null;
  containers: TaskContainer[];
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  stoppedAt: number | null;
  version: number;
}

export type DeploymentStatus =
  | "in_progress"
  | "completed"
  | "failed"
  | "rolled_back"
  | "superseded";

/** One rollout of a service to a revision; the circuit breaker counts its failed tasks. */
export interface Deployment {
  id: number;
  service: string;
  /** The revision it moves from; null for the service's first. */
  fromRevision: number | null;
  toRevision: number;
  status: DeploymentStatus;
  /** Tasks of `toRevision` that failed since it started. */
  failedTasks: number;
  /** Failed tasks that trip the circuit breaker. */
  failureThreshold: number;
  /** Whether this deployment is itself the rollback of a failed one. */
  isRollback: boolean;
  reason: string;
  createdAt: number;
  updatedAt: number;
}

/**
 * A node's disk as the node itself sees it: `full` while free space is below the reserve (it
 * refuses writes as leader) or while its log waits for space to write what it has taken.
 */
export interface DiskStatus {
  status: "ok" | "full";
  /** Free bytes in the data dir; null when they could not be measured. */
  freeBytes: number | null;
  reserveBytes: number;
  /** The disk refused a write of the log, which waits for space (and takes nothing new). */
  logHeld: boolean;
}

export interface ShoalEvent {
  seq: number;
  index: number;
  at: number;
  type: string;
  message: string;
  service: string | null;
  task: string | null;
  node: string | null;
}

/** A new task the scheduler creates; `node: null` means it waits for capacity. */
export interface PlannedTask {
  id: string;
  service: string | null;
  taskDefinition: { family: string; revision: number };
  node: string | null;
}

/**
 * What one scheduler evaluation decides. `reads` carries the versions of the rows the plan was
 * derived from; the state machine refuses the plan when any has changed since (fencing).
 */
export interface Plan {
  create: PlannedTask[];
  assign: { taskId: string; node: string }[];
  stop: { taskId: string; reason: string }[];
  events: { type: string; message: string; service: string | null; task: string | null }[];
  /** Services whose deployment in progress has every task of its revision healthy. */
  completeDeployments: string[];
  /** Services whose requested rebalance is done (or has nothing left to move). */
  rebalanced: string[];
  reads: {
    services: Record<string, number>;
    tasks: Record<string, number>;
    /** Row versions of the nodes the plan places on: a node that changed since refuses it. */
    nodes: Record<string, number>;
  };
}

/** An agent's report of a task's observed state on its node. */
export interface TaskReport {
  taskId: string;
  node: string;
  state: TaskState;
  reason: string;
  exitCode: number | null;
  containers: TaskContainer[];
}

/** How fresh a read must be: this replica as it is, as of the leader's lease, or linearizable. */
export type Consistency = "local" | "leader" | "linearizable";

/** One member of the Raft configuration as the cluster route shows it. */
export interface MemberStatus {
  id: string;
  role: "voter" | "learner";
  /** How far the leader knows this member's log matches its own; null when unknown. */
  match: number | null;
  /** The member's own applied index, asked of it; null when it did not answer. */
  appliedIndex: number | null;
}

/** The replication side of `GET /v1/cluster`. */
export interface FleetStatus {
  leader: string | null;
  term: number;
  leaseHeld: boolean;
  leaseRemainingMs: number;
  voters: string[];
  learners: string[];
  members: MemberStatus[];
  /** The answering node's latest snapshot index (0 before its first). */
  snapshotIndex: number;
}

/** What a node reports of its machine with every heartbeat: load and free memory. */
export interface HostUsage {
  /** The 1-minute load average. */
  load1: number;
  memoryFreeMb: number;
  /** When the node measured it (its wall clock, ms). */
  at: number;
}

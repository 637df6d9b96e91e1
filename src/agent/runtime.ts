// The agent's view of a container engine: the ContainerRuntime port. The Docker adapter
// (src/adapters/docker-runtime.ts) and the memory twin (src/testing/memory-runtime.ts) implement it.
//
// Errors are ShoalErrors with stable codes: E_DOCKER_UNAVAILABLE (the engine does not answer),
// E_IMAGE_NOT_FOUND (message `image not found: NAME`), E_CONFLICT (a container name is taken),
// E_VALIDATION (the engine refused the spec), E_INTERNAL (anything else the engine said).
import type { ContainerSpec, TaskContainerPort } from "../core/types.ts";

/**
 * What the agent asks the engine to run: one container of a task as its task definition gives it
 * (`host` 0 or absent lets the engine pick a free port, published on 0.0.0.0), under the engine's
 * container name (unique per engine) and with shoal's labels. Essential is the agent's concern.
 */
export type RuntimeContainerSpec = Omit<ContainerSpec, "essential"> & {
  labels: Record<string, string>;
};

/** The engine's own state words, reduced to what the agent branches on. */
export type RuntimeContainerState =
  | "created"
  | "running"
  | "paused"
  | "exited"
  | "dead"
  | "removing";
export type RuntimeHealth = "starting" | "healthy" | "unhealthy";

/** A container as listed: enough to reconcile without inspecting each one. */
export interface RuntimeContainerSummary {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: RuntimeContainerState;
  /** Null when the container has no healthcheck (or is not running). */
  health: RuntimeHealth | null;
  /** Published ports; `host` is the port the engine bound on 0.0.0.0, null when unpublished. */
  ports: TaskContainerPort[];
}

/** A container as inspected: the summary plus how it ended. */
export interface RuntimeContainerDetails extends RuntimeContainerSummary {
  /** Null while the container has not exited yet. */
  exitCode: number | null;
  oomKilled: boolean;
  /** The engine's error for a container that could not run, else "". */
  error: string;
  startedAtMs: number | null;
  finishedAtMs: number | null;
}

export type RuntimeEventAction = "create" | "start" | "die" | "oom" | "health_status" | "destroy";

export const runtimeEventActions: readonly RuntimeEventAction[] = [
  "create",
  "start",
  "die",
  "oom",
  "health_status",
  "destroy",
];

export interface RuntimeEvent {
  containerId: string;
  action: RuntimeEventAction;
  labels: Record<string, string>;
  /** Set on `die`; kept here because the container may be gone before it can be inspected. */
  exitCode: number | null;
  /** Set on `health_status`. */
  health: RuntimeHealth | null;
  /** The engine's time of the event, in milliseconds since the epoch. */
  timeMs: number;
}

export interface RuntimeEventHandlers {
  onEvent(event: RuntimeEvent): void;
  /**
   * The stream's connection changed. After a reconnect some events may have been missed (the
   * engine replays only a few): re-list containers to repair.
   */
  onStreamState?(state: { connected: boolean; message: string }): void;
}

export interface RuntimeEventSubscription {
  /** Ends the stream and every reconnect timer; no handler is called afterwards. */
  close(): void;
}

export interface EngineInfo {
  name: string;
  version: string;
  apiVersion: string;
  os: string;
  arch: string;
  cpus: number;
  memoryMb: number;
}

export interface ContainerRuntime {
  /** Resolves when the engine answers; throws E_DOCKER_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  engineInfo(): Promise<EngineInfo>;
  /** Every container (running or not) carrying all of `labels`. */
  list(labels: Record<string, string>): Promise<RuntimeContainerSummary[]>;
  /**
   * Creates and starts a container; resolves with its state after start, host ports included.
   * Nothing is left behind when it fails. Never pulls: a missing image is E_IMAGE_NOT_FOUND.
   */
  run(spec: RuntimeContainerSpec): Promise<RuntimeContainerDetails>;
  /**
   * Fetches an image from its registry; resolves once the engine has it. A pull that fails, takes
   * longer than `limits.imagePullMsMax` or is aborted through `signal` rejects with
   * E_IMAGE_NOT_FOUND saying why: `image not found: NAME (pull failed: ...)`.
   */
  pull(image: string, signal: AbortSignal): Promise<void>;
  /** Null when no such container exists (any more). */
  inspect(containerId: string): Promise<RuntimeContainerDetails | null>;
  /**
   * Starts an exited container again, as it was created: the agent restarts its own crashed
   * containers this way while it is cut off from the leader. E_NOT_FOUND when it is gone.
   */
  start(containerId: string): Promise<void>;
  /** Stops a container (SIGTERM, then SIGKILL after the timeout); a no-op when stopped or gone. */
  stop(containerId: string, timeoutSeconds: number): Promise<void>;
  /** Removes a container and its anonymous volumes, killing it if needed; a no-op when gone. */
  remove(containerId: string): Promise<void>;
  /** Container events for containers carrying all of `labels`; reconnects by itself. */
  events(labels: Record<string, string>, handlers: RuntimeEventHandlers): RuntimeEventSubscription;
  /** Releases connections; the runtime is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * When the agent pulls: `missing` pulls an image the engine lacks (as ECS, Swarm and Nomad do);
 * `never` fails the task at once, for machines that must not contact a registry.
 */
export type PullPolicy = "missing" | "never";

/** Label keys shoal puts on every container it runs. */
export const labelKeys = {
  cluster: "shoal.cluster",
  node: "shoal.node",
  task: "shoal.task",
  service: "shoal.service",
  container: "shoal.container",
  taskDefinition: "shoal.task-definition",
} as const;

// What the reconciler does about one task, decided without doing it: from the task, its
// definition, what the engine shows and what the agent remembers, the actions that bring the
// engine in line. Pure (no I/O, no clock): the executor carries the actions out and, when they
// revealed something (an inspection, a started container, a refused report), asks again.
import { assert } from "../core/assert.ts";
import { type HostPathPolicy, hostPathAllowed, hostPathsOf } from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import {
  type ContainerSpec,
  isTerminal,
  type Task,
  type TaskContainer,
  type TaskDefinition,
  type TaskReport,
} from "../core/types.ts";
import { type OfflineRestart, offlineRestartWaitMs } from "./offline-restarts.ts";
import { labelKeys, type PullPolicy, type RuntimeContainerDetails } from "./runtime.ts";
import { exitReason, isExited, type Observed, taskContainer } from "./task-containers.ts";

/** A container of the task that could not be created this pass. */
export interface StartFailure {
  specName: string;
  /** The engine lacks the image (E_IMAGE_NOT_FOUND): a pull may bring it. */
  imageMissing: boolean;
  message: string;
}

/** What the agent remembers of the task from earlier passes. */
export interface TaskMemory {
  /** Its containers are being stopped and removed beside the loop. */
  retiring: boolean;
  lastReportedState: TaskReport["state"] | null;
  offlineRestart: OfflineRestart | null;
  /** This agent stopped its containers while cut off (stopAfterDisconnectMs). */
  stoppedWhileCutOff: boolean;
  /** When this agent first saw the task asked to stop while its ingress drains (monotonic ms). */
  drainingSinceMs: number | null;
}

/** What this pass has learnt about the task so far, by the actions already carried out. */
export interface PassProgress {
  inspected: ReadonlyMap<string, RuntimeContainerDetails | null>;
  /** Containers this pass created, by spec name, as the engine answered `run`. */
  started: ReadonlyMap<string, RuntimeContainerDetails>;
  startFailure: StartFailure | null;
  /** A report that later actions waited for was refused (no leader, say). */
  reportRefused: boolean;
}

export interface TaskDecisionInput {
  task: Task;
  nodeId: string;
  definition: TaskDefinition | null;
  /** The service's stopAfterDisconnectMs; null for a one-off task or a service without it. */
  stopAfterDisconnectMs: number | null;
  /**
   * How long a task asked to stop keeps its open ingress connections before its containers stop:
   * the service's drainMs when it has ingress, else 0.
   */
  drainMs: number;
  /** How long the node has been cut off from the leader, or null. */
  disconnectedMs: number | null;
  /** Monotonic ms. */
  nowMs: number;
  /** The task's containers as listed at the start of the pass, less those the pass removed. */
  containers: readonly Observed[];
  /** Exit codes remembered from `die` events and earlier inspections. */
  exitCodes: ReadonlyMap<string, number>;
  memory: TaskMemory;
  pulls: {
    policy: PullPolicy;
    inFlight: ReadonlySet<string>;
    /** When each image's last pull ended (monotonic ms). */
    endedMs: ReadonlyMap<string, number>;
  };
  hostPaths: {
    policy: HostPathPolicy;
    /** Each host path of the definition's mounts, where its symlinks lead. */
    resolved: ReadonlyMap<string, string>;
  };
  pass: PassProgress;
}

export type LogLevel = "info" | "warn";

export type TaskAction =
  | { kind: "log"; level: LogLevel; fields: Record<string, unknown>; message: string }
  /** With `stopIfRefused`, the actions after it run only once the report is known. */
  | { kind: "report"; report: TaskReport; stopIfRefused: boolean }
  /** Runs one container of the task; a failure ends the actions and is the next input's. */
  | { kind: "create"; spec: ContainerSpec }
  | { kind: "inspect"; containerId: string; rememberExitCode: boolean }
  | { kind: "remove"; containerId: string }
  /** Stops the containers of a task cut off for its stopAfterDisconnectMs, and remembers it. */
  | { kind: "stop"; containerIds: string[] }
  /** Starts crashed containers again while cut off, remembering the restart for the backoff. */
  | { kind: "start"; containerIds: string[]; restart: OfflineRestart }
  /** Remembers that the task's ingress drains from `sinceMs` on, before its containers stop. */
  | { kind: "drain"; sinceMs: number }
  /** Looks again after `delayMs`: an offline restart waits for its backoff, a drain its end. */
  | { kind: "wait"; delayMs: number }
  | { kind: "pull"; image: string }
  /** Stops and removes containers beside the loop, reporting the task stopped first if asked. */
  | { kind: "retire"; containers: Observed[]; stopped: StoppedReport | null };

/** What the stopped report of a retired task says; its containers are inspected once stopped. */
export interface StoppedReport {
  specs: ContainerSpec[];
  reason: string;
}

export function decide(input: TaskDecisionInput): TaskAction[] {
  const { task, memory, definition } = input;
  if (memory.retiring) return [];
  const reported = memory.lastReportedState;
  const terminal = isTerminal(task.state) || (reported !== null && isTerminal(reported));
  if (task.desired === "stopped" && !terminal) {
    return drain(input) ?? retire(input, input.containers, true);
  }
  if (terminal) return retire(input, input.containers, false);
  if (!definition) {
    const name = `${task.taskDefinition.family}:${task.taskDefinition.revision}`;
    return fail(input, input.containers, `task definition ${name} not found`, []);
  }
  return stopForDisconnect(input) ?? decideContainers(input, definition.containers);
}

/**
 * A running task asked to stop first drains (ECS's deregistration delay): every node's ingress
 * stops sending it new connections at once, and the open ones get the service's drainMs before
 * its containers stop. Null when there is nothing (left) to wait for.
 */
function drain(input: TaskDecisionInput): TaskAction[] | null {
  const { drainMs, nowMs, memory, task } = input;
  if (drainMs <= 0 || !input.containers.some((c) => c.state === "running")) return null;
  const since = memory.drainingSinceMs;
  if (since === null) {
    return [
      {
        kind: "log",
        level: "info",
        fields: { task: task.id, drainMs },
        message: "draining: no new ingress connections, open ones get drainMs",
      },
      { kind: "drain", sinceMs: nowMs },
      { kind: "wait", delayMs: drainMs },
    ];
  }
  const left = since + drainMs - nowMs;
  return left > 0 ? [{ kind: "wait", delayMs: left }] : null;
}

/** The containers of a task that is neither stopping nor cut off too long. */
function decideContainers(input: TaskDecisionInput, specs: ContainerSpec[]): TaskAction[] {
  const { matched, strays } = matchContainers(specs, input.containers, input.pass.started);
  const removals = strays.flatMap((stray): TaskAction[] => [
    log("warn", { container: stray.id, name: stray.name }, "removing a stray container"),
    { kind: "remove", containerId: stray.id },
  ]);
  const ending = endingContainer(specs, matched);
  const inspections = inspectionsNeeded(input, specs, matched, ending);
  if (inspections.length > 0) return [...removals, ...inspections];
  if (ending) return [...removals, ...containerExited(input, specs, matched, ending)];
  // The refused report was a failure's: nothing more this pass.
  if (input.pass.reportRefused) return removals;
  const missing = specs.filter((spec) => !matched.has(spec.name));
  if (missing.length === 0) return [...removals, runningReport(input, specs, matched)];
  return [...removals, ...startMissing(input, specs, matched, missing)];
}

/**
 * Pairs each spec with the container labelled for it; those this pass created count as matched
 * whatever their state. Duplicates, containers of no spec and containers that were created but
 * never started (an agent crash in between) are strays; `removing` ones are neither.
 */
export function matchContainers(
  specs: ContainerSpec[],
  containers: readonly Observed[],
  started: ReadonlyMap<string, RuntimeContainerDetails>,
): { matched: Map<string, Observed>; strays: Observed[] } {
  const matched = new Map<string, Observed>();
  const strays: Observed[] = [];
  for (const container of containers) {
    const name = container.labels[labelKeys.container] ?? "";
    const usable = specs.some((s) => s.name === name) && container.state !== "created";
    if (container.state === "removing") continue;
    if (!usable || matched.has(name)) strays.push(container);
    else matched.set(name, container);
  }
  for (const [name, details] of started) matched.set(name, details);
  return { matched, strays };
}

/** The container whose exit ends the task: an essential one, or the last one standing. */
export function endingContainer(
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
): { spec: ContainerSpec; container: Observed } | null {
  const hasExited = (spec: ContainerSpec) => isExited(matched.get(spec.name));
  const allExited = specs.every(hasExited);
  const spec = specs.find((s) => hasExited(s) && (s.essential || allExited));
  return spec ? { spec, container: matched.get(spec.name)! } : null;
}

/**
 * The ending container is inspected for how it ended; any other exited one only when its exit
 * code is not known yet (and then it is remembered, so it is inspected once).
 */
function inspectionsNeeded(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
  ending: { container: Observed } | null,
): TaskAction[] {
  const { inspected } = input.pass;
  const actions: TaskAction[] = [];
  if (ending && !inspected.has(ending.container.id)) {
    actions.push({ kind: "inspect", containerId: ending.container.id, rememberExitCode: false });
  }
  for (const spec of specs) {
    const container = matched.get(spec.name);
    if (!container || container === ending?.container || inspected.has(container.id)) continue;
    if (!isExited(container) || knownExitCode(input, container) !== null) continue;
    actions.push({ kind: "inspect", containerId: container.id, rememberExitCode: true });
  }
  return actions;
}

function knownExitCode(input: TaskDecisionInput, container: Observed): number | null {
  if ("exitCode" in container && container.exitCode !== null) return container.exitCode;
  return input.exitCodes.get(container.id) ?? null;
}

/** Reports the exit (or restarts the container here while cut off), then retires the task. */
function containerExited(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
  ending: { spec: ContainerSpec; container: Observed },
): TaskAction[] {
  const { task, memory } = input;
  const inspection = input.pass.inspected.get(ending.container.id) ?? null;
  // Gone already (removed by someone) or not yet shown exited: the die event's code serves.
  const inspected = isExited(inspection ?? undefined) ? inspection : null;
  const exitCode = inspected?.exitCode ?? input.exitCodes.get(ending.container.id) ?? null;
  const described = new Map(matched).set(ending.spec.name, inspected ?? ending.container);
  const stoppedHere = memory.stoppedWhileCutOff;
  const reason = stoppedHere
    ? "stopped while cut off from the leader (stopAfterDisconnectMs)"
    : exitReason(ending.spec.name, exitCode, inspected?.oomKilled ?? false);
  // Cut off, a report waits for the leader; a service's container is better restarted here.
  const restartHere = task.service !== null && !stoppedHere && input.disconnectedMs !== null;
  const restart = restartHere ? restartOffline(input, specs, described) : [];
  if (input.pass.reportRefused) return restart;
  const logged = log("info", { task: task.id, exitCode }, reason);
  if (restartHere) return [logged, ...restart];
  // A one-off task whose work finished cleanly has stopped, not failed; nor has a task this
  // agent stopped itself while cut off (back in touch before being replaced).
  const state = stoppedHere || (task.service === null && exitCode === 0) ? "stopped" : "failed";
  const containers = describeContainers(input, specs, described);
  return [
    logged,
    report(input, state, reason, exitCode, containers, true),
    ...retire(input, allContainers(input.containers, matched), false),
  ];
}

/** Starts a task's exited containers again, backing off from the previous restart. */
function restartOffline(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
): TaskAction[] {
  const prior = input.memory.offlineRestart;
  const waitMs = offlineRestartWaitMs(prior, input.nowMs);
  if (waitMs > 0) return [{ kind: "wait", delayMs: waitMs }];
  const containerIds = specs
    .map((spec) => matched.get(spec.name))
    .filter((container) => container !== undefined && isExited(container))
    .map((container) => container!.id);
  const count = (prior?.count ?? 0) + 1;
  return [
    { kind: "start", containerIds, restart: { count, lastMs: input.nowMs } },
    log(
      "warn",
      { task: input.task.id, restarts: count },
      "cut off from the leader: restarted a crashed container here",
    ),
  ];
}

/**
 * A service that asks to stop after a disconnect (Nomad's `stop_after_client_disconnect`): cut
 * off that long, the node stops its containers, and reports nothing until it hears again. Null
 * when the task is not concerned.
 */
function stopForDisconnect(input: TaskDecisionInput): TaskAction[] | null {
  const { task, disconnectedMs, stopAfterDisconnectMs } = input;
  if (task.service === null || disconnectedMs === null) return null;
  if (stopAfterDisconnectMs === null || disconnectedMs < stopAfterDisconnectMs) return null;
  const running = input.containers.filter((container) => container.state === "running");
  if (running.length === 0) return [];
  return [
    log(
      "warn",
      { task: task.id, disconnectedMs },
      "cut off too long: stopping the task's containers",
    ),
    { kind: "stop", containerIds: running.map((container) => container.id) },
  ];
}

/**
 * Reports the task starting, then creates its missing containers in order, up to the first one
 * that cannot be created now (a refused host path, an image being pulled); the next input says
 * how the creations went.
 */
function startMissing(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
  missing: ContainerSpec[],
): TaskAction[] {
  const { task, memory, pass } = input;
  const containers = describeContainers(input, specs, matched);
  const wasRunning = task.state === "running" || memory.lastReportedState === "running";
  if (wasRunning) {
    // It ran here and its container is gone (removed by hand, or the engine lost it).
    const reason = `container ${missing[0]!.name} is missing`;
    return fail(input, input.containers, reason, containers);
  }
  if (pass.startFailure) return startFailed(input, specs, matched, pass.startFailure);
  // Once starting was reported (while a pull runs, say), saying it again would only flap
  // between the bare report and the one that names the pull.
  const starting =
    memory.lastReportedState !== "starting" && pass.started.size === 0
      ? [report(input, "starting", "", null, containers, false)]
      : [];
  const blockedAt = missing.findIndex((spec) => blocker(input, spec) !== null);
  const creatable = blockedAt === -1 ? missing : missing.slice(0, blockedAt);
  if (creatable.length > 0) {
    return [...starting, ...creatable.map((spec): TaskAction => ({ kind: "create", spec }))];
  }
  const spec = missing[0]!;
  const blocked = blocker(input, spec)!;
  if (blocked.kind === "waiting") return [...starting, waiting(input, containers, blocked.reason)];
  const refused = describeContainers(input, specs, matched, spec.name);
  const all = allContainers(input.containers, matched);
  return [...starting, ...fail(input, all, blocked.reason, refused)];
}

type Blocker = { kind: "refused"; reason: string } | { kind: "waiting"; reason: string };

/** Why a missing container cannot be created now; null when it can. */
function blocker(input: TaskDecisionInput, spec: ContainerSpec): Blocker | null {
  const { policy, resolved } = input.hostPaths;
  // Checked where a symlink leads too: a task may have made one under an allowed directory.
  const refused = hostPathsOf([spec]).find((path) => {
    const real = resolved.get(path);
    assert(real !== undefined, `host path ${path} was not resolved`);
    return !hostPathAllowed(path, policy) || !hostPathAllowed(real, policy);
  });
  if (refused !== undefined) {
    const reason = `this node does not allow mounting the host path ${refused} (--allow-host-path)`;
    return { kind: "refused", reason };
  }
  // Its image is on its way: creating the container now would only fail again.
  if (input.pulls.inFlight.has(spec.image)) return { kind: "waiting", reason: pulling(spec.image) };
  return null;
}

/**
 * A container could not be created. When the engine lacks its image, under policy `missing` a
 * pull starts beside the loop (when a slot is free) and the task waits; a pull that ended lately
 * and left no image, or policy `never`, fails the task with `image not found: NAME`.
 */
function startFailed(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
  failure: StartFailure,
): TaskAction[] {
  const spec = specs.find((s) => s.name === failure.specName);
  assert(spec !== undefined, `no spec ${failure.specName}`);
  const containers = describeContainers(input, specs, matched);
  const { policy, inFlight } = input.pulls;
  const failWith = (reason: string) =>
    fail(
      input,
      allContainers(input.containers, matched),
      reason,
      describeContainers(input, specs, matched, spec.name),
    );
  if (!failure.imageMissing)
    return failWith(`cannot start container ${spec.name}: ${failure.message}`);
  if (policy === "never" || pulledLately(input, spec.image)) {
    return failWith(`image not found: ${spec.image}`);
  }
  // Slots free up as pulls end, and each end triggers a pass that tries again.
  if (inFlight.size >= limits.imagePullsInFlightMax) {
    return [waiting(input, containers, `waiting to pull image ${spec.image}`)];
  }
  return [{ kind: "pull", image: spec.image }, waiting(input, containers, pulling(spec.image))];
}

function pulledLately(input: TaskDecisionInput, image: string): boolean {
  const endedMs = input.pulls.endedMs.get(image);
  return endedMs !== undefined && input.nowMs - endedMs < limits.imagePullFailureMemoryMs;
}

function pulling(image: string): string {
  return `pulling image ${image}`;
}

function waiting(input: TaskDecisionInput, containers: TaskContainer[], reason: string) {
  return report(input, "starting", reason, null, containers, false);
}

/** Every container is up: the task runs (and says how often it was restarted while cut off). */
function runningReport(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
): TaskAction {
  const restarts = input.memory.offlineRestart?.count ?? 0;
  const reason = restarts > 0 ? `restarted ${restarts} time(s) while cut off from the leader` : "";
  return report(input, "running", reason, null, describeContainers(input, specs, matched), false);
}

/** Reports the task failed; once that is known, its containers are retired. */
function fail(
  input: TaskDecisionInput,
  containers: readonly Observed[],
  reason: string,
  described: TaskContainer[],
): TaskAction[] {
  if (input.pass.reportRefused) return [];
  return [
    log("warn", { task: input.task.id }, `task failed: ${reason}`),
    report(input, "failed", reason, null, described, true),
    ...retire(input, containers, false),
  ];
}

/** Stops and removes the containers; reports `stopped` first when the task was not terminal yet. */
function retire(
  input: TaskDecisionInput,
  containers: readonly Observed[],
  reportStopped: boolean,
): TaskAction[] {
  if (containers.length === 0 && !reportStopped) return [];
  const { task, definition } = input;
  const reason = task.reason === "" ? "desired stopped" : task.reason;
  const stopped = reportStopped ? { specs: definition?.containers ?? [], reason } : null;
  return [{ kind: "retire", containers: [...containers], stopped }];
}

/** Containers of tasks that are terminal, unknown or not this node's are removed. */
export function decideOrphans(input: {
  taskId: string;
  /** The task the containers are labelled with; null when unknown. */
  task: Task | null;
  nodeId: string;
  retiring: boolean;
  containers: readonly Observed[];
}): TaskAction[] {
  const { task, taskId } = input;
  if (task && !isTerminal(task.state) && task.node === input.nodeId) return [];
  if (input.retiring) return [];
  const why =
    task === null
      ? "unknown task"
      : isTerminal(task.state)
        ? `task ${task.state}`
        : "task moved away";
  const ids = input.containers.map((c) => c.id);
  return [
    log("info", { task: taskId, containers: ids }, `removing orphans: ${why}`),
    { kind: "retire", containers: [...input.containers], stopped: null },
  ];
}

/** The stopped report of a retired task, from its containers as inspected once stopped. */
export function stoppedReport(
  task: Task,
  nodeId: string,
  stopped: StoppedReport,
  inspectedBySpec: ReadonlyMap<string, RuntimeContainerDetails | null>,
): TaskReport {
  const containers = stopped.specs.map((spec) => {
    const inspected = inspectedBySpec.get(spec.name) ?? null;
    return taskContainer(spec, inspected, inspected?.exitCode ?? null);
  });
  return {
    taskId: task.id,
    node: nodeId,
    state: "stopped",
    reason: stopped.reason,
    exitCode: null,
    containers,
  };
}

function describeContainers(
  input: TaskDecisionInput,
  specs: ContainerSpec[],
  matched: ReadonlyMap<string, Observed>,
  failedSpec?: string,
): TaskContainer[] {
  return specs.map((spec) => {
    const observed = matched.get(spec.name) ?? null;
    const exitCode = observed && isExited(observed) ? exitCodeOf(input, observed) : null;
    const container = taskContainer(spec, observed, exitCode);
    return spec.name === failedSpec ? { ...container, state: "failed" } : container;
  });
}

function exitCodeOf(input: TaskDecisionInput, observed: Observed): number | null {
  return knownExitCode(input, observed) ?? input.pass.inspected.get(observed.id)?.exitCode ?? null;
}

/** Every container of a task: those listed at the start of the pass and those it started. */
function allContainers(
  containers: readonly Observed[],
  matched: ReadonlyMap<string, Observed>,
): Observed[] {
  const all = new Map<string, Observed>(containers.map((c) => [c.id, c]));
  for (const container of matched.values()) all.set(container.id, container);
  return [...all.values()];
}

function report(
  input: TaskDecisionInput,
  state: TaskReport["state"],
  reason: string,
  exitCode: number | null,
  containers: TaskContainer[],
  stopIfRefused: boolean,
): TaskAction {
  const { task, nodeId } = input;
  return {
    kind: "report",
    report: { taskId: task.id, node: nodeId, state, reason, exitCode, containers },
    stopIfRefused,
  };
}

function log(level: LogLevel, fields: Record<string, unknown>, message: string): TaskAction {
  return { kind: "log", level, fields, message };
}

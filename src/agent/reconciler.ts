// The agent's reconcile loop: the tasks the store places on this node against the containers
// on the local engine. It starts what is missing, adopts what already runs, reports what dies,
// stops what is no longer wanted and removes orphans. It never restarts a failed task: the
// scheduler replaces it; except while the node is cut off from the leader, when it restarts a
// service's crashed containers itself (with backoff) and stops those of services that ask for it
// after `stopAfterDisconnectMs`. It touches only containers labelled with this cluster AND node.
// A missing image is pulled beside the loop (pull policy `missing`), never inside a pass.

import type { Clock } from "../core/clock.ts";
import { isShoalError } from "../core/errors.ts";
import {
  type HostPathPolicy,
  hostPathAllowed,
  hostPathsOf,
  resolveHostPath,
} from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import {
  type ContainerSpec,
  isTerminal,
  type Task,
  type TaskContainer,
  type TaskReport,
} from "../core/types.ts";
import type { AgentReporter, AgentStore } from "./ports.ts";
import { realpathOrNull } from "./real-path.ts";
import {
  type ContainerRuntime,
  labelKeys,
  type PullPolicy,
  type RuntimeContainerDetails,
  type RuntimeContainerSummary,
  type RuntimeEvent,
  type RuntimeEventSubscription,
} from "./runtime.ts";
import {
  exitReason,
  ownLabels,
  reportFromTask,
  reportKey,
  runtimeSpec,
  taskContainer,
} from "./task-containers.ts";

export interface AgentLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

export interface ReconcilerOptions {
  nodeId: string;
  clusterId: string;
  store: AgentStore;
  reporter: AgentReporter;
  runtime: ContainerRuntime;
  logger: AgentLogger;
  clock?: Clock;
  /** `missing` (the default) pulls an image the engine lacks; `never` fails the task at once. */
  pull?: PullPolicy;
  /** How long the node has been cut off from the leader, or null; one node never is. */
  disconnectedMs?: () => number | null;
  /**
   * What this node lets tasks mount (`--allow-host-path`): checked here too, against the node's
   * own flags, whatever the store says. None by default.
   */
  hostPaths?: HostPathPolicy;
}

const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

type Observed = RuntimeContainerSummary | RuntimeContainerDetails;

/** How starting a task's missing containers went; `waiting` means for an image pull. */
type StartOutcome =
  | { outcome: "started" }
  | { outcome: "failed"; reason: string; failedSpec: string }
  | { outcome: "waiting"; reason: string };

interface Pull {
  controller: AbortController;
  /** Settles when the pull has ended and its outcome is recorded. */
  done: Promise<void>;
}

export class Reconciler {
  private readonly nodeId: string;
  private readonly clusterId: string;
  private readonly store: AgentStore;
  private readonly reporter: AgentReporter;
  private readonly runtime: ContainerRuntime;
  private readonly logger: AgentLogger;
  private readonly clock: Clock;
  private readonly labels: Record<string, string>;
  private readonly pullPolicy: PullPolicy;
  private readonly hostPaths: HostPathPolicy;
  private readonly disconnectedMs: () => number | null;
  /** Restarts of each task's containers while cut off: for backoff, and the report once back. */
  private readonly offlineRestarts = new Map<string, { count: number; lastMs: number }>();
  /** Tasks whose containers this agent stopped after stopAfterDisconnectMs: not a crash. */
  private readonly stoppedWhileCutOff = new Set<string>();

  /** This node's tasks and their versions at the last store change (see onStoreChange). */
  private tasksSignature = "";
  private storeCheckPending = false;
  private started = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private unsubscribe: (() => void) | null = null;
  private subscription: RuntimeEventSubscription | null = null;
  private current: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** Stops and removals run beside the loop, so a slow `docker stop` delays no reaction. */
  private readonly retiring = new Map<string, Promise<void>>();
  /** Image pulls run beside the loop too, one per image; `stop()` aborts them. */
  private readonly pulls = new Map<string, Pull>();
  /**
   * When each image's last pull ended (monotonic ms). An image still missing within
   * `imagePullFailureMemoryMs` of it fails its task without another pull.
   */
  private readonly pullEndedMs = new Map<string, number>();

  /** What was last reported per task, so unchanged state is never sent twice. */
  private readonly lastReported = new Map<string, { key: string; state: TaskReport["state"] }>();
  private readonly exitCodes = new Map<string, number>();
  /** The engine state last reported; null before the first report. */
  private engineReady: boolean | null = null;
  private engineRetryAttempt = 0;

  constructor(options: ReconcilerOptions) {
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.store = options.store;
    this.reporter = options.reporter;
    this.runtime = options.runtime;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.labels = ownLabels(this.clusterId, this.nodeId);
    this.pullPolicy = options.pull ?? "missing";
    this.hostPaths = options.hostPaths ?? { allowed: [], denied: [] };
    this.disconnectedMs = options.disconnectedMs ?? (() => null);
  }

  /** Subscribes to the store and the engine's events and runs the first reconcile. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.store.onChange(() => this.onStoreChange());
    this.subscription = this.runtime.events(this.labels, {
      onEvent: (event) => this.onEngineEvent(event),
      onStreamState: ({ connected }) => {
        // After a reconnect, events may have been missed: a full pass repairs that.
        if (connected) this.trigger();
      },
    });
    this.trigger();
  }

  /**
   * Ends every timer, subscription, stream and image pull; resolves when the running pass and the
   * aborted pulls have ended.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.subscription?.close();
    this.subscription = null;
    const pulls = [...this.pulls.values()];
    for (const pull of pulls) pull.controller.abort();
    await this.queued;
    await this.current;
    await Promise.allSettled(pulls.map((pull) => pull.done));
  }

  /**
   * Runs a reconcile that starts after this call (joining one that is queued) and resolves when
   * it and the stops and removals it began have ended. Never two passes at once.
   */
  async reconcileNow(): Promise<void> {
    await this.schedulePass();
    await Promise.allSettled([...this.retiring.values()]);
  }

  private trigger(): void {
    void this.schedulePass();
  }

  /**
   * Most writes to the fleet concern other nodes: a pass (which lists the engine's containers)
   * runs only when this node's own tasks changed. Each change bumps a task's version.
   */
  private onStoreChange(): void {
    // A batch of applied entries arrives in one turn of the event loop: look once, after it.
    if (this.storeCheckPending) return;
    this.storeCheckPending = true;
    setImmediate(() => {
      this.storeCheckPending = false;
      if (!this.stopped) this.checkOwnTasks();
    });
  }

  private checkOwnTasks(): void {
    const signature = this.store
      .tasksForNode(this.nodeId)
      .map((task) => `${task.id}:${task.version}`)
      .join(",");
    if (signature === this.tasksSignature) return;
    this.tasksSignature = signature;
    this.trigger();
  }

  private schedulePass(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.queued) return this.queued;
    if (this.current) {
      this.queued = this.current.then(() => {
        this.queued = null;
        return this.runPass();
      });
      return this.queued;
    }
    return this.runPass();
  }

  private runPass(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const pass = this.pass().finally(() => {
      this.current = null;
    });
    this.current = pass;
    return pass;
  }

  private scheduleNext(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || !this.started) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.trigger();
    }, delayMs);
  }

  private onEngineEvent(event: RuntimeEvent): void {
    if (event.action === "die" && event.exitCode !== null) {
      this.rememberExitCode(event.containerId, event.exitCode);
    }
    // Started again (not by shoal, which never restarts): its earlier exit no longer holds.
    if (event.action === "start") this.exitCodes.delete(event.containerId);
    if (event.action === "create" || event.action === "start") return;
    this.trigger();
  }

  private rememberExitCode(containerId: string, exitCode: number): void {
    this.exitCodes.set(containerId, exitCode);
    if (this.exitCodes.size > limits.exitCodesRememberedMax) {
      const oldest = this.exitCodes.keys().next().value;
      if (oldest !== undefined) this.exitCodes.delete(oldest);
    }
  }

  private async pass(): Promise<void> {
    const startedMs = this.clock.monotonic();
    let nextDelayMs: number = limits.reconcileMs;
    try {
      await this.reconcileAll();
    } catch (error) {
      if (isEngineDown(error)) {
        nextDelayMs = await this.engineUnreachable(error);
      } else {
        this.logger.error({ err: describe(error) }, "reconcile failed");
      }
    }
    const tookMs = this.clock.monotonic() - startedMs;
    if (tookMs > limits.reconcileMs) this.logger.warn({ tookMs }, "reconcile was slow");
    this.scheduleNext(nextDelayMs);
  }

  private async reconcileAll(): Promise<void> {
    const containers = (await this.runtime.list(this.labels)).map((c) => this.withKnownExit(c));
    await this.engineAnswers();
    const byTask = groupByTask(containers);
    const seen = new Set<string>();
    for (const task of this.store.tasksForNode(this.nodeId)) {
      if (task.node !== this.nodeId || this.stopped) continue;
      seen.add(task.id);
      await this.guard(task.id, () => this.reconcileTask(task, byTask.get(task.id) ?? []));
    }
    for (const [taskId, owned] of byTask) {
      if (seen.has(taskId)) continue;
      seen.add(taskId);
      await this.guard(taskId, () => this.reconcileOrphans(taskId, owned));
    }
    for (const taskId of this.lastReported.keys()) {
      if (!seen.has(taskId)) this.lastReported.delete(taskId);
    }
    for (const taskId of this.offlineRestarts.keys()) {
      if (!seen.has(taskId)) this.offlineRestarts.delete(taskId);
    }
    for (const taskId of this.stoppedWhileCutOff) {
      if (!seen.has(taskId)) this.stoppedWhileCutOff.delete(taskId);
    }
  }

  /**
   * The engine sends `die` before its list shows the container exited, so a list taken right
   * after the event may still say running: the event is the fresher truth.
   */
  private withKnownExit(container: RuntimeContainerSummary): RuntimeContainerSummary {
    if (container.state !== "running" || !this.exitCodes.has(container.id)) return container;
    return { ...container, state: "exited", health: null };
  }

  /** One task's failure is logged and the pass goes on; an engine that went away ends it. */
  private async guard(taskId: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (isEngineDown(error)) throw error;
      this.logger.error({ task: taskId, err: describe(error) }, "reconcile of task failed");
    }
  }

  private async reconcileTask(task: Task, owned: RuntimeContainerSummary[]): Promise<void> {
    if (this.retiring.has(task.id)) return;
    const reported = this.lastReported.get(task.id)?.state;
    const terminal = isTerminal(task.state) || (reported !== undefined && isTerminal(reported));
    if (task.desired === "stopped" || terminal) {
      this.retire(task, owned, !terminal);
      return;
    }
    const definition = this.store.taskDefinition(
      task.taskDefinition.family,
      task.taskDefinition.revision,
    );
    if (!definition) {
      const name = `${task.taskDefinition.family}:${task.taskDefinition.revision}`;
      await this.failTask(task, owned, `task definition ${name} not found`, null, []);
      return;
    }
    if (await this.stoppedForDisconnect(task, owned)) return;
    const matched = await this.matchContainers(definition.containers, owned);
    const exited = await this.exitedContainer(definition.containers, matched);
    if (exited) {
      await this.containerExited(task, owned, definition.containers, matched, exited);
      return;
    }
    await this.runMissing(task, owned, definition.containers, matched);
  }

  /**
   * Pairs each spec with the container labelled for it. Duplicates, containers of no spec and
   * containers that were created but never started (an agent crash in between) are removed.
   */
  private async matchContainers(
    specs: ContainerSpec[],
    owned: RuntimeContainerSummary[],
  ): Promise<Map<string, Observed>> {
    const matched = new Map<string, Observed>();
    const extras: RuntimeContainerSummary[] = [];
    for (const container of owned) {
      const name = container.labels[labelKeys.container] ?? "";
      const usable = specs.some((s) => s.name === name) && container.state !== "created";
      if (container.state === "removing") continue;
      if (!usable || matched.has(name)) extras.push(container);
      else matched.set(name, container);
    }
    for (const extra of extras) {
      this.logger.warn({ container: extra.id, name: extra.name }, "removing a stray container");
      await this.runtime.remove(extra.id);
    }
    return matched;
  }

  /** The container whose exit ends the task: an essential one, or the last one standing. */
  private async exitedContainer(
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<{
    spec: ContainerSpec;
    details: Observed;
    exitCode: number | null;
    oomKilled: boolean;
  } | null> {
    const hasExited = (spec: ContainerSpec) => isExited(matched.get(spec.name));
    const allExited = specs.every(hasExited);
    const spec = specs.find((s) => hasExited(s) && (s.essential || allExited));
    if (!spec) return null;
    const details = matched.get(spec.name)!;
    const inspection = await this.runtime.inspect(details.id);
    // Gone already (removed by someone) or not yet shown exited: the die event's code serves.
    const inspected = isExited(inspection ?? undefined) ? inspection : null;
    const exitCode = inspected?.exitCode ?? this.exitCodes.get(details.id) ?? null;
    return {
      spec,
      details: inspected ?? details,
      exitCode,
      oomKilled: inspected?.oomKilled ?? false,
    };
  }

  private async containerExited(
    task: Task,
    owned: Observed[],
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
    exited: { spec: ContainerSpec; details: Observed; exitCode: number | null; oomKilled: boolean },
  ): Promise<void> {
    matched.set(exited.spec.name, exited.details);
    const containers = await this.describeContainers(specs, matched);
    const stoppedHere = this.stoppedWhileCutOff.has(task.id);
    const reason = stoppedHere
      ? "stopped while cut off from the leader (stopAfterDisconnectMs)"
      : exitReason(exited.spec.name, exited.exitCode, exited.oomKilled);
    // A one-off task whose work finished cleanly has stopped, not failed; nor has a task this
    // agent stopped itself while cut off (back in touch before being replaced).
    const state =
      stoppedHere || (task.service === null && exited.exitCode === 0) ? "stopped" : "failed";
    const report = this.makeReport(task, state, reason, exited.exitCode, containers);
    this.logger.info({ task: task.id, exitCode: exited.exitCode }, reason);
    // Cut off, a report waits for the leader; a service's container is better restarted here.
    const restartHere = () =>
      task.service !== null && !stoppedHere && this.disconnectedMs() !== null;
    if (restartHere()) {
      await this.restartOffline(task, specs, matched);
      return;
    }
    if (await this.report(task, report)) this.retire(task, owned, false);
    else if (restartHere()) await this.restartOffline(task, specs, matched);
  }

  /** Starts a task's exited containers again, backing off from the previous restart. */
  private async restartOffline(
    task: Task,
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<void> {
    const now = this.clock.monotonic();
    const prior = this.offlineRestarts.get(task.id);
    const delayMs =
      prior === undefined
        ? 0
        : Math.min(limits.offlineRestartMsMax, limits.offlineRestartMsMin * 2 ** (prior.count - 1));
    const waitMs = prior === undefined ? 0 : prior.lastMs + delayMs - now;
    if (waitMs > 0) {
      this.scheduleNext(waitMs);
      return;
    }
    for (const spec of specs) {
      const container = matched.get(spec.name);
      if (container !== undefined && isExited(container)) await this.runtime.start(container.id);
    }
    const count = (prior?.count ?? 0) + 1;
    this.offlineRestarts.set(task.id, { count, lastMs: now });
    this.logger.warn(
      { task: task.id, restarts: count },
      "cut off from the leader: restarted a crashed container here",
    );
  }

  /**
   * A service that asks to stop after a disconnect (Nomad's `stop_after_client_disconnect`): cut
   * off that long, the node stops its containers, and reports nothing until it hears again.
   */
  private async stoppedForDisconnect(task: Task, owned: Observed[]): Promise<boolean> {
    if (task.service === null) return false;
    const disconnected = this.disconnectedMs();
    if (disconnected === null) return false;
    const stopAfter = this.store.service(task.service)?.stopAfterDisconnectMs ?? null;
    if (stopAfter === null || disconnected < stopAfter) return false;
    const running = owned.filter((container) => container.state === "running");
    if (running.length === 0) return true;
    this.logger.warn(
      { task: task.id, disconnectedMs: disconnected },
      "cut off too long: stopping the task's containers",
    );
    this.stoppedWhileCutOff.add(task.id);
    for (const container of running) {
      await this.runtime.stop(container.id, limits.containerStopTimeoutSeconds);
    }
    return true;
  }

  private async runMissing(
    task: Task,
    owned: RuntimeContainerSummary[],
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<void> {
    const missing = specs.filter((spec) => !matched.has(spec.name));
    const wasRunning =
      task.state === "running" || this.lastReported.get(task.id)?.state === "running";
    if (missing.length > 0 && wasRunning) {
      // It ran here and its container is gone (removed by hand, or the engine lost it).
      const reason = `container ${missing[0]!.name} is missing`;
      await this.failTask(task, owned, reason, null, await this.describeContainers(specs, matched));
      return;
    }
    if (missing.length > 0) {
      const started = await this.startMissing(task, missing, specs, matched);
      if (started.outcome === "waiting") return;
      if (started.outcome === "failed") {
        const containers = await this.describeContainers(specs, matched, started.failedSpec);
        await this.failTask(task, allContainers(owned, matched), started.reason, null, containers);
        return;
      }
    }
    await this.reportRunningOrExited(task, owned, specs, matched);
  }

  /** Reports the task starting, then starts its missing containers; a pull keeps it starting. */
  private async startMissing(
    task: Task,
    missing: ContainerSpec[],
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<StartOutcome> {
    // Once starting was reported (while a pull runs, say), saying it again would only flap
    // between the bare report and the one that names the pull.
    if (this.lastReported.get(task.id)?.state !== "starting") {
      const starting = await this.describeContainers(specs, matched);
      await this.report(task, this.makeReport(task, "starting", "", null, starting));
    }
    const started = await this.startContainers(task, missing, matched);
    if (started.outcome === "waiting") {
      const containers = await this.describeContainers(specs, matched);
      await this.report(task, this.makeReport(task, "starting", started.reason, null, containers));
    }
    return started;
  }

  /** After start, a container may have exited already; otherwise the task is running. */
  private async reportRunningOrExited(
    task: Task,
    owned: RuntimeContainerSummary[],
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<void> {
    const exited = await this.exitedContainer(specs, matched);
    if (exited) {
      await this.containerExited(task, allContainers(owned, matched), specs, matched, exited);
      return;
    }
    const containers = await this.describeContainers(specs, matched);
    const restarts = this.offlineRestarts.get(task.id)?.count ?? 0;
    const reason =
      restarts > 0 ? `restarted ${restarts} time(s) while cut off from the leader` : "";
    await this.report(task, this.makeReport(task, "running", reason, null, containers));
  }

  private async startContainers(
    task: Task,
    missing: ContainerSpec[],
    matched: Map<string, Observed>,
  ): Promise<StartOutcome> {
    for (const spec of missing) {
      // Checked where a symlink leads too: a task may have made one under an allowed directory.
      const refused = hostPathsOf([spec]).find(
        (p) =>
          !hostPathAllowed(p, this.hostPaths) ||
          !hostPathAllowed(resolveHostPath(p, realpathOrNull), this.hostPaths),
      );
      if (refused !== undefined) {
        const reason = `this node does not allow mounting the host path ${refused} (--allow-host-path)`;
        return { outcome: "failed", reason, failedSpec: spec.name };
      }
      // Its image is on its way: creating the container now would only fail again.
      if (this.pulls.has(spec.image)) return waitingFor(spec.image, "pulling");
      try {
        const details = await this.runtime.run(
          runtimeSpec(this.clusterId, this.nodeId, task, spec),
        );
        matched.set(spec.name, details);
        this.logger.info(
          { task: task.id, container: details.id },
          `started container ${spec.name}`,
        );
      } catch (error) {
        if (isEngineDown(error)) throw error;
        if (isShoalError(error) && error.code === "E_IMAGE_NOT_FOUND") {
          return this.imageMissing(task, spec);
        }
        const reason = `cannot start container ${spec.name}: ${describe(error)}`;
        return { outcome: "failed", reason, failedSpec: spec.name };
      }
    }
    return { outcome: "started" };
  }

  /**
   * The engine lacks a container's image. Under policy `missing` a pull starts beside the loop
   * (when a slot is free) and the task waits; a pull that ended lately and left no image, or
   * policy `never`, fails the task with `image not found: NAME`.
   */
  private imageMissing(task: Task, spec: ContainerSpec): StartOutcome {
    const failed = `image not found: ${spec.image}`;
    if (this.pullPolicy === "never" || this.pulledLately(spec.image)) {
      return { outcome: "failed", reason: failed, failedSpec: spec.name };
    }
    // Slots free up as pulls end, and each end triggers a pass that tries again.
    if (this.pulls.size >= limits.imagePullsInFlightMax) return waitingFor(spec.image, "queued");
    this.beginPull(task, spec.image);
    return waitingFor(spec.image, "pulling");
  }

  private pulledLately(image: string): boolean {
    const endedMs = this.pullEndedMs.get(image);
    if (endedMs === undefined) return false;
    if (this.clock.monotonic() - endedMs < limits.imagePullFailureMemoryMs) return true;
    this.pullEndedMs.delete(image);
    return false;
  }

  /** Starts a pull that no pass awaits; its end triggers a pass, which creates the container. */
  private beginPull(task: Task, image: string): void {
    this.logger.info({ task: task.id, image }, `pulling image ${image}`);
    const controller = new AbortController();
    const startedMs = this.clock.monotonic();
    const done = this.runtime
      .pull(image, controller.signal)
      .then(
        () => this.pullEnded(image, startedMs, null),
        (error: unknown) => this.pullEnded(image, startedMs, error),
      )
      .finally(() => {
        this.pulls.delete(image);
        this.trigger();
      });
    this.pulls.set(image, { controller, done });
  }

  private pullEnded(image: string, startedMs: number, error: unknown): void {
    // Aborted by stop(): there is nothing left to decide.
    if (this.stopped) return;
    const tookMs = Math.round(this.clock.monotonic() - startedMs);
    if (error === null) {
      this.logger.info({ image, tookMs }, `pulled image ${image}`);
    } else if (isEngineDown(error)) {
      // Not the image's fault: the passes wait for the engine, then pull again.
      this.logger.warn({ image, err: describe(error) }, "image pull cut off");
      return;
    } else {
      this.logger.warn(
        { image, tookMs, err: describe(error) },
        `pull of image ${image} failed: ${describe(error)}`,
      );
    }
    this.rememberPullEnd(image);
  }

  private rememberPullEnd(image: string): void {
    this.pullEndedMs.delete(image);
    this.pullEndedMs.set(image, this.clock.monotonic());
    if (this.pullEndedMs.size > limits.imagePullOutcomesRememberedMax) {
      const oldest = this.pullEndedMs.keys().next().value;
      if (oldest !== undefined) this.pullEndedMs.delete(oldest);
    }
  }

  private async failTask(
    task: Task,
    owned: Observed[],
    reason: string,
    exitCode: number | null,
    containers: TaskContainer[],
  ): Promise<void> {
    this.logger.warn({ task: task.id }, `task failed: ${reason}`);
    const report = this.makeReport(task, "failed", reason, exitCode, containers);
    if (await this.report(task, report)) this.retire(task, owned, false);
  }

  private async describeContainers(
    specs: ContainerSpec[],
    matched: Map<string, Observed>,
    failedSpec?: string,
  ): Promise<TaskContainer[]> {
    const containers: TaskContainer[] = [];
    for (const spec of specs) {
      const observed = matched.get(spec.name) ?? null;
      const exitCode = observed && isExited(observed) ? await this.exitCodeOf(observed) : null;
      const container = taskContainer(spec, observed, exitCode);
      containers.push(spec.name === failedSpec ? { ...container, state: "failed" } : container);
    }
    return containers;
  }

  private async exitCodeOf(observed: Observed): Promise<number | null> {
    if ("exitCode" in observed && observed.exitCode !== null) return observed.exitCode;
    const remembered = this.exitCodes.get(observed.id);
    if (remembered !== undefined) return remembered;
    const inspected = await this.runtime.inspect(observed.id);
    if (inspected?.exitCode != null) this.rememberExitCode(observed.id, inspected.exitCode);
    return inspected?.exitCode ?? null;
  }

  /** Containers of tasks that are terminal, unknown or not this node's are removed. */
  private async reconcileOrphans(taskId: string, owned: RuntimeContainerSummary[]): Promise<void> {
    const task = taskId === "" ? null : this.store.task(taskId);
    if (task && !isTerminal(task.state) && task.node === this.nodeId) return;
    if (this.retiring.has(taskId)) return;
    const why =
      task === null
        ? "unknown task"
        : isTerminal(task.state)
          ? `task ${task.state}`
          : "task moved away";
    this.logger.info(
      { task: taskId, containers: owned.map((c) => c.id) },
      `removing orphans: ${why}`,
    );
    this.retireContainers(taskId, owned, null);
  }

  /**
   * Stops and removes a task's containers beside the loop; reports `stopped` first when the
   * task was not terminal yet. A retirement that fails is tried again on the next pass.
   */
  private retire(task: Task, owned: Observed[], reportStopped: boolean): void {
    if (owned.length === 0 && !reportStopped) return;
    const stoppedReport = reportStopped ? task : null;
    this.retireContainers(task.id, owned, stoppedReport);
  }

  private retireContainers(taskId: string, owned: Observed[], stoppedTask: Task | null): void {
    const job = this.stopAndRemove(owned, stoppedTask)
      .catch((error: unknown) => {
        this.logger.warn({ task: taskId, err: describe(error) }, "could not remove containers");
      })
      .finally(() => {
        this.retiring.delete(taskId);
      });
    this.retiring.set(taskId, job);
  }

  private async stopAndRemove(owned: Observed[], stoppedTask: Task | null): Promise<void> {
    const stopTimeoutSeconds = limits.containerStopTimeoutSeconds;
    await Promise.all(
      owned.filter((c) => !isExited(c)).map((c) => this.runtime.stop(c.id, stopTimeoutSeconds)),
    );
    if (stoppedTask) {
      const reported = await this.reportStopped(stoppedTask, owned);
      if (!reported) return;
    }
    await Promise.all(owned.map((c) => this.runtime.remove(c.id)));
    for (const container of owned) this.exitCodes.delete(container.id);
  }

  private async reportStopped(task: Task, owned: Observed[]): Promise<boolean> {
    const definition = this.store.taskDefinition(
      task.taskDefinition.family,
      task.taskDefinition.revision,
    );
    const containers: TaskContainer[] = [];
    for (const spec of definition?.containers ?? []) {
      const container = owned.find((c) => c.labels[labelKeys.container] === spec.name);
      const inspected = container ? await this.runtime.inspect(container.id) : null;
      containers.push(taskContainer(spec, inspected, inspected?.exitCode ?? null));
    }
    const reason = task.reason === "" ? "desired stopped" : task.reason;
    return this.report(task, this.makeReport(task, "stopped", reason, null, containers));
  }

  private makeReport(
    task: Task,
    state: TaskReport["state"],
    reason: string,
    exitCode: number | null,
    containers: TaskContainer[],
  ): TaskReport {
    return { taskId: task.id, node: this.nodeId, state, reason, exitCode, containers };
  }

  /** Sends a report when it differs from the last one (or from the store); true once it is known. */
  private async report(task: Task, report: TaskReport): Promise<boolean> {
    const key = reportKey(report);
    const previous =
      this.lastReported.get(task.id)?.key ?? reportKey(reportFromTask(task, this.nodeId));
    if (key === previous) return true;
    try {
      await this.reporter.reportTasks([report]);
    } catch (error) {
      this.logger.warn({ task: task.id, err: describe(error) }, "task report failed; will retry");
      return false;
    }
    this.lastReported.set(task.id, { key, state: report.state });
    return true;
  }

  private async engineAnswers(): Promise<void> {
    this.engineRetryAttempt = 0;
    if (this.engineReady === true) return;
    if (this.engineReady === false) this.logger.info({}, "docker engine answers again");
    await this.reportEngine(true, "");
  }

  /** Reports the engine down (once), and returns how long to wait before the next try. */
  private async engineUnreachable(error: unknown): Promise<number> {
    const message = describe(error);
    const delayMs = Math.min(
      limits.dockerRetryMsMax,
      limits.dockerRetryMsMin * 2 ** this.engineRetryAttempt,
    );
    this.engineRetryAttempt = Math.min(this.engineRetryAttempt + 1, 30);
    if (this.engineReady !== false) {
      this.logger.error(
        { err: message, retryMs: delayMs },
        `docker engine unreachable: ${message}`,
      );
      await this.reportEngine(false, message);
    }
    return delayMs;
  }

  private async reportEngine(ready: boolean, message: string): Promise<void> {
    try {
      await this.reporter.reportEngine(ready, message);
      this.engineReady = ready;
    } catch (error) {
      this.logger.warn({ err: describe(error) }, "engine report failed; will retry");
    }
  }
}

function groupByTask(
  containers: RuntimeContainerSummary[],
): Map<string, RuntimeContainerSummary[]> {
  const byTask = new Map<string, RuntimeContainerSummary[]>();
  for (const container of containers) {
    const taskId = container.labels[labelKeys.task] ?? "";
    byTask.set(taskId, [...(byTask.get(taskId) ?? []), container]);
  }
  return byTask;
}

/** Every container of a task: those listed at the start of the pass and those it started. */
function allContainers(
  owned: RuntimeContainerSummary[],
  matched: Map<string, Observed>,
): Observed[] {
  const all = new Map<string, Observed>(owned.map((c) => [c.id, c]));
  for (const container of matched.values()) all.set(container.id, container);
  return [...all.values()];
}

function waitingFor(image: string, how: "pulling" | "queued"): StartOutcome {
  const reason = how === "pulling" ? `pulling image ${image}` : `waiting to pull image ${image}`;
  return { outcome: "waiting", reason };
}

function isExited(container: Observed | undefined): boolean {
  return container?.state === "exited" || container?.state === "dead";
}

function isEngineDown(error: unknown): boolean {
  return isShoalError(error) && error.code === "E_DOCKER_UNAVAILABLE";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

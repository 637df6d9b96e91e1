// The agent's reconcile loop: the tasks the store places on this node against the containers
// on the local engine. It starts what is missing, adopts what already runs, reports what dies,
// stops what is no longer wanted and removes orphans. It never restarts a failed task: the
// scheduler replaces it; except while the node is cut off from the leader, when it restarts a
// service's crashed containers itself (with backoff) and stops those of services that ask for it
// after `stopAfterDisconnectMs`. It touches only containers labelled with this cluster AND node.
// A missing image is pulled beside the loop (pull policy `missing`), never inside a pass.
// This file runs the passes; what to do about each task is decided in task-decision.ts and
// carried out by task-executor.ts.

import type { Clock } from "../core/clock.ts";
import type { HostPathPolicy } from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import { errorMessage, isEngineDown } from "./engine-errors.ts";
import { EngineHealth } from "./engine-health.ts";
import { ExitCodes } from "./exit-codes.ts";
import { ImagePulls } from "./image-pulls.ts";
import { OfflineRestarts } from "./offline-restarts.ts";
import type { AgentReporter, AgentStore } from "./ports.ts";
import { ReportDedup } from "./report-dedup.ts";
import {
  type ContainerRuntime,
  labelKeys,
  type PullPolicy,
  type RuntimeContainerSummary,
  type RuntimeEvent,
  type RuntimeEventSubscription,
} from "./runtime.ts";
import { ownLabels } from "./task-containers.ts";
import { TaskExecutor } from "./task-executor.ts";

export interface ReconcilerOptions {
  nodeId: string;
  clusterId: string;
  store: AgentStore;
  reporter: AgentReporter;
  runtime: ContainerRuntime;
  logger: Logger;
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

export class Reconciler {
  private readonly nodeId: string;
  private readonly store: AgentStore;
  private readonly runtime: ContainerRuntime;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly labels: Record<string, string>;
  private readonly exitCodes = new ExitCodes();
  private readonly restarts = new OfflineRestarts();
  private readonly reports: ReportDedup;
  private readonly engine: EngineHealth;
  /** Image pulls run beside the loop; `stop()` aborts them. */
  private readonly pulls: ImagePulls;
  private readonly executor: TaskExecutor;

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

  constructor(options: ReconcilerOptions) {
    this.nodeId = options.nodeId;
    this.store = options.store;
    this.runtime = options.runtime;
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.labels = ownLabels(options.clusterId, this.nodeId);
    this.reports = new ReportDedup(this.nodeId, options.reporter, this.logger);
    this.engine = new EngineHealth(options.reporter, this.logger);
    const { runtime, logger, clock } = this;
    this.pulls = new ImagePulls({ runtime, logger, clock, onEnded: () => this.trigger() });
    const { nodeId, clusterId, store } = options;
    this.executor = new TaskExecutor({
      nodeId,
      clusterId,
      store,
      runtime,
      logger,
      clock,
      pullPolicy: options.pull ?? "missing",
      hostPaths: options.hostPaths ?? { allowed: [], denied: [] },
      disconnectedMs: options.disconnectedMs ?? (() => null),
      reports: this.reports,
      pulls: this.pulls,
      restarts: this.restarts,
      exitCodes: this.exitCodes,
      scheduleNext: (delayMs) => this.scheduleNext(delayMs),
    });
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
    const pullsEnded = this.pulls.abortAll();
    await this.queued;
    await this.current;
    await pullsEnded;
  }

  /**
   * Runs a reconcile that starts after this call (joining one that is queued) and resolves when
   * it and the stops and removals it began have ended. Never two passes at once.
   */
  async reconcileNow(): Promise<void> {
    await this.schedulePass();
    await this.executor.retirementsSettled();
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
      this.exitCodes.remember(event.containerId, event.exitCode);
    }
    // Started again (not by shoal, which never restarts): its earlier exit no longer holds.
    if (event.action === "start") this.exitCodes.forget(event.containerId);
    if (event.action === "create" || event.action === "start") return;
    this.trigger();
  }

  private async pass(): Promise<void> {
    const startedMs = this.clock.monotonic();
    let nextDelayMs: number = limits.reconcileMs;
    try {
      await this.reconcileAll();
    } catch (error) {
      if (isEngineDown(error)) {
        nextDelayMs = await this.engine.unreachable(error);
      } else {
        this.logger.error({ err: errorMessage(error) }, "reconcile failed");
      }
    }
    const tookMs = this.clock.monotonic() - startedMs;
    if (tookMs > limits.reconcileMs) this.logger.warn({ tookMs }, "reconcile was slow");
    this.scheduleNext(nextDelayMs);
  }

  private async reconcileAll(): Promise<void> {
    const containers = (await this.runtime.list(this.labels)).map((c) => this.withKnownExit(c));
    await this.engine.answers();
    const byTask = groupByTask(containers);
    const seen = new Set<string>();
    for (const task of this.store.tasksForNode(this.nodeId)) {
      if (task.node !== this.nodeId || this.stopped) continue;
      seen.add(task.id);
      const owned = byTask.get(task.id) ?? [];
      await this.guard(task.id, () => this.executor.reconcileTask(task, owned));
    }
    for (const [taskId, owned] of byTask) {
      if (seen.has(taskId)) continue;
      seen.add(taskId);
      await this.guard(taskId, () => this.executor.reconcileOrphans(taskId, owned));
    }
    this.reports.keepOnly(seen);
    this.restarts.keepOnly(seen);
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
      this.logger.error({ task: taskId, err: errorMessage(error) }, "reconcile of task failed");
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

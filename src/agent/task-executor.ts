// Carries out the task decision's actions against the engine and the reporter, and asks the
// decision again with what they revealed, until one task's turn in a pass settles. Stops and
// removals run beside the loop, so a slow `docker stop` delays no reaction.

import { assert, unreachable } from "../core/assert.ts";
import type { Clock } from "../core/clock.ts";
import { isShoalError } from "../core/errors.ts";
import { type HostPathPolicy, hostPathsOf, resolveHostPath } from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { ContainerSpec, Task, TaskDefinition } from "../core/types.ts";
import { errorMessage, isEngineDown } from "./engine-errors.ts";
import type { ExitCodes } from "./exit-codes.ts";
import type { ImagePulls } from "./image-pulls.ts";
import type { OfflineRestarts } from "./offline-restarts.ts";
import type { AgentStore } from "./ports.ts";
import { realpathOrNull } from "./real-path.ts";
import type { ReportDedup } from "./report-dedup.ts";
import {
  type ContainerRuntime,
  labelKeys,
  type PullPolicy,
  type RuntimeContainerDetails,
} from "./runtime.ts";
import { isExited, type Observed, runtimeSpec } from "./task-containers.ts";
import {
  decide,
  decideOrphans,
  type PassProgress,
  type StartFailure,
  type StoppedReport,
  stoppedReport,
  type TaskAction,
  type TaskDecisionInput,
} from "./task-decision.ts";

export interface TaskExecutorOptions {
  nodeId: string;
  clusterId: string;
  store: AgentStore;
  runtime: ContainerRuntime;
  logger: Logger;
  clock: Clock;
  pullPolicy: PullPolicy;
  hostPaths: HostPathPolicy;
  disconnectedMs: () => number | null;
  reports: ReportDedup;
  pulls: ImagePulls;
  restarts: OfflineRestarts;
  exitCodes: ExitCodes;
  /** Asks for the next pass after `delayMs`. */
  scheduleNext: (delayMs: number) => void;
}

/** One task's progress through a pass: what the decision's next input says the pass has done. */
class TaskPass implements PassProgress {
  readonly inspected = new Map<string, RuntimeContainerDetails | null>();
  readonly started = new Map<string, RuntimeContainerDetails>();
  startFailure: StartFailure | null = null;
  reportRefused = false;
  /** Where each host path of the definition leads, resolved once per pass. */
  readonly resolved = new Map<string, string>();

  constructor(public containers: Observed[]) {}
}

export class TaskExecutor {
  private readonly retiring = new Map<string, Promise<void>>();
  /** Tasks whose ingress drains before their containers stop, since when (monotonic ms). */
  private readonly draining = new Map<string, number>();

  constructor(private readonly options: TaskExecutorOptions) {}

  /** Resolves when the retirements running now have ended. */
  async retirementsSettled(): Promise<void> {
    await Promise.allSettled([...this.retiring.values()]);
  }

  /** Decides and acts until the decision has nothing left that depends on what it learns. */
  async reconcileTask(task: Task, owned: Observed[]): Promise<void> {
    const pass = new TaskPass(owned);
    for (let round = 0; round < limits.taskDecisionRoundsMax; round++) {
      const actions = decide(this.decisionInput(task, pass));
      if (!(await this.carryOut(task.id, task, actions, pass))) return;
    }
    assert(false, `task ${task.id} did not settle in ${limits.taskDecisionRoundsMax} rounds`);
  }

  async reconcileOrphans(taskId: string, owned: Observed[]): Promise<void> {
    const task = taskId === "" ? null : this.options.store.task(taskId);
    const { nodeId } = this.options;
    const retiring = this.retiring.has(taskId);
    const actions = decideOrphans({ taskId, task, nodeId, retiring, containers: owned });
    await this.carryOut(taskId, null, actions, new TaskPass(owned));
  }

  private decisionInput(task: Task, pass: TaskPass): TaskDecisionInput {
    const { store, nodeId, reports, restarts, pulls } = this.options;
    const definition = store.taskDefinition(
      task.taskDefinition.family,
      task.taskDefinition.revision,
    );
    const service = task.service === null ? null : store.service(task.service);
    return {
      task,
      nodeId,
      definition,
      stopAfterDisconnectMs: service?.stopAfterDisconnectMs ?? null,
      drainMs: service && service.ingress.length > 0 ? service.drainMs : 0,
      disconnectedMs: this.options.disconnectedMs(),
      nowMs: this.options.clock.monotonic(),
      containers: pass.containers,
      exitCodes: this.options.exitCodes.view(),
      memory: {
        retiring: this.retiring.has(task.id),
        lastReportedState: reports.lastState(task.id),
        offlineRestart: restarts.of(task.id),
        stoppedWhileCutOff: restarts.stoppedHere(task.id),
        drainingSinceMs: this.draining.get(task.id) ?? null,
      },
      pulls: {
        policy: this.options.pullPolicy,
        inFlight: pulls.inFlight(),
        endedMs: pulls.endings(),
      },
      hostPaths: { policy: this.options.hostPaths, resolved: resolvedPaths(pass, definition) },
      pass,
    };
  }

  /** Carries out `actions` in order; true when what they revealed calls for another decision. */
  private async carryOut(
    taskId: string,
    task: Task | null,
    actions: TaskAction[],
    pass: TaskPass,
  ): Promise<boolean> {
    let revealed = false;
    for (const action of actions) {
      const outcome = await this.act(taskId, task, action, pass);
      if (outcome === "halt") return true;
      if (outcome === "revealed") revealed = true;
    }
    return revealed;
  }

  private async act(
    taskId: string,
    task: Task | null,
    action: TaskAction,
    pass: TaskPass,
  ): Promise<"done" | "revealed" | "halt"> {
    const { runtime, logger } = this.options;
    switch (action.kind) {
      case "log":
        logger[action.level](action.fields, action.message);
        return "done";
      case "report":
        assert(task !== null, "a report needs its task");
        if (await this.options.reports.send(task, action.report)) return "done";
        if (!action.stopIfRefused) return "done";
        pass.reportRefused = true;
        return "halt";
      case "create":
        assert(task !== null, "a container needs its task");
        return (await this.create(task, action.spec, pass)) ? "revealed" : "halt";
      case "inspect":
        await this.inspect(action.containerId, action.rememberExitCode, pass);
        return "revealed";
      case "remove":
        await runtime.remove(action.containerId);
        pass.containers = pass.containers.filter((c) => c.id !== action.containerId);
        return "done";
      case "stop":
        this.options.restarts.markStopped(taskId);
        for (const id of action.containerIds) {
          await runtime.stop(id, limits.containerStopTimeoutSeconds);
        }
        return "done";
      case "start":
        for (const id of action.containerIds) await runtime.start(id);
        this.options.restarts.record(taskId, action.restart);
        return "done";
      case "drain":
        this.draining.set(taskId, action.sinceMs);
        return "done";
      case "wait":
        this.options.scheduleNext(action.delayMs);
        return "done";
      case "pull":
        this.options.pulls.begin(taskId, action.image);
        return "done";
      case "retire":
        this.draining.delete(taskId);
        this.retire(taskId, task, action.containers, action.stopped);
        return "done";
      default:
        return unreachable(action);
    }
  }

  /** Runs one container; a failure other than the engine's is the decision's next input. */
  private async create(task: Task, spec: ContainerSpec, pass: TaskPass): Promise<boolean> {
    const { runtime, logger, clusterId, nodeId } = this.options;
    try {
      const details = await runtime.run(runtimeSpec(clusterId, nodeId, task, spec));
      pass.started.set(spec.name, details);
      logger.info({ task: task.id, container: details.id }, `started container ${spec.name}`);
      return true;
    } catch (error) {
      if (isEngineDown(error)) throw error;
      const imageMissing = isShoalError(error) && error.code === "E_IMAGE_NOT_FOUND";
      pass.startFailure = { specName: spec.name, imageMissing, message: errorMessage(error) };
      return false;
    }
  }

  private async inspect(containerId: string, remember: boolean, pass: TaskPass): Promise<void> {
    const inspected = await this.options.runtime.inspect(containerId);
    pass.inspected.set(containerId, inspected);
    if (remember && inspected?.exitCode != null) {
      this.options.exitCodes.remember(containerId, inspected.exitCode);
    }
  }

  /** Starts a retirement beside the loop; one that fails is tried again on the next pass. */
  private retire(
    taskId: string,
    task: Task | null,
    containers: Observed[],
    stopped: StoppedReport | null,
  ): void {
    assert(stopped === null || task !== null, "a stopped report needs its task");
    const job = this.stopAndRemove(containers, task && stopped ? { task, stopped } : null)
      .catch((error: unknown) => {
        this.options.logger.warn(
          { task: taskId, err: errorMessage(error) },
          "could not remove containers",
        );
      })
      .finally(() => {
        this.retiring.delete(taskId);
      });
    this.retiring.set(taskId, job);
  }

  private async stopAndRemove(
    containers: Observed[],
    stopped: { task: Task; stopped: StoppedReport } | null,
  ): Promise<void> {
    const { runtime, exitCodes } = this.options;
    const stopTimeoutSeconds = limits.containerStopTimeoutSeconds;
    await Promise.all(
      containers.filter((c) => !isExited(c)).map((c) => runtime.stop(c.id, stopTimeoutSeconds)),
    );
    if (stopped && !(await this.reportStopped(stopped.task, stopped.stopped, containers))) return;
    await Promise.all(containers.map((c) => runtime.remove(c.id)));
    for (const container of containers) exitCodes.forget(container.id);
  }

  private async reportStopped(
    task: Task,
    stopped: StoppedReport,
    containers: Observed[],
  ): Promise<boolean> {
    const inspectedBySpec = new Map<string, RuntimeContainerDetails | null>();
    for (const spec of stopped.specs) {
      const container = containers.find((c) => c.labels[labelKeys.container] === spec.name);
      const inspected = container ? await this.options.runtime.inspect(container.id) : null;
      inspectedBySpec.set(spec.name, inspected);
    }
    const { nodeId, reports } = this.options;
    return reports.send(task, stoppedReport(task, nodeId, stopped, inspectedBySpec));
  }
}

/** The definition's host paths where their symlinks lead, each resolved once per task and pass. */
function resolvedPaths(pass: TaskPass, definition: TaskDefinition | null): Map<string, string> {
  for (const path of hostPathsOf(definition?.containers ?? [])) {
    if (!pass.resolved.has(path)) pass.resolved.set(path, resolveHostPath(path, realpathOrNull));
  }
  return pass.resolved;
}

// The task decision as a table: each case is one task as the engine shows it and the agent
// remembers it, and the actions the reconciler takes about it, written out as short lines.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import type { ContainerSpec, Task, TaskContainer, TaskDefinition } from "../core/types.ts";
import { task as makeTask } from "../scheduler/test-harness.ts";
import type {
  RuntimeContainerDetails,
  RuntimeContainerState,
  RuntimeContainerSummary,
} from "./runtime.ts";
import {
  decide,
  decideOrphans,
  type PassProgress,
  stoppedReport,
  type TaskAction,
  type TaskDecisionInput,
  type TaskMemory,
} from "./task-decision.ts";

const nodeId = "n1";
const image = "shoal-test/busybox:1";

const httpd: ContainerSpec = {
  name: "httpd",
  image,
  command: [],
  env: {},
  ports: [{ container: 80, host: 0, protocol: "tcp" }],
  mounts: [],
  cpu: 0.1,
  memoryMb: 32,
  essential: true,
};
const sidecar: ContainerSpec = { ...httpd, name: "sidecar", ports: [], essential: false };

function definitionOf(...containers: ContainerSpec[]): TaskDefinition {
  return { family: "web", revision: 1, createdAt: 0, containers };
}

function mounting(source: string): TaskDefinition {
  return definitionOf({ ...httpd, mounts: [{ source, target: "/data", readOnly: false }] });
}

function pending(overrides: Partial<Task> = {}): Task {
  return makeTask("t1", "web", nodeId, { state: "pending", ...overrides });
}

function summary(
  id: string,
  state: RuntimeContainerState,
  options: { name?: string; health?: "healthy"; hostPort?: number } = {},
): RuntimeContainerSummary {
  const name = options.name ?? "httpd";
  return {
    id,
    name: `shoal-web-${name}-t1`,
    image,
    labels: { "shoal.task": "t1", "shoal.container": name },
    state,
    health: options.health ?? null,
    ports: options.hostPort ? [{ container: 80, host: options.hostPort, protocol: "tcp" }] : [],
  };
}

function details(
  id: string,
  state: RuntimeContainerState,
  exitCode: number | null,
  options: { name?: string; oomKilled?: boolean; hostPort?: number } = {},
): RuntimeContainerDetails {
  return {
    ...summary(id, state, options),
    exitCode,
    oomKilled: options.oomKilled ?? false,
    error: "",
    startedAtMs: null,
    finishedAtMs: null,
  };
}

interface Overrides {
  task?: Task;
  definition?: TaskDefinition | null;
  containers?: (RuntimeContainerSummary | RuntimeContainerDetails)[];
  exitCodes?: [string, number][];
  memory?: Partial<TaskMemory>;
  pass?: Partial<PassProgress>;
  disconnectedMs?: number;
  stopAfterDisconnectMs?: number;
  drainMs?: number;
  nowMs?: number;
  pull?: Partial<TaskDecisionInput["pulls"]>;
  hostPaths?: { allowed: string[]; denied: string[]; resolved?: [string, string][] };
}

function input(overrides: Overrides = {}): TaskDecisionInput {
  const definition =
    overrides.definition === undefined ? definitionOf(httpd) : overrides.definition;
  const paths = overrides.hostPaths ?? { allowed: [], denied: [] };
  const mounts = (definition?.containers ?? []).flatMap((c) => c.mounts.map((m) => m.source));
  return {
    task: overrides.task ?? pending(),
    nodeId,
    definition,
    stopAfterDisconnectMs: overrides.stopAfterDisconnectMs ?? null,
    drainMs: overrides.drainMs ?? 0,
    disconnectedMs: overrides.disconnectedMs ?? null,
    nowMs: overrides.nowMs ?? 1000,
    containers: overrides.containers ?? [],
    exitCodes: new Map(overrides.exitCodes ?? []),
    memory: {
      retiring: false,
      lastReportedState: null,
      offlineRestart: null,
      stoppedWhileCutOff: false,
      drainingSinceMs: null,
      ...overrides.memory,
    },
    pulls: { policy: "missing", inFlight: new Set(), endedMs: new Map(), ...overrides.pull },
    hostPaths: {
      policy: { allowed: paths.allowed, denied: paths.denied },
      resolved: new Map([
        ...mounts.map((m): [string, string] => [m, m]),
        ...(paths.resolved ?? []),
      ]),
    },
    pass: {
      inspected: new Map(),
      started: new Map(),
      startFailure: null,
      reportRefused: false,
      ...overrides.pass,
    },
  };
}

/** `httpd:exited(137)`, `httpd:running/healthy 80->32768`: a reported container in a few words. */
function container(c: TaskContainer): string {
  const health = c.health ? `/${c.health}` : "";
  const exit = c.exitCode === null ? "" : `(${c.exitCode})`;
  const ports = c.ports.filter((p) => p.host !== null).map((p) => ` ${p.container}->${p.host}`);
  return `${c.name}:${c.state}${health}${exit}${ports.join("")}`;
}

/** One action as a line, the way the table's expectations are written. */
function line(action: TaskAction): string {
  switch (action.kind) {
    case "log":
      return `log ${action.level} ${action.message}`;
    case "report": {
      const { state, reason, exitCode, containers } = action.report;
      const exit = exitCode === null ? "" : ` exit=${exitCode}`;
      const gate = action.stopIfRefused ? " gate" : "";
      return `report ${state} "${reason}"${exit} [${containers.map(container).join(", ")}]${gate}`;
    }
    case "create":
      return `create ${action.spec.name}`;
    case "inspect":
      return `inspect ${action.containerId}${action.rememberExitCode ? " remember" : ""}`;
    case "remove":
      return `remove ${action.containerId}`;
    case "stop":
      return `stop ${action.containerIds.join(",")}`;
    case "start":
      return `start ${action.containerIds.join(",")} restarts=${action.restart.count} at=${action.restart.lastMs}`;
    case "drain":
      return `drain since ${action.sinceMs}`;
    case "wait":
      return `wait ${action.delayMs}`;
    case "pull":
      return `pull ${action.image}`;
    case "retire": {
      const ids = action.containers.map((c) => c.id).join(",");
      return `retire ${ids}${action.stopped ? ` stopped "${action.stopped.reason}"` : ""}`;
    }
  }
}

const exited137 = "container httpd exited with code 137";
const cutOffRestart = "log warn cut off from the leader: restarted a crashed container here";
const missingStarting = 'report starting "" [httpd:missing]';
const inspectedExit = (code: number, oomKilled = false): Partial<PassProgress> => ({
  inspected: new Map([["c1", details("c1", "exited", code, { oomKilled })]]),
});
const refusedPath = (path: string) =>
  `this node does not allow mounting the host path ${path} (--allow-host-path)`;
/** A task's only container mounts `path`, which this node refuses. */
const refusedMount = (path: string) => [
  missingStarting,
  `log warn task failed: ${refusedPath(path)}`,
  `report failed "${refusedPath(path)}" [httpd:failed] gate`,
];

/** A running task of a service with a 5 s drain, asked to stop, at `nowMs`. */
function draining(nowMs: number, drainingSinceMs: number | null): TaskDecisionInput {
  return input({
    task: pending({ state: "running", desired: "stopped", reason: "scaled down" }),
    containers: [summary("c1", "running")],
    drainMs: 5000,
    memory: { drainingSinceMs },
    nowMs,
  });
}

/** Its container crashed with 137 while the node is cut off from the leader. */
const crashedWhileCutOff: Overrides = {
  containers: [summary("c1", "exited")],
  pass: inspectedExit(137),
  disconnectedMs: 5000,
};
const imageMissing: Partial<PassProgress> = {
  startFailure: { specName: "httpd", imageMissing: true, message: "" },
};
const imageNotFound = [
  `log warn task failed: image not found: ${image}`,
  `report failed "image not found: ${image}" [httpd:failed] gate`,
];

const cases: { name: string; input: TaskDecisionInput; expected: string[] }[] = [
  {
    name: "starts a task's containers: reports starting, then creates the missing one",
    input: input(),
    expected: [missingStarting, "create httpd"],
  },
  {
    name: "once created, reports running with the host port",
    input: input({
      pass: { started: new Map([["httpd", details("c1", "running", null, { hostPort: 32768 })]]) },
      memory: { lastReportedState: "starting" },
    }),
    expected: ['report running "" [httpd:running 80->32768]'],
  },
  {
    name: "adopts a running container instead of starting a duplicate",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "running", { hostPort: 32768 })],
    }),
    expected: ['report running "" [httpd:running 80->32768]'],
  },
  {
    name: "reports health changes",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "running", { health: "healthy" })],
    }),
    expected: ['report running "" [httpd:running/healthy]'],
  },
  {
    name: "inspects a container that died before deciding",
    input: input({ containers: [summary("c1", "exited")], exitCodes: [["c1", 137]] }),
    expected: ["inspect c1"],
  },
  {
    name: "marks a task failed when its container dies, and never restarts it",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "exited")],
      pass: inspectedExit(137),
    }),
    expected: [
      `log info ${exited137}`,
      `report failed "${exited137}" exit=137 [httpd:exited(137)] gate`,
      "retire c1",
    ],
  },
  {
    name: "catches a death on the periodic reconcile too: the code comes from the inspection",
    input: input({ containers: [summary("c1", "exited")], pass: inspectedExit(3) }),
    expected: [
      "log info container httpd exited with code 3",
      'report failed "container httpd exited with code 3" exit=3 [httpd:exited(3)] gate',
      "retire c1",
    ],
  },
  {
    name: "says when a container ran out of memory",
    input: input({ containers: [summary("c1", "exited")], pass: inspectedExit(137, true) }),
    expected: [
      `log info ${exited137} (out of memory)`,
      `report failed "${exited137} (out of memory)" exit=137 [httpd:exited(137)] gate`,
      "retire c1",
    ],
  },
  {
    name: "takes the die event's code when the container is gone before its inspection",
    input: input({
      containers: [summary("c1", "exited")],
      exitCodes: [["c1", 137]],
      pass: { inspected: new Map([["c1", null]]) },
    }),
    expected: [
      `log info ${exited137}`,
      `report failed "${exited137}" exit=137 [httpd:exited(137)] gate`,
      "retire c1",
    ],
  },
  {
    name: "restarts a crashed container itself while cut off",
    input: input({
      ...crashedWhileCutOff,
    }),
    expected: [`log info ${exited137}`, "start c1 restarts=1 at=1000", cutOffRestart],
  },
  {
    name: "while cut off, a second crash soon after waits for the backoff",
    input: input({
      ...crashedWhileCutOff,
      memory: { offlineRestart: { count: 1, lastMs: 1000 } },
      nowMs: 1400,
    }),
    expected: [`log info ${exited137}`, `wait ${limits.offlineRestartMsMin - 400}`],
  },
  {
    name: "while cut off, restarts again once the backoff has passed, and counts it",
    input: input({
      ...crashedWhileCutOff,
      memory: { offlineRestart: { count: 2, lastMs: 1000 } },
      nowMs: 1000 + 2 * limits.offlineRestartMsMin,
    }),
    expected: [`log info ${exited137}`, "start c1 restarts=3 at=3000", cutOffRestart],
  },
  {
    name: "a one-off task is never restarted while cut off",
    input: input({
      task: pending({ service: null }),
      containers: [summary("c1", "exited")],
      pass: inspectedExit(1),
      disconnectedMs: 5000,
    }),
    expected: [
      "log info container httpd exited with code 1",
      'report failed "container httpd exited with code 1" exit=1 [httpd:exited(1)] gate',
      "retire c1",
    ],
  },
  {
    name: "restarts here when the report of a crash is refused and the node is cut off",
    input: input({
      containers: [summary("c1", "exited")],
      pass: { ...inspectedExit(137), reportRefused: true },
      disconnectedMs: 2500,
    }),
    expected: ["start c1 restarts=1 at=1000", cutOffRestart],
  },
  {
    name: "does nothing more this pass when the report of a crash is refused while connected",
    input: input({
      containers: [summary("c1", "exited")],
      pass: { ...inspectedExit(137), reportRefused: true },
    }),
    expected: [],
  },
  {
    name: "reports the restarts made while cut off once the leader hears it again",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "running")],
      memory: { offlineRestart: { count: 1, lastMs: 1000 } },
    }),
    expected: [
      'report running "restarted 1 time(s) while cut off from the leader" [httpd:running]',
    ],
  },
  {
    name: "stops a service's containers once cut off for its stopAfterDisconnectMs",
    input: input({
      containers: [summary("c1", "running")],
      disconnectedMs: 10_000,
      stopAfterDisconnectMs: 10_000,
    }),
    expected: ["log warn cut off too long: stopping the task's containers", "stop c1"],
  },
  {
    name: "runs on while cut off for less than its stopAfterDisconnectMs",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "running")],
      disconnectedMs: 9000,
      stopAfterDisconnectMs: 10_000,
    }),
    expected: ['report running "" [httpd:running]'],
  },
  {
    name: "once stopped for being cut off, neither restarts nor reports",
    input: input({
      containers: [summary("c1", "exited")],
      disconnectedMs: 12_000,
      stopAfterDisconnectMs: 10_000,
      memory: { stoppedWhileCutOff: true },
    }),
    expected: [],
  },
  {
    name: "back in touch after stopping itself while cut off: stopped on purpose, not a crash",
    input: input({
      containers: [summary("c1", "exited")],
      pass: inspectedExit(137),
      memory: { stoppedWhileCutOff: true },
    }),
    expected: [
      "log info stopped while cut off from the leader (stopAfterDisconnectMs)",
      'report stopped "stopped while cut off from the leader (stopAfterDisconnectMs)" exit=137 [httpd:exited(137)] gate',
      "retire c1",
    ],
  },
  {
    name: "starts no container that mounts a host path this node does not allow",
    input: input({
      definition: mounting("/etc"),
      hostPaths: { allowed: ["/srv"], denied: ["/srv/shoal"] },
    }),
    expected: refusedMount("/etc"),
  },
  {
    name: "starts no container that mounts a path below a denied one",
    input: input({
      definition: mounting("/srv/shoal/raft.db"),
      hostPaths: { allowed: ["/srv"], denied: ["/srv/shoal"] },
    }),
    expected: refusedMount("/srv/shoal/raft.db"),
  },
  {
    name: "creates a container whose host path is allowed",
    input: input({
      definition: mounting("/srv/media"),
      hostPaths: { allowed: ["/srv"], denied: ["/srv/shoal"] },
    }),
    expected: [missingStarting, "create httpd"],
  },
  {
    name: "starts no container whose allowed host path is a symlink to one it does not allow",
    input: input({
      definition: mounting("/tmp/links/etc"),
      hostPaths: { allowed: ["/tmp/links"], denied: [], resolved: [["/tmp/links/etc", "/etc"]] },
    }),
    expected: refusedMount("/tmp/links/etc"),
  },
  {
    name: "creates what it can, then fails on a refused host path with what it created",
    input: input({
      definition: definitionOf(httpd, {
        ...sidecar,
        mounts: [{ source: "/etc", target: "/x", readOnly: true }],
      }),
      pass: { started: new Map([["httpd", details("c9", "running", null)]]) },
      memory: { lastReportedState: "starting" },
    }),
    expected: [
      `log warn task failed: ${refusedPath("/etc")}`,
      `report failed "${refusedPath("/etc")}" [httpd:running, sidecar:failed] gate`,
      "retire c9",
    ],
  },
  {
    name: "pulls a missing image beside the loop and reports it",
    input: input({
      memory: { lastReportedState: "starting" },
      pass: imageMissing,
    }),
    expected: [`pull ${image}`, `report starting "pulling image ${image}" [httpd:missing]`],
  },
  {
    name: "creates nothing while its image is being pulled, and says so",
    input: input({ pull: { inFlight: new Set([image]) } }),
    expected: [missingStarting, `report starting "pulling image ${image}" [httpd:missing]`],
  },
  {
    name: "does not report bare starting again while a pull runs",
    input: input({
      pull: { inFlight: new Set([image]) },
      memory: { lastReportedState: "starting" },
    }),
    expected: [`report starting "pulling image ${image}" [httpd:missing]`],
  },
  {
    name: "reports bare starting once a pass, even when that report was refused",
    input: input({
      definition: definitionOf(httpd, { ...sidecar, image: "nginx:alpine" }),
      pull: { inFlight: new Set(["nginx:alpine"]) },
      pass: { started: new Map([["httpd", details("c9", "running", null)]]) },
    }),
    expected: ['report starting "pulling image nginx:alpine" [httpd:running, sidecar:missing]'],
  },
  {
    name: "waits for a pull slot when imagePullsInFlightMax pulls run",
    input: input({
      pull: { inFlight: new Set(["a:1", "b:1"]) },
      pass: imageMissing,
    }),
    expected: [`report starting "waiting to pull image ${image}" [httpd:missing]`],
  },
  {
    name: "remembers a failed pull for a while: fails with `image not found: NAME`",
    input: input({
      pull: { endedMs: new Map([[image, 1000]]) },
      nowMs: 1000 + limits.imagePullFailureMemoryMs - 1,
      pass: imageMissing,
    }),
    expected: imageNotFound,
  },
  {
    name: "pulls again once a failed pull is forgotten",
    input: input({
      pull: { endedMs: new Map([[image, 1000]]) },
      nowMs: 1000 + limits.imagePullFailureMemoryMs,
      memory: { lastReportedState: "starting" },
      pass: imageMissing,
    }),
    expected: [`pull ${image}`, `report starting "pulling image ${image}" [httpd:missing]`],
  },
  {
    name: "with policy never, fails at once and never pulls",
    input: input({
      pull: { policy: "never" },
      pass: imageMissing,
    }),
    expected: imageNotFound,
  },
  {
    name: "fails a task whose container the engine refuses",
    input: input({
      pass: { startFailure: { specName: "httpd", imageMissing: false, message: "bad spec" } },
    }),
    expected: [
      "log warn task failed: cannot start container httpd: bad spec",
      'report failed "cannot start container httpd: bad spec" [httpd:failed] gate',
    ],
  },
  {
    name: "stops and removes the containers of a task desired stopped, and reports it stopped",
    input: input({
      task: pending({ state: "running", desired: "stopped", reason: "scaled down" }),
      containers: [summary("c1", "running")],
    }),
    expected: ['retire c1 stopped "scaled down"'],
  },
  {
    name: "drains a running task with ingress before it stops: no new connections, a wait",
    input: draining(1000, null),
    expected: [
      "log info draining: no new ingress connections, open ones get drainMs",
      "drain since 1000",
      "wait 5000",
    ],
  },
  {
    name: "keeps waiting while the drain lasts",
    input: draining(4000, 1000),
    expected: ["wait 2000"],
  },
  {
    name: "stops a drained task once its drainMs are over",
    input: draining(6000, 1000),
    expected: ['retire c1 stopped "scaled down"'],
  },
  {
    name: "does not drain a task asked to stop whose containers no longer run",
    input: input({
      task: pending({ state: "running", desired: "stopped" }),
      containers: [summary("c1", "exited")],
      drainMs: 5000,
    }),
    expected: ['retire c1 stopped "desired stopped"'],
  },
  {
    name: "reports a task desired stopped whose container died as stopped, not failed",
    input: input({
      task: pending({ state: "running", desired: "stopped" }),
      containers: [summary("c1", "exited")],
    }),
    expected: ['retire c1 stopped "desired stopped"'],
  },
  {
    name: "reports a task desired stopped that has no container as stopped",
    input: input({ task: pending({ desired: "stopped" }) }),
    expected: ['retire  stopped "desired stopped"'],
  },
  {
    name: "removes the containers of a terminal task without a report",
    input: input({ task: pending({ state: "failed" }), containers: [summary("c1", "exited")] }),
    expected: ["retire c1"],
  },
  {
    name: "removes the containers of a task it reported terminal, before the store says so",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "exited")],
      memory: { lastReportedState: "failed" },
    }),
    expected: ["retire c1"],
  },
  {
    name: "leaves a terminal task without containers alone",
    input: input({ task: pending({ state: "failed" }) }),
    expected: [],
  },
  {
    name: "reports a one-off task whose container exited 0 as stopped",
    input: input({
      task: pending({ service: null }),
      containers: [summary("c1", "exited")],
      pass: inspectedExit(0),
    }),
    expected: [
      "log info container httpd exited with code 0",
      'report stopped "container httpd exited with code 0" exit=0 [httpd:exited(0)] gate',
      "retire c1",
    ],
  },
  {
    name: "fails a running task whose container vanished",
    input: input({ task: pending({ state: "running" }) }),
    expected: [
      "log warn task failed: container httpd is missing",
      'report failed "container httpd is missing" [httpd:missing] gate',
    ],
  },
  {
    name: "fails a task it reported running whose container vanished",
    input: input({ memory: { lastReportedState: "running" } }),
    expected: [
      "log warn task failed: container httpd is missing",
      'report failed "container httpd is missing" [httpd:missing] gate',
    ],
  },
  {
    name: "does nothing more this pass once a failure's report is refused",
    input: input({ task: pending({ state: "running" }), pass: { reportRefused: true } }),
    expected: [],
  },
  {
    name: "leaves a task alone while its containers are being retired",
    input: input({ containers: [summary("c1", "running")], memory: { retiring: true } }),
    expected: [],
  },
  {
    name: "fails a task whose task definition is unknown",
    input: input({ definition: null, containers: [summary("c1", "running")] }),
    expected: [
      "log warn task failed: task definition web:1 not found",
      'report failed "task definition web:1 not found" [] gate',
      "retire c1",
    ],
  },
  {
    name: "removes a duplicate container and keeps the first",
    input: input({
      task: pending({ state: "running" }),
      containers: [summary("c1", "running"), summary("c2", "running")],
    }),
    expected: [
      "log warn removing a stray container",
      "remove c2",
      'report running "" [httpd:running]',
    ],
  },
  {
    name: "removes a container that was created but never started, and creates it again",
    input: input({ containers: [summary("c1", "created")] }),
    expected: ["log warn removing a stray container", "remove c1", missingStarting, "create httpd"],
  },
  {
    name: "inspects an exited sidecar whose code it does not know, and remembers it",
    input: input({
      definition: definitionOf(httpd, sidecar),
      containers: [summary("c1", "running"), summary("c2", "exited", { name: "sidecar" })],
    }),
    expected: ["inspect c2 remember"],
  },
  {
    name: "runs on when a non-essential container exited",
    input: input({
      task: pending({ state: "running" }),
      definition: definitionOf(httpd, sidecar),
      containers: [summary("c1", "running"), summary("c2", "exited", { name: "sidecar" })],
      exitCodes: [["c2", 0]],
    }),
    expected: ['report running "" [httpd:running, sidecar:exited(0)]'],
  },
  {
    name: "ends the task with the last container standing",
    input: input({
      definition: definitionOf({ ...httpd, essential: false }, sidecar),
      containers: [summary("c1", "exited"), summary("c2", "exited", { name: "sidecar" })],
      exitCodes: [["c2", 0]],
      pass: inspectedExit(2),
    }),
    expected: [
      "log info container httpd exited with code 2",
      'report failed "container httpd exited with code 2" exit=2 [httpd:exited(2), sidecar:exited(0)] gate',
      "retire c1,c2",
    ],
  },
];

describe("task decision", () => {
  for (const { name, input, expected } of cases) {
    it(name, () => {
      assert.deepEqual(decide(input).map(line), expected);
    });
  }
});

const orphans = [summary("c1", "running")];
const orphanCases: { name: string; task: Task | null; retiring?: boolean; expected: string[] }[] = [
  {
    name: "removes the containers of an unknown task",
    task: null,
    expected: ["log info removing orphans: unknown task", "retire c1"],
  },
  {
    name: "removes the containers of a terminal task",
    task: pending({ state: "lost", desired: "stopped" }),
    expected: ["log info removing orphans: task lost", "retire c1"],
  },
  {
    name: "removes the containers of a task that moved to another node",
    task: pending({ node: "n2" }),
    expected: ["log info removing orphans: task moved away", "retire c1"],
  },
  {
    name: "leaves the containers of an active task of this node alone",
    task: pending(),
    expected: [],
  },
  { name: "leaves containers being retired alone", task: null, retiring: true, expected: [] },
];

describe("orphan decision", () => {
  for (const { name, task, retiring, expected } of orphanCases) {
    it(name, () => {
      const actions = decideOrphans({
        taskId: "t1",
        task,
        nodeId,
        retiring: retiring ?? false,
        containers: orphans,
      });
      assert.deepEqual(actions.map(line), expected);
    });
  }
});

describe("stopped report", () => {
  it("describes each spec's container as inspected once stopped", () => {
    const stopped = { specs: [httpd, sidecar], reason: "scaled down" };
    const inspected = new Map([["httpd", details("c1", "exited", 143)]]);
    const report = stoppedReport(pending(), nodeId, stopped, inspected);
    assert.deepEqual(
      [report.state, report.reason, report.exitCode, report.containers.map(container)],
      ["stopped", "scaled down", null, ["httpd:exited(143)", "sidecar:missing"]],
    );
  });
});

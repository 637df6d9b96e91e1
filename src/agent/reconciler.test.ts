// The reconcile loop against the memory runtime, with a store and reporter that behave like a
// one-node fleet: a report is committed to the store, which then tells its listeners.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import type { Clock } from "../core/clock.ts";
import type { HostPathPolicy } from "../core/host-paths.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import {
  isTerminal,
  type Service,
  type Task,
  type TaskDefinition,
  type TaskReport,
} from "../core/types.ts";
import { service, task } from "../scheduler/test-harness.ts";
import { MemoryRuntime } from "../testing/memory-runtime.ts";
import { waitUntil } from "../testing/wait.ts";
import type { AgentReporter, AgentStore } from "./ports.ts";
import { Reconciler } from "./reconciler.ts";
import type { PullPolicy } from "./runtime.ts";

const clusterId = "c1";
const nodeId = "n1";
const image = "shoal-test/busybox:1";

const web: TaskDefinition = {
  family: "web",
  revision: 1,
  createdAt: 0,
  containers: [
    {
      name: "httpd",
      image,
      command: ["httpd", "-f", "-p", "80"],
      env: { MODE: "test" },
      ports: [{ container: 80, host: 0, protocol: "tcp" }],
      mounts: [],
      cpu: 0.1,
      memoryMb: 32,
      essential: true,
    },
  ],
};

class FakeStore implements AgentStore {
  readonly tasks = new Map<string, Task>();
  readonly services = new Map<string, Service>([["web", service("web")]]);
  readonly definitions = new Map<string, TaskDefinition>([["web:1", web]]);
  private readonly listeners = new Set<() => void>();

  clusterId(): string {
    return clusterId;
  }
  tasksForNode(node: string): Task[] {
    return [...this.tasks.values()].filter(
      (t) => t.node === node && (!isTerminal(t.state) || t.desired === "running"),
    );
  }
  task(taskId: string): Task | null {
    return this.tasks.get(taskId) ?? null;
  }
  taskDefinition(family: string, revision: number): TaskDefinition | null {
    return this.definitions.get(`${family}:${revision}`) ?? null;
  }
  service(name: string): Service | null {
    return this.services.get(name) ?? null;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  put(task: Task): void {
    this.tasks.set(task.id, task);
    for (const listener of this.listeners) listener();
  }
  update(taskId: string, change: Partial<Task>): void {
    const task = this.tasks.get(taskId);
    assert.ok(task);
    this.put({ ...task, ...change });
  }
}

class FakeReporter implements AgentReporter {
  readonly reports: TaskReport[] = [];
  readonly engine: { ready: boolean; message: string }[] = [];
  /** Set while the node is cut off: reports then fail, as they do without a leader. */
  cutOff = false;
  constructor(private readonly store: FakeStore) {}

  async reportTasks(reports: TaskReport[]): Promise<void> {
    if (this.cutOff) throw new Error("no leader");
    for (const report of reports) {
      this.reports.push(structuredClone(report));
      const { state, reason, exitCode, containers } = report;
      this.store.update(report.taskId, { state, reason, exitCode, containers });
    }
  }
  async reportEngine(ready: boolean, message: string): Promise<void> {
    this.engine.push({ ready, message });
  }
  statesOf(taskId: string): string[] {
    return this.reports.filter((r) => r.taskId === taskId).map((r) => r.state);
  }
}

/** A task of service web placed on this node, not yet started. */
function makeTask(id: string, overrides: Partial<Task> = {}): Task {
  return task(id, "web", nodeId, { state: "pending", ...overrides });
}

interface Logged {
  level: string;
  message: string;
}

function makeLogger(lines: Logged[]): Logger {
  return {
    info: (_object, message) => lines.push({ level: "info", message: message ?? "" }),
    warn: (_object, message) => lines.push({ level: "warn", message: message ?? "" }),
    error: (_object, message) => lines.push({ level: "error", message: message ?? "" }),
  };
}

const running: Reconciler[] = [];

function setup(
  runtime = new MemoryRuntime({ images: [image] }),
  store = new FakeStore(),
  options: {
    pull?: PullPolicy;
    clock?: Clock;
    disconnectedMs?: () => number | null;
    hostPaths?: HostPathPolicy;
  } = {},
) {
  const reporter = new FakeReporter(store);
  const logs: Logged[] = [];
  const reconciler = new Reconciler({
    nodeId,
    clusterId,
    store,
    reporter,
    runtime,
    logger: makeLogger(logs),
    ...options,
  });
  running.push(reconciler);
  return { runtime, store, reporter, logs, reconciler };
}

function ownContainers(runtime: MemoryRuntime) {
  return runtime
    .all()
    .filter((c) => c.labels["shoal.cluster"] === clusterId && c.labels["shoal.node"] === nodeId);
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

describe("reconciler", () => {
  it("starts a task's containers and reports starting, then running with the host port", async () => {
    const { runtime, store, reporter, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    assert.deepEqual(reporter.statesOf("t1"), ["starting", "running"]);
    const [container] = ownContainers(runtime);
    assert.ok(container);
    assert.equal(container.name, "shoal-web-httpd-t1");
    assert.deepEqual(
      {
        task: container.labels["shoal.task"],
        service: container.labels["shoal.service"],
        name: container.labels["shoal.container"],
      },
      { task: "t1", service: "web", name: "httpd" },
    );
    const spec = runtime.specOf(container.id);
    assert.deepEqual(
      [spec.env, spec.cpu, spec.memoryMb, spec.command],
      [{ MODE: "test" }, 0.1, 32, ["httpd", "-f", "-p", "80"]],
    );
    const task = store.task("t1");
    assert.equal(task?.state, "running");
    assert.deepEqual(task?.containers, [
      {
        name: "httpd",
        containerId: container.id,
        state: "running",
        exitCode: null,
        health: null,
        ports: [{ container: 80, host: container.ports[0]?.host, protocol: "tcp" }],
      },
    ]);
    assert.ok((container.ports[0]?.host ?? 0) > 0);
  });

  it("reports only on change", async () => {
    const { store, reporter, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    const count = reporter.reports.length;
    await reconciler.reconcileNow();
    await reconciler.reconcileNow();
    assert.equal(reporter.reports.length, count);
    assert.equal(reporter.engine.length, 1);
  });

  it("adopts running containers after a restart instead of starting duplicates", async () => {
    const first = setup();
    first.store.put(makeTask("t1"));
    first.store.put(makeTask("t2"));
    await first.reconciler.reconcileNow();
    await first.reconciler.stop();
    const before = ownContainers(first.runtime).map((c) => c.id);
    const runsBefore = first.runtime.calls.filter((c) => c.startsWith("run ")).length;

    const second = setup(first.runtime, first.store);
    await second.reconciler.reconcileNow();
    assert.deepEqual(
      ownContainers(first.runtime).map((c) => c.id),
      before,
    );
    assert.equal(first.runtime.calls.filter((c) => c.startsWith("run ")).length, runsBefore);
    assert.deepEqual(second.reporter.reports, []);
  });

  it("marks a task failed within a second when its container dies, and never restarts it", async () => {
    const { runtime, store, reporter, reconciler } = setup();
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.state === "running");
    const [container] = ownContainers(runtime);
    assert.ok(container);
    runtime.kill(container.id, 137);
    await waitUntil(() => store.task("t1")?.state === "failed", 1000);
    const task = store.task("t1");
    assert.equal(task?.reason, "container httpd exited with code 137");
    assert.equal(task?.exitCode, 137);
    await waitUntil(() => ownContainers(runtime).length === 0, 1000);
    await reconciler.reconcileNow();
    assert.equal(runtime.calls.filter((c) => c.startsWith("run ")).length, 1);
    assert.equal(reporter.statesOf("t1").at(-1), "failed");
  });

  it("restarts a crashed container itself while cut off, and says so once back", async () => {
    let disconnected: number | null = null;
    const { runtime, store, reporter, reconciler } = setup(undefined, undefined, {
      disconnectedMs: () => disconnected,
    });
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    const [container] = ownContainers(runtime);
    assert.ok(container);
    reporter.cutOff = true;
    disconnected = 5000;
    runtime.kill(container.id, 137);
    await reconciler.reconcileNow();
    const [after] = ownContainers(runtime);
    assert.equal(after?.id, container.id, "the same container, started again");
    assert.equal(after?.state, "running");
    assert.deepEqual(reporter.statesOf("t1"), ["starting", "running"], "no failure reported");
    // A second crash soon after waits for the backoff instead of hot-looping.
    runtime.kill(container.id, 137);
    await reconciler.reconcileNow();
    assert.equal(ownContainers(runtime)[0]?.state, "exited");
    reporter.cutOff = false;
    disconnected = null;
    runtime.kill(container.id, 137);
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "failed", "connected again, a crash is the scheduler's");
  });

  it("reports the restarts made while cut off once the leader hears it again", async () => {
    let disconnected: number | null = null;
    const { runtime, store, reporter, reconciler } = setup(undefined, undefined, {
      disconnectedMs: () => disconnected,
    });
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    reporter.cutOff = true;
    disconnected = 5000;
    runtime.kill(ownContainers(runtime)[0]!.id, 137);
    await reconciler.reconcileNow();
    reporter.cutOff = false;
    disconnected = null;
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "running");
    assert.equal(store.task("t1")?.reason, "restarted 1 time(s) while cut off from the leader");
  });

  it("stops a service's containers once cut off for its stopAfterDisconnectMs", async () => {
    let disconnected: number | null = null;
    const { runtime, store, reporter, reconciler } = setup(undefined, undefined, {
      disconnectedMs: () => disconnected,
    });
    store.services.set("web", service("web", { stopAfterDisconnectMs: 10_000 }));
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    reporter.cutOff = true;
    disconnected = 9000;
    await reconciler.reconcileNow();
    assert.equal(ownContainers(runtime)[0]?.state, "running", "not yet");
    disconnected = 10_000;
    await reconciler.reconcileNow();
    assert.equal(ownContainers(runtime)[0]?.state, "exited");
    await reconciler.reconcileNow();
    assert.equal(ownContainers(runtime)[0]?.state, "exited", "and it is not restarted");
    // Back in touch before the leader replaced it: stopped on purpose, not a crash.
    reporter.cutOff = false;
    disconnected = null;
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "stopped");
    assert.match(store.task("t1")?.reason ?? "", /cut off from the leader/);
  });

  it("catches a death on the periodic reconcile too", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    runtime.kill(ownContainers(runtime)[0]!.id, 3);
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "failed");
    assert.equal(store.task("t1")?.reason, "container httpd exited with code 3");
  });

  it("starts no container that mounts a host path this node does not allow, whatever the store says", async () => {
    const store = new FakeStore();
    const container = web.containers[0] as TaskDefinition["containers"][number];
    const mounting = (source: string): TaskDefinition => ({
      ...web,
      containers: [{ ...container, mounts: [{ source, target: "/data", readOnly: false }] }],
    });
    store.definitions.set("web:1", mounting("/etc"));
    const policy = { allowed: ["/srv"], denied: ["/srv/shoal"] };
    const { runtime, reconciler } = setup(undefined, store, { hostPaths: policy });
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "failed");
    assert.match(store.task("t1")?.reason ?? "", /does not allow mounting the host path \/etc/);
    assert.deepEqual(ownContainers(runtime), []);
    for (const [source, runs] of [
      ["/srv/shoal/raft.db", false],
      ["/srv/media", true],
    ] as const) {
      store.definitions.set("web:1", mounting(source));
      store.put(makeTask(`t-${source}`));
      await reconciler.reconcileNow();
      assert.equal(store.task(`t-${source}`)?.state === "failed", !runs, source);
    }
  });

  it("starts no container whose allowed host path is a symlink to one it does not allow", async () => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-links-"));
    try {
      symlinkSync("/etc", join(dir, "etc"));
      const store = new FakeStore();
      const container = web.containers[0] as TaskDefinition["containers"][number];
      store.definitions.set("web:1", {
        ...web,
        containers: [
          { ...container, mounts: [{ source: join(dir, "etc"), target: "/x", readOnly: true }] },
        ],
      });
      const { runtime, reconciler } = setup(undefined, store, {
        hostPaths: { allowed: [dir], denied: [] },
      });
      store.put(makeTask("t1"));
      await reconciler.reconcileNow();
      assert.equal(store.task("t1")?.state, "failed");
      assert.deepEqual(ownContainers(runtime), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails a task whose image is missing and cannot be pulled with `image not found: NAME`", async () => {
    const runtime = new MemoryRuntime({ images: [] });
    const { store, logs, reconciler } = setup(runtime);
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.state === "failed");
    const task = store.task("t1");
    assert.equal(task?.reason, `image not found: ${image}`);
    assert.equal(task?.containers[0]?.state, "failed");
    assert.deepEqual(ownContainers(runtime), []);
    const logged = logs.find((l) => l.message.startsWith(`pull of image ${image} failed: `));
    assert.equal(logged?.level, "warn");
    assert.match(logged?.message ?? "", /not in the registry/);
  });

  it("stops and removes the containers of a task desired stopped, and reports it stopped", async () => {
    const { runtime, store, reporter, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    store.update("t1", { desired: "stopped", reason: "scaled down" });
    await reconciler.reconcileNow();
    assert.deepEqual(ownContainers(runtime), []);
    assert.equal(store.task("t1")?.state, "stopped");
    assert.equal(store.task("t1")?.reason, "scaled down");
    assert.deepEqual(reporter.statesOf("t1"), ["starting", "running", "stopped"]);
  });

  it("reports a task desired stopped whose container died as stopped, not failed", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    runtime.kill(ownContainers(runtime)[0]!.id, 137);
    store.update("t1", { desired: "stopped" });
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "stopped");
  });

  it("reports a one-off task whose container exited 0 as stopped", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1", { service: null }));
    await reconciler.reconcileNow();
    assert.equal(ownContainers(runtime)[0]?.name, "shoal-task-httpd-t1");
    assert.equal(ownContainers(runtime)[0]?.labels["shoal.service"], "");
    runtime.kill(ownContainers(runtime)[0]!.id, 0);
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "stopped");
    assert.equal(store.task("t1")?.reason, "container httpd exited with code 0");
  });

  it("removes orphans of this cluster and node, and never touches anything else", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("done", { state: "lost", desired: "stopped" }));
    const base = { image, env: {}, ports: [], mounts: [] };
    const ours = { "shoal.cluster": clusterId, "shoal.node": nodeId };
    const unknown = runtime.seed({ ...base, name: "a", labels: { ...ours, "shoal.task": "gone" } });
    const terminal = runtime.seed({
      ...base,
      name: "b",
      labels: { ...ours, "shoal.task": "done" },
    });
    const untagged = runtime.seed({ ...base, name: "c", labels: { ...ours } });
    const otherNode = runtime.seed({
      ...base,
      name: "d",
      labels: { ...ours, "shoal.node": "n2", "shoal.task": "gone" },
    });
    const otherCluster = runtime.seed({
      ...base,
      name: "e",
      labels: { ...ours, "shoal.cluster": "c2", "shoal.task": "x" },
    });
    const clusterOnly = runtime.seed({
      ...base,
      name: "f",
      labels: { "shoal.cluster": clusterId, "shoal.task": "gone" },
    });
    const bare = runtime.seed({ ...base, name: "g", labels: {} });
    await reconciler.reconcileNow();
    const left = runtime.all().map((c) => c.id);
    for (const removed of [unknown, terminal, untagged]) assert.ok(!left.includes(removed));
    assert.deepEqual(left.sort(), [otherNode, otherCluster, clusterOnly, bare].sort());
    const touched = runtime.calls.filter((c) => c.startsWith("stop ") || c.startsWith("remove "));
    assert.deepEqual(
      new Set(touched.map((c) => c.split(" ")[1])),
      new Set([unknown, terminal, untagged]),
    );
  });

  it("fails a running task whose container vanished", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    runtime.destroy(ownContainers(runtime)[0]!.id);
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "failed");
    assert.equal(store.task("t1")?.reason, "container httpd is missing");
  });

  it("reports health changes", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    runtime.setHealth(ownContainers(runtime)[0]!.id, "healthy");
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.containers[0]?.health, "healthy");
  });

  it("says plainly when the engine is unreachable, keeps going, and reports it back", async () => {
    const { runtime, store, reporter, logs, reconciler } = setup();
    runtime.setEngineUp(false);
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => reporter.engine.length > 0);
    assert.equal(reporter.engine[0]?.ready, false);
    assert.match(reporter.engine[0]?.message ?? "", /unreachable/);
    assert.ok(logs.some((l) => l.level === "error" && /docker engine unreachable/.test(l.message)));
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(reporter.engine.length, 1, "reported once while down");
    assert.ok(runtime.calls.filter((c) => c === "list").length >= 2, "retried with backoff");
    runtime.setEngineUp(true);
    await waitUntil(() => store.task("t1")?.state === "running", 3000);
    assert.deepEqual(reporter.engine.at(-1), { ready: true, message: "" });
    assert.equal(reporter.engine.length, 2);
  });

  it("never runs two reconciles at once and coalesces requests", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    await Promise.all([1, 2, 3, 4, 5].map(() => reconciler.reconcileNow()));
    assert.ok(runtime.calls.filter((c) => c === "list").length <= 2);
    assert.equal(ownContainers(runtime).length, 1);
  });

  it("stops every timer and stream on stop()", async () => {
    const { runtime, store, reconciler } = setup();
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.state === "running");
    await reconciler.stop();
    const calls = runtime.calls.length;
    store.put(makeTask("t2"));
    runtime.kill(ownContainers(runtime)[0]!.id);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(runtime.calls.length, calls);
  });
});

/** A one-container family `name:1` like `web`, but of another image. */
function defineImage(store: FakeStore, family: string, imageName: string): void {
  const container = { ...web.containers[0]!, image: imageName };
  store.definitions.set(`${family}:1`, { ...web, family, containers: [container] });
}

function pullsOf(runtime: MemoryRuntime): string[] {
  return runtime.calls.filter((call) => call.startsWith("pull "));
}

describe("reconciler image pulls", () => {
  const nginx = "nginx:alpine";

  it("pulls a missing image beside the loop, reports it, then runs the task", async () => {
    const runtime = new MemoryRuntime({ images: [], registry: [image] });
    const { store, reporter, reconciler } = setup(runtime);
    runtime.holdPulls();
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.reason === `pulling image ${image}`);
    assert.equal(store.task("t1")?.state, "starting");
    assert.equal(store.task("t1")?.containers[0]?.state, "missing");
    runtime.releasePulls();
    await waitUntil(() => store.task("t1")?.state === "running");
    assert.deepEqual(pullsOf(runtime), [`pull ${image}`]);
    assert.deepEqual(reporter.statesOf("t1"), ["starting", "starting", "running"]);
    assert.equal(ownContainers(runtime).length, 1);
  });

  it("remembers a failed pull for a while: a task of that image fails without pulling", async () => {
    // nginx:alpine is in neither the engine nor the registry: every pull of it fails.
    let monotonicMs = 0;
    const clock: Clock = { now: () => monotonicMs, monotonic: () => monotonicMs };
    const { runtime, store, reconciler } = setup(undefined, undefined, { clock });
    defineImage(store, "proxy", nginx);
    const proxyTask = (id: string) =>
      makeTask(id, { taskDefinition: { family: "proxy", revision: 1 } });
    store.put(proxyTask("t1"));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.state === "failed");
    store.put(proxyTask("t2"));
    await reconciler.reconcileNow();
    assert.equal(store.task("t2")?.state, "failed");
    assert.equal(store.task("t2")?.reason, `image not found: ${nginx}`);
    assert.equal(pullsOf(runtime).length, 1);
    monotonicMs += limits.imagePullFailureMemoryMs;
    store.put(proxyTask("t3"));
    await waitUntil(() => store.task("t3")?.state === "failed");
    assert.equal(pullsOf(runtime).length, 2, "pulled again once the failure was forgotten");
  });

  it("with policy never, fails at once and never pulls", async () => {
    const runtime = new MemoryRuntime({ images: [], registry: [image] });
    const { store, reconciler } = setup(runtime, undefined, { pull: "never" });
    store.put(makeTask("t1"));
    await reconciler.reconcileNow();
    assert.equal(store.task("t1")?.state, "failed");
    assert.equal(store.task("t1")?.reason, `image not found: ${image}`);
    assert.deepEqual(pullsOf(runtime), []);
  });

  it("reacts to a dying container while a slow pull runs", async () => {
    const runtime = new MemoryRuntime({ images: [image], registry: [nginx] });
    const { store, reconciler } = setup(runtime);
    defineImage(store, "proxy", nginx);
    runtime.holdPulls();
    store.put(makeTask("t1"));
    store.put(makeTask("t2", { taskDefinition: { family: "proxy", revision: 1 } }));
    reconciler.start();
    await waitUntil(() => store.task("t1")?.state === "running" && runtime.pullsWaiting === 1);
    runtime.kill(ownContainers(runtime)[0]!.id, 137);
    await waitUntil(() => store.task("t1")?.state === "failed", 1000);
    assert.equal(runtime.pullsWaiting, 1, "the pull is still running");
    assert.equal(store.task("t2")?.reason, `pulling image ${nginx}`);
    runtime.releasePulls();
    await waitUntil(() => store.task("t2")?.state === "running");
  });

  it("runs one pull per image and at most imagePullsInFlightMax at once", async () => {
    const images = ["a:1", "b:1", "c:1"];
    assert.equal(limits.imagePullsInFlightMax, 2, "this test counts on two slots");
    const runtime = new MemoryRuntime({ images: [], registry: images });
    const { store, reconciler } = setup(runtime);
    for (const [index, name] of images.entries()) {
      defineImage(store, `f${index}`, name);
      store.put(makeTask(`t${index}`, { taskDefinition: { family: `f${index}`, revision: 1 } }));
    }
    store.put(makeTask("again", { taskDefinition: { family: "f0", revision: 1 } }));
    runtime.holdPulls();
    reconciler.start();
    await waitUntil(() => store.task("t2")?.reason === "waiting to pull image c:1");
    await reconciler.reconcileNow();
    assert.deepEqual(pullsOf(runtime), ["pull a:1", "pull b:1"]);
    assert.equal(store.task("again")?.reason, "pulling image a:1");
    runtime.releasePulls();
    const ids = ["t0", "t1", "t2", "again"];
    await waitUntil(() => ids.every((id) => store.task(id)?.state === "running"));
    assert.deepEqual(pullsOf(runtime), ["pull a:1", "pull b:1", "pull c:1"]);
  });

  it("aborts a running pull on stop() and reports nothing after it", async () => {
    const runtime = new MemoryRuntime({ images: [], registry: [image] });
    const { store, reporter, reconciler } = setup(runtime);
    runtime.holdPulls();
    store.put(makeTask("t1"));
    reconciler.start();
    await waitUntil(() => runtime.pullsWaiting === 1);
    const reports = reporter.reports.length;
    await reconciler.stop();
    assert.equal(runtime.pullsWaiting, 0, "the pull was aborted");
    assert.equal(reporter.reports.length, reports);
    assert.equal(store.task("t1")?.state, "starting");
  });
});

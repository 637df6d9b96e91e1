// The runtime contract on the real Docker engine, plus what only a real engine can show.
// Needs scripts/ensure-docker.sh and scripts/test-image.sh first; without an engine it FAILS.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import Docker from "dockerode";
import { DockerRuntime, parseDockerHost } from "../../src/adapters/docker-runtime.ts";
import type { AgentReporter, AgentStore } from "../../src/agent/ports.ts";
import { Reconciler } from "../../src/agent/reconciler.ts";
import { labelKeys } from "../../src/agent/runtime.ts";
import { isShoalError } from "../../src/core/errors.ts";
import { newId } from "../../src/core/ids.ts";
import { isTerminal, type Task, type TaskDefinition } from "../../src/core/types.ts";
import { task } from "../../src/scheduler/test-harness.ts";
import { runtimeContract } from "../../src/testing/runtime-contract.ts";
import { waitUntil } from "../../src/testing/wait.ts";

const image = "shoal-test/busybox:1";

/** A raw client for what the port does not offer: killing behind its back, reading configs. */
function rawDocker(): Docker {
  return new Docker(parseDockerHost(process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock"));
}

runtimeContract(
  "docker runtime",
  async () => {
    const runtime = new DockerRuntime();
    const raw = rawDocker();
    return {
      runtime,
      image,
      killContainer: async (containerId) => {
        await raw.getContainer(containerId).kill({ signal: "SIGKILL" });
      },
      close: () => runtime.close(),
    };
  },
  // Docker contacts the registry on every pull, even of an image it has, and this machine may
  // reach nothing beyond loopback: the pull cases of the contract are skipped here.
  { registry: false },
);

describe("docker runtime on a real engine", () => {
  const cluster = `e2e-${newId()}`;
  const labels = { [labelKeys.cluster]: cluster, [labelKeys.node]: "node-e2e" };
  const runtime = new DockerRuntime();
  const raw = rawDocker();

  after(async () => {
    try {
      const leftovers = await runtime.list({ [labelKeys.cluster]: cluster });
      await Promise.all(leftovers.map((container) => runtime.remove(container.id)));
    } finally {
      await runtime.close();
    }
  });

  it("passes cpu, memory, env, command and healthcheck to the engine", async () => {
    const started = await runtime.run({
      name: `${cluster}-limits`,
      image,
      command: ["sleep", "300"],
      env: { GREETING: "hello" },
      ports: [],
      mounts: [{ source: "/tmp", target: "/host-tmp", readOnly: true }],
      cpu: 0.25,
      memoryMb: 64,
      healthcheck: {
        command: ["true"],
        intervalMs: 1000,
        timeoutMs: 1000,
        retries: 2,
        startPeriodMs: 0,
      },
      labels,
    });
    const info = await raw.getContainer(started.id).inspect();
    assert.equal(info.HostConfig.NanoCpus, 250_000_000);
    assert.equal(info.HostConfig.Memory, 64 * 1024 * 1024);
    assert.ok(info.Config.Env.includes("GREETING=hello"));
    assert.deepEqual(info.Config.Cmd, ["sleep", "300"]);
    assert.deepEqual(info.Config.Healthcheck?.Test, ["CMD", "true"]);
    assert.equal(info.Mounts[0]?.Destination, "/host-tmp");
    await waitUntil(async () => (await runtime.inspect(started.id))?.health === "healthy");
    const listed = (await runtime.list(labels)).find((c) => c.id === started.id);
    assert.equal(listed?.health, "healthy");
  });

  it("serves HTTP on the host port the engine picked", async () => {
    const started = await runtime.run({
      name: `${cluster}-httpd`,
      image,
      command: ["httpd", "-f", "-p", "80"],
      env: {},
      ports: [{ container: 80, host: 0, protocol: "tcp" }],
      mounts: [],
      labels,
    });
    const host = started.ports[0]?.host;
    assert.ok(host);
    let body = "";
    await waitUntil(async () => {
      try {
        body = await (await fetch(`http://127.0.0.1:${host}/`)).text();
        return true;
      } catch {
        return false;
      }
    });
    assert.match(body, /shoal test image/);
  });

  it("reports health events and reconnects its event stream with no duplicates", async () => {
    const seen: string[] = [];
    const states: boolean[] = [];
    const subscription = runtime.events(labels, {
      onEvent: (event) => seen.push(`${event.containerId}:${event.action}:${event.health ?? ""}`),
      onStreamState: (state) => states.push(state.connected),
    });
    try {
      await waitUntil(() => states.includes(true));
      const started = await runtime.run({
        name: `${cluster}-health`,
        image,
        command: ["sleep", "300"],
        env: {},
        ports: [],
        mounts: [],
        healthcheck: {
          command: ["true"],
          intervalMs: 1000,
          timeoutMs: 1000,
          retries: 2,
          startPeriodMs: 0,
        },
        labels,
      });
      await waitUntil(() => seen.includes(`${started.id}:health_status:healthy`));
      assert.equal(seen.filter((e) => e === `${started.id}:start:`).length, 1);
    } finally {
      subscription.close();
    }
  });

  it("says plainly when the engine does not answer", async () => {
    const absent = new DockerRuntime({ dockerHost: "unix:///nonexistent/docker.sock" });
    await assert.rejects(absent.ping(), (error: unknown) => {
      assert.ok(isShoalError(error));
      assert.equal(error.code, "E_DOCKER_UNAVAILABLE");
      assert.match(error.message, /unix:\/\/\/nonexistent\/docker\.sock is unreachable/);
      return true;
    });
    await absent.close();
  });

  it("parses DOCKER_HOST the way Docker's CLI does", () => {
    assert.deepEqual(parseDockerHost("unix:///run/d.sock").socketPath, "/run/d.sock");
    assert.equal(parseDockerHost("tcp://127.0.0.1:2375").host, "127.0.0.1");
    assert.equal(parseDockerHost("127.0.0.1:2375").port, "2375");
    assert.throws(() => parseDockerHost("ssh://me@host"), /not unix/);
  });
});

describe("reconciler on a real engine", () => {
  const cluster = `e2e-${newId()}`;
  const runtime = new DockerRuntime();
  const raw = rawDocker();
  const definition: TaskDefinition = {
    family: "web",
    revision: 1,
    createdAt: 0,
    containers: [
      {
        name: "httpd",
        image,
        command: ["httpd", "-f", "-p", "80"],
        env: {},
        ports: [{ container: 80, host: 0, protocol: "tcp" }],
        mounts: [],
        memoryMb: 32,
        essential: true,
      },
    ],
  };
  const tasks = new Map<string, Task>();
  const listeners = new Set<() => void>();
  const store: AgentStore = {
    clusterId: () => cluster,
    tasksForNode: (node) =>
      [...tasks.values()].filter((t) => t.node === node && !isTerminal(t.state)),
    task: (id) => tasks.get(id) ?? null,
    taskDefinition: () => definition,
    service: () => null,
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const reporter: AgentReporter = {
    reportTasks: async (reports) => {
      for (const { taskId, state, reason, exitCode, containers } of reports) {
        const task = tasks.get(taskId);
        if (task) tasks.set(taskId, { ...task, state, reason, exitCode, containers });
      }
      for (const listener of listeners) listener();
    },
    reportEngine: async () => {},
  };
  const logger = { info: () => {}, warn: () => {}, error: () => {} };
  // Policy never: should the test image be gone, the task fails instead of reaching a registry.
  const makeReconciler = () =>
    new Reconciler({
      nodeId: "n1",
      clusterId: cluster,
      store,
      reporter,
      runtime,
      logger,
      pull: "never",
    });
  const reconcilers: Reconciler[] = [];

  after(async () => {
    try {
      await Promise.all(reconcilers.map((r) => r.stop()));
      const leftovers = await runtime.list({ [labelKeys.cluster]: cluster });
      await Promise.all(leftovers.map((container) => runtime.remove(container.id)));
    } finally {
      await runtime.close();
    }
  });

  it("runs tasks, adopts them after a restart, and fails one killed by docker within a second", async () => {
    for (const id of ["a", "b"].map((name) => `${cluster}-${name}`)) {
      tasks.set(id, task(id, "web", "n1", { state: "pending" }));
    }
    const first = makeReconciler();
    reconcilers.push(first);
    await first.reconcileNow();
    const ids = (await runtime.list({ [labelKeys.cluster]: cluster })).map((c) => c.id).sort();
    assert.equal(ids.length, 2);
    const port = tasks.get(`${cluster}-a`)?.containers[0]?.ports[0]?.host;
    assert.ok(port);
    assert.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), /shoal test image/);
    await first.stop();

    const second = makeReconciler();
    reconcilers.push(second);
    second.start();
    await second.reconcileNow();
    assert.deepEqual(
      (await runtime.list({ [labelKeys.cluster]: cluster })).map((c) => c.id).sort(),
      ids,
    );

    const victim = tasks.get(`${cluster}-b`)?.containers[0]?.containerId;
    assert.ok(victim);
    await raw.getContainer(victim).kill();
    await waitUntil(() => tasks.get(`${cluster}-b`)?.state === "failed", 1000);
    assert.equal(tasks.get(`${cluster}-b`)?.reason, "container httpd exited with code 137");

    tasks.set(`${cluster}-a`, { ...tasks.get(`${cluster}-a`)!, desired: "stopped" });
    await second.reconcileNow();
    assert.equal(tasks.get(`${cluster}-a`)?.state, "stopped");
    assert.deepEqual(await runtime.list({ [labelKeys.cluster]: cluster }), []);
  });
});

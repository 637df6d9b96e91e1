// One contract for every ContainerRuntime: the memory twin and the Docker adapter must pass the
// same suite, so unit tests on the twin say something true about the real engine.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type ContainerRuntime,
  labelKeys,
  type RuntimeContainerSpec,
  type RuntimeEvent,
} from "../agent/runtime.ts";
import { isShoalError, type ShoalError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { waitUntil } from "./wait.ts";

export interface RuntimeFixture {
  runtime: ContainerRuntime;
  /** An image the engine has, with busybox's `sleep` and `sh`. */
  image: string;
  /** Kills a running container with SIGKILL behind the runtime's back (exit code 137). */
  killContainer(containerId: string): Promise<void>;
  /** Releases the fixture after the suite removed its containers. */
  close(): Promise<void>;
}

export interface ContractOptions {
  /**
   * Whether the suite may pull. Each run says so explicitly. A pull contacts a registry even for
   * an image the engine has, so the run on the real Docker engine passes `{ registry: false }`:
   * the machines shoal is tested on must never reach the network beyond loopback. The pull cases
   * are then left out of that run; src/adapters/docker-pull.test.ts holds the Docker adapter's
   * pull to them against a fake engine on loopback instead.
   */
  registry: false | { image: string };
}

export function runtimeContract(
  name: string,
  makeFixture: () => Promise<RuntimeFixture>,
  options: ContractOptions,
): void {
  const { registry } = options;
  describe(`ContainerRuntime contract: ${name}`, () => {
    // A cluster label unique to this run: the suite touches and removes only its own containers.
    const cluster = `contract-${newId()}`;
    const nodeA = { [labelKeys.cluster]: cluster, [labelKeys.node]: "node-a" };
    const nodeB = { [labelKeys.cluster]: cluster, [labelKeys.node]: "node-b" };
    let fixture: RuntimeFixture;
    let runtime: ContainerRuntime;
    let serial = 0;

    const spec = (overrides: Partial<RuntimeContainerSpec> = {}): RuntimeContainerSpec => ({
      name: `${cluster}-${++serial}`,
      image: fixture.image,
      command: ["sleep", "300"],
      env: {},
      ports: [],
      mounts: [],
      labels: { ...nodeA, [labelKeys.task]: `task-${serial}` },
      ...overrides,
    });

    before(async () => {
      fixture = await makeFixture();
      runtime = fixture.runtime;
    });

    after(async () => {
      // Runs also when a test failed, so no container of this suite outlives it.
      try {
        const leftovers = await runtime.list({ [labelKeys.cluster]: cluster });
        await Promise.all(leftovers.map((container) => runtime.remove(container.id)));
      } finally {
        await fixture.close();
      }
    });

    it("answers ping and names its engine version", async () => {
      await runtime.ping();
      const info = await runtime.engineInfo();
      assert.ok(info.version.length > 0);
      assert.ok(info.cpus > 0);
    });

    it("runs a container with its labels and an engine-picked host port on 0.0.0.0", async () => {
      const ports = [{ container: 80, host: 0, protocol: "tcp" as const }];
      const started = await runtime.run(spec({ ports, cpu: 0.1, memoryMb: 32, env: { A: "1" } }));
      assert.equal(started.state, "running");
      assert.equal(started.exitCode, null);
      assert.equal(started.health, null);
      assert.equal(started.labels[labelKeys.cluster], cluster);
      const port = started.ports.find((p) => p.container === 80);
      assert.ok(
        port?.host && port.host > 0,
        `host port assigned: ${JSON.stringify(started.ports)}`,
      );
      const listed = (await runtime.list(nodeA)).find((c) => c.id === started.id);
      assert.equal(listed?.state, "running");
      assert.deepEqual(listed?.ports, [{ container: 80, host: port.host, protocol: "tcp" }]);
    });

    it("lists only containers that carry every label asked for", async () => {
      const onA = await runtime.run(spec());
      const onB = await runtime.run(spec({ labels: { ...nodeB } }));
      const listedA = (await runtime.list(nodeA)).map((c) => c.id);
      const listedB = (await runtime.list(nodeB)).map((c) => c.id);
      assert.ok(listedA.includes(onA.id) && !listedA.includes(onB.id));
      assert.deepEqual(listedB, [onB.id]);
    });

    it("fails a missing image with E_IMAGE_NOT_FOUND and leaves nothing behind", async () => {
      const image = `shoal-test/absent-${newId()}:1`;
      const wanted = spec({ image, labels: { ...nodeB, [labelKeys.task]: "missing" } });
      await assert.rejects(runtime.run(wanted), (error: unknown) => {
        assert.ok(isShoalError(error));
        assert.equal(error.code, "E_IMAGE_NOT_FOUND");
        assert.equal(error.message, `image not found: ${image}`);
        return true;
      });
      const left = await runtime.list({ ...nodeB, [labelKeys.task]: "missing" });
      assert.deepEqual(left, []);
    });

    const withRegistry = registry === false ? () => {} : it;
    withRegistry("pulls an image, which then runs; an aborted pull rejects", async () => {
      assert.ok(registry !== false);
      const aborted = new AbortController();
      aborted.abort();
      await assert.rejects(runtime.pull(registry.image, aborted.signal), isImageNotFound);
      await runtime.pull(registry.image, new AbortController().signal);
      const started = await runtime.run(spec({ image: registry.image }));
      assert.equal(started.state, "running");
    });

    withRegistry("fails a pull of an unknown image with E_IMAGE_NOT_FOUND", async () => {
      const image = `shoal-test/absent-${newId()}:1`;
      await assert.rejects(runtime.pull(image, new AbortController().signal), (error: unknown) => {
        assert.ok(isImageNotFound(error));
        assert.ok(error.message.startsWith(`image not found: ${image} (pull failed: `));
        return true;
      });
    });

    it("refuses a name that is taken with E_CONFLICT", async () => {
      const first = spec();
      await runtime.run(first);
      await assert.rejects(runtime.run({ ...first }), (error: unknown) => {
        assert.ok(isShoalError(error));
        assert.equal(error.code, "E_CONFLICT");
        return true;
      });
    });

    it("reports a killed container by a die event with its exit code", async () => {
      const events: RuntimeEvent[] = [];
      const subscription = runtime.events(nodeA, { onEvent: (event) => events.push(event) });
      try {
        const started = await runtime.run(spec());
        await waitUntil(() =>
          events.some((e) => e.containerId === started.id && e.action === "start"),
        );
        await fixture.killContainer(started.id);
        await waitUntil(() =>
          events.some((e) => e.containerId === started.id && e.action === "die"),
        );
        const died = events.find((e) => e.containerId === started.id && e.action === "die");
        assert.equal(died?.exitCode, 137);
        assert.equal(died?.labels[labelKeys.cluster], cluster);
        const inspected = await runtime.inspect(started.id);
        assert.equal(inspected?.state, "exited");
        assert.equal(inspected?.exitCode, 137);
        const listed = (await runtime.list(nodeA)).find((c) => c.id === started.id);
        assert.equal(listed?.state, "exited");
      } finally {
        subscription.close();
      }
    });

    it("stops and removes, idempotently; a removed container inspects as null", async () => {
      const events: RuntimeEvent[] = [];
      const subscription = runtime.events(nodeA, { onEvent: (event) => events.push(event) });
      try {
        const started = await runtime.run(spec());
        await runtime.stop(started.id, 1);
        await runtime.stop(started.id, 1);
        assert.equal((await runtime.inspect(started.id))?.state, "exited");
        await runtime.remove(started.id);
        await runtime.remove(started.id);
        assert.equal(await runtime.inspect(started.id), null);
        await waitUntil(() =>
          events.some((e) => e.containerId === started.id && e.action === "destroy"),
        );
      } finally {
        subscription.close();
      }
    });

    it("starts an exited container again, keeping its id; a gone one is E_NOT_FOUND", async () => {
      const started = await runtime.run(spec());
      await runtime.stop(started.id, 1);
      assert.equal((await runtime.inspect(started.id))?.state, "exited");
      await runtime.start(started.id);
      assert.equal((await runtime.inspect(started.id))?.state, "running");
      await runtime.start(started.id);
      await runtime.remove(started.id);
      await assert.rejects(runtime.start(started.id), (error: unknown) => {
        assert.equal((error as { code?: string }).code, "E_NOT_FOUND");
        return true;
      });
    });

    it("removes a running container", async () => {
      const started = await runtime.run(spec());
      await runtime.remove(started.id);
      assert.equal(await runtime.inspect(started.id), null);
    });

    it("passes a healthcheck through: health starts as starting", async () => {
      const healthcheck = {
        command: ["true"],
        intervalMs: 1000,
        timeoutMs: 1000,
        retries: 3,
        startPeriodMs: 0,
      };
      const started = await runtime.run(spec({ healthcheck }));
      assert.equal(started.health, "starting");
    });

    it("delivers no event after the subscription is closed", async () => {
      const events: RuntimeEvent[] = [];
      const subscription = runtime.events(nodeB, { onEvent: (event) => events.push(event) });
      subscription.close();
      const started = await runtime.run(spec({ labels: { ...nodeB } }));
      await runtime.remove(started.id);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(events, []);
    });
  });
}

function isImageNotFound(error: unknown): error is ShoalError {
  return isShoalError(error) && error.code === "E_IMAGE_NOT_FOUND";
}

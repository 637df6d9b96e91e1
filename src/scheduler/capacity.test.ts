// Feasibility: readiness, cpu and memory reservations, host ports, and how a task that fits
// nowhere waits (pending, reported once) until capacity appears.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate } from "./evaluate.ts";
import {
  createdNodes,
  createdPerNode,
  definition,
  node,
  schedulerInput,
  service,
  task,
} from "./test-harness.ts";

const port8080 = { ports: [{ container: 80, host: 8080, protocol: "tcp" as const }] };

describe("scheduler: feasibility", () => {
  it("places nothing on nodes that are not ready or whose engine does not answer", () => {
    const input = schedulerInput({
      nodes: [
        node("down", { status: "down" }),
        node("draining", { status: "draining" }),
        node("left", { status: "left" }),
        node("no-engine", { engineReady: false }),
      ],
      services: [service("web", { replicas: 2 })],
      taskDefinitions: [definition("web")],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdNodes(plan), [null, null]);
    assert.equal(plan.events.length, 1);
    assert.match(plan.events[0]?.message ?? "", /^2 task\(s\) of web wait: .*; 0 node\(s\) ready$/);
  });

  it("places no new task on a node whose disk is full, and leaves its running tasks there", () => {
    const input = schedulerInput({
      nodes: [node("full", { diskFull: true }), node("roomy")],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [definition("web")],
      tasks: [task("kept", "web", "full")],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(plan.stop, [], "the task on the full node keeps running");
    assert.deepEqual(createdPerNode(plan), { roomy: 2 });
  });

  it("reserves cpu across tasks, including those placed earlier in the same plan", () => {
    const input = schedulerInput({
      nodes: [node("n1", { cpus: 1 }), node("n2", { cpus: 1 })],
      services: [service("web", { replicas: 4 })],
      taskDefinitions: [definition("web", [{ cpu: 0.3 }, { cpu: 0.2 }]), definition("other")],
      tasks: [task("o", "other", "n1")],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdPerNode(plan), { n1: 2, n2: 2 });
    assert.equal(plan.events.length, 0);
  });

  it("compares fractional cpus exactly (3 x 0.1 fits in 0.3)", () => {
    const input = schedulerInput({
      nodes: [node("n1", { cpus: 0.3 })],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [definition("web", [{ cpu: 0.1 }])],
    });
    assert.deepEqual(createdNodes(evaluate(input).plan), ["n1", "n1", "n1"]);
  });

  it("creates pending tasks with one E_NO_CAPACITY event when memory runs out", () => {
    const web = service("web", { replicas: 3 });
    const input = schedulerInput({
      nodes: [node("n1", { memoryMb: 100, cpus: 8 })],
      services: [web],
      taskDefinitions: [definition("web", [{ memoryMb: 64, cpu: 2, ...port8080 }])],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdNodes(plan), ["n1", null, null]);
    assert.deepEqual(plan.events, [
      {
        type: "E_NO_CAPACITY",
        message: "2 task(s) of web wait: needs 2 cpu, 64 MB, port 8080/tcp; 1 node(s) ready",
        service: "web",
        task: "new-2",
      },
    ]);
  });

  it("reports a pending task only until its reason carries the event", () => {
    const base = {
      nodes: [node("n1", { cpus: 1 })],
      services: [service("web", { replicas: 2 })],
      taskDefinitions: [definition("web", [{ cpu: 1 }])],
    };
    const first = evaluate(
      schedulerInput({ ...base, tasks: [task("a", "web", "n1"), task("p", "web", null)] }),
    );
    assert.equal(first.plan.events.length, 1);
    assert.equal(first.plan.events[0]?.task, "p");
    assert.equal(first.plan.assign.length, 0);

    const reason = `E_NO_CAPACITY: ${first.plan.events[0]?.message}`;
    const second = evaluate(
      schedulerInput({
        ...base,
        tasks: [task("a", "web", "n1"), task("p", "web", null, { reason })],
      }),
    );
    assert.deepEqual(second.plan.events, []);
    assert.deepEqual(second.plan.create, []);
    assert.equal(second.nextEvaluationAt, null);
  });

  it("assigns a pending one-off task once capacity appears", () => {
    const job = task("job", null, null, { reason: "E_NO_CAPACITY: no node fits", version: 4 });
    const full = schedulerInput({
      nodes: [node("n1", { memoryMb: 64 })],
      services: [service("web")],
      taskDefinitions: [
        definition("web", [{ memoryMb: 64 }]),
        definition("oneoff", [{ memoryMb: 32 }]),
      ],
      tasks: [task("w", "web", "n1"), job],
    });
    assert.deepEqual(evaluate(full).plan.assign, []);
    assert.deepEqual(evaluate(full).plan.events, []);

    const grown = { ...full, nodes: [...full.nodes, node("n2", { memoryMb: 64 })] };
    const { plan } = evaluate(grown);
    assert.deepEqual(plan.assign, [{ taskId: "job", node: "n2" }]);
    assert.deepEqual(plan.reads, { services: {}, tasks: { job: 4 }, nodes: { n2: 1 } });
  });

  it("keeps a stopping task's reservation until it is gone", () => {
    const input = schedulerInput({
      nodes: [node("n1", { memoryMb: 64 })],
      services: [service("web")],
      taskDefinitions: [definition("web", [{ memoryMb: 64, ...port8080 }])],
      tasks: [task("old", "web", "n1", { desired: "stopped" })],
    });
    assert.deepEqual(createdNodes(evaluate(input).plan), [null]);
  });
});

describe("scheduler: host ports", () => {
  it("never puts two tasks with the same fixed host port on one node", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [definition("web", [port8080])],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdPerNode(plan), { n1: 1, n2: 1, pending: 1 });
    assert.match(plan.events[0]?.message ?? "", /port 8080\/tcp; 2 node\(s\) ready/);
  });

  it("checks ports against tasks of other services, per protocol", () => {
    const udp = { ports: [{ container: 53, host: 8080, protocol: "udp" as const }] };
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      services: [service("web"), service("dns")],
      taskDefinitions: [
        definition("web", [port8080]),
        definition("other", [port8080]),
        definition("dns", [udp]),
      ],
      tasks: [task("o", "other", "n1"), task("o2", "other", "n2")],
    });
    const { plan } = evaluate(input);
    const byService = Object.fromEntries(
      plan.create.map((planned) => [planned.service, planned.node]),
    );
    assert.equal(byService.web, null);
    assert.notEqual(byService.dns, null);
  });

  it("never conflicts on host port 0 or an absent host port", () => {
    const enginePicks = {
      ports: [
        { container: 80, host: 0, protocol: "tcp" as const },
        { container: 81, protocol: "tcp" as const },
        { container: 82, host: 0, protocol: "tcp" as const },
      ],
    };
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web", { replicas: 5 })],
      taskDefinitions: [definition("web", [enginePicks, enginePicks])],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdNodes(plan), ["n1", "n1", "n1", "n1", "n1"]);
    assert.equal(plan.events.length, 0);
  });

  it("refuses a task that asks for the same host port twice, and says why", () => {
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web")],
      taskDefinitions: [
        definition("web", [
          { name: "a", ...port8080 },
          { name: "b", ...port8080 },
        ]),
      ],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdNodes(plan), [null]);
    assert.match(plan.events[0]?.message ?? "", /host port 8080\/tcp twice/);
  });
});

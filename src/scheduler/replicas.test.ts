// Replicated services: scaling up spreads over nodes, scaling down stops the right tasks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate, scaledDownReason } from "./evaluate.ts";
import { emptyPlan } from "./plan-builder.ts";
import { createdPerNode, definition, node, schedulerInput, service, task } from "./test-harness.ts";

describe("scheduler: replicated services", () => {
  it("creates the missing replicas with the service's current task definition", () => {
    const web = service("web", { replicas: 3, taskDefinition: { family: "web", revision: 2 } });
    const input = schedulerInput({
      nodes: [node("n1"), node("n2"), node("n3")],
      services: [web],
      taskDefinitions: [definition("web", [{}], 2)],
      tasks: [task("t1", "web", "n1", { taskDefinition: { family: "web", revision: 2 } })],
    });
    const { plan, nextEvaluationAt } = evaluate(input);
    assert.equal(plan.create.length, 2);
    for (const planned of plan.create) {
      assert.equal(planned.service, "web");
      assert.deepEqual(planned.taskDefinition, { family: "web", revision: 2 });
      assert.match(planned.id, /^new-/);
    }
    assert.deepEqual(createdPerNode(plan), { n2: 1, n3: 1 });
    assert.equal(plan.stop.length, 0);
    assert.equal(nextEvaluationAt, null);
  });

  it("returns an empty plan when every service has its replicas", () => {
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web", { replicas: 1 })],
      taskDefinitions: [definition("web")],
      tasks: [task("t1", "web", "n1")],
    });
    assert.deepEqual(evaluate(input), {
      plan: emptyPlan(),
      nextEvaluationAt: null,
    });
  });

  it("does not count terminal or stopping tasks as replicas", () => {
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web", { replicas: 2 })],
      taskDefinitions: [definition("web")],
      tasks: [
        task("t1", "web", "n1"),
        task("t2", "web", "n1", { state: "failed" }),
        task("t3", "web", "n1", { desired: "stopped" }),
      ],
    });
    assert.equal(evaluate(input).plan.create.length, 1);
  });

  it("spreads a service's tasks over nodes, then by tasks overall", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2"), node("n3")],
      services: [service("web", { replicas: 6 })],
      taskDefinitions: [definition("web"), definition("other")],
      // n1 already runs other work: with equal web counts, it comes last.
      tasks: [task("d1", "other", "n1"), task("d2", "other", "n1")],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdPerNode(plan), { n1: 2, n2: 2, n3: 2 });
    // The first placements avoid the busy node.
    assert.notEqual(plan.create[0]?.node, "n1");
    assert.notEqual(plan.create[1]?.node, "n1");
  });

  it("places one-off pending tasks on the least loaded node", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      taskDefinitions: [definition("oneoff"), definition("web")],
      services: [service("web", { replicas: 1 })],
      tasks: [task("w1", "web", "n1"), task("job", null, null)],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(plan.assign, [{ taskId: "job", node: "n2" }]);
    assert.deepEqual(plan.reads.tasks, { job: 1 });
  });

  it("scales down pending tasks first, then from the most loaded node, newest first", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      services: [service("web", { replicas: 2, version: 7 })],
      taskDefinitions: [definition("web")],
      tasks: [
        task("a", "web", "n1", { createdAt: 1 }),
        task("b", "web", "n1", { createdAt: 2 }),
        task("c", "web", "n1", { createdAt: 3 }),
        task("d", "web", "n2", { createdAt: 4 }),
        task("p", "web", null, { createdAt: 0 }),
      ],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(plan.stop, [
      { taskId: "p", reason: scaledDownReason },
      { taskId: "c", reason: scaledDownReason },
      { taskId: "b", reason: scaledDownReason },
    ]);
    assert.equal(plan.create.length, 0);
    // A pending task being stopped is not also assigned.
    assert.equal(plan.assign.length, 0);
    assert.deepEqual(plan.reads.services, { web: 7 });
    assert.deepEqual(plan.reads.tasks, { p: 1, c: 1, b: 1 });
  });

  it("scales to zero", () => {
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web", { replicas: 0 })],
      taskDefinitions: [definition("web")],
      tasks: [task("a", "web", "n1"), task("b", "web", "n1")],
    });
    assert.deepEqual(
      evaluate(input).plan.stop.map((stop) => stop.taskId),
      ["b", "a"],
    );
  });

  it("breaks scale-down ties between equally loaded nodes by overall load", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      services: [service("web", { replicas: 1 })],
      taskDefinitions: [definition("web"), definition("other")],
      tasks: [
        task("a", "web", "n1", { createdAt: 5 }),
        task("b", "web", "n2", { createdAt: 1 }),
        task("o", "other", "n2"),
      ],
    });
    assert.deepEqual(
      evaluate(input).plan.stop.map((stop) => stop.taskId),
      ["b"],
    );
  });
});

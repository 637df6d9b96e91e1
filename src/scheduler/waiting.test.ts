// Reports of tasks that fit nowhere: one summary event per service and evaluation, naming one
// waiting task so that the state machine marks the wait as reported, and never repeated.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { demandOf, describeDemand } from "./demand.ts";
import { evaluate } from "./evaluate.ts";
import { applyPlan, definition, node, schedulerInput, service, task } from "./test-harness.ts";

function hostPorts(...hosts: number[]) {
  return hosts.map((host) => ({ container: host, host, protocol: "tcp" as const }));
}

const webDefinition = definition("web", [{ cpu: 2, memoryMb: 64, ports: hostPorts(8080, 8081) }]);

describe("scheduler: waiting reports", () => {
  it("reports the tasks of a service that fit nowhere in one summary event", () => {
    const input = schedulerInput({
      nodes: [node("n1", { cpus: 2 })],
      services: [service("web", { replicas: 13 })],
      taskDefinitions: [webDefinition],
    });
    const { plan } = evaluate(input);
    assert.equal(plan.create.length, 13);
    assert.deepEqual(plan.events, [
      {
        type: "E_NO_CAPACITY",
        message:
          "12 task(s) of web wait: needs 2 cpu, 64 MB, ports 8080/tcp,8081/tcp; 1 node(s) ready",
        service: "web",
        task: "new-2",
      },
    ]);
  });

  it("reports a wait once, and again only when the plan adds waiting tasks", () => {
    const base = schedulerInput({
      nodes: [node("n1", { cpus: 2 })],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [webDefinition],
    });
    const second = applyPlan(base, evaluate(base).plan);
    assert.match(second.tasks.find((each) => each.id === "new-2")?.reason ?? "", /^E_NO_CAPACITY/);
    assert.deepEqual(evaluate(second).plan, evaluate(second).plan);
    assert.deepEqual(evaluate(second).plan.events, []);

    const grown = { ...second, services: [service("web", { replicas: 5 })] };
    const { plan } = evaluate(grown);
    assert.equal(plan.create.length, 2);
    assert.equal(plan.events.length, 1);
    assert.match(plan.events[0]?.message ?? "", /^4 task\(s\) of web wait/);
    const named = grown.tasks.find((each) => each.id === plan.events[0]?.task);
    assert.equal(named?.reason ?? "", "", "the event names a task not yet marked");
    assert.deepEqual(evaluate(applyPlan(grown, plan)).plan.events, []);
  });

  it("reports again when the marked task is placed and others still wait", () => {
    const reason = "E_NO_CAPACITY: 2 task(s) of web wait";
    const input = schedulerInput({
      nodes: [node("n1", { cpus: 2 }), node("n2", { cpus: 2 })],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [webDefinition],
      tasks: [
        task("a", "web", "n1"),
        task("p1", "web", null, { reason, createdAt: 1 }),
        task("p2", "web", null, { createdAt: 2 }),
      ],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(plan.assign, [{ taskId: "p1", node: "n2" }]);
    assert.deepEqual(
      plan.events.map((event) => [event.task, event.message]),
      [
        [
          "p2",
          "1 task(s) of web wait: needs 2 cpu, 64 MB, ports 8080/tcp,8081/tcp; 2 node(s) ready",
        ],
      ],
    );
  });

  it("reports each one-off task on its own", () => {
    const input = schedulerInput({
      nodes: [node("n1", { memoryMb: 10 })],
      taskDefinitions: [definition("oneoff", [{ memoryMb: 100 }])],
      tasks: [task("j1", null, null), task("j2", null, null, { reason: "E_NO_CAPACITY: x" })],
    });
    assert.deepEqual(evaluate(input).plan.events, [
      {
        type: "E_NO_CAPACITY",
        message: "one-off task j1 waits: needs 0 cpu, 100 MB; 1 node(s) ready",
        service: null,
        task: "j1",
      },
    ]);
  });

  it("lists at most five host ports", () => {
    const ports = hostPorts(1, 2, 3, 4, 5, 6, 7, 8);
    assert.equal(
      describeDemand(demandOf(definition("web", [{ cpu: 1, ports }]))),
      "1 cpu, 0 MB, ports 1/tcp,2/tcp,3/tcp,4/tcp,5/tcp +3 more",
    );
    assert.equal(
      describeDemand(demandOf(definition("web", [{ ports: hostPorts(80) }]))),
      "0 cpu, 0 MB, port 80/tcp",
    );
  });
});

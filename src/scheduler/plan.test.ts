// Properties of the plan as a whole: fencing reads, determinism under seeded randomness, and
// the per-plan placement and byte bounds.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import type { Plan } from "../core/types.ts";
import { seededRandom, sequentialIds } from "../testing/prng.ts";
import { evaluate } from "./evaluate.ts";
import {
  applyPlan,
  createdPerNode,
  definition,
  node,
  schedulerInput,
  service,
  task,
} from "./test-harness.ts";
import type { Evaluation, SchedulerInput, SchedulerLimits } from "./types.ts";

function fleet(seed: number): SchedulerInput {
  return schedulerInput({
    nodes: Array.from({ length: 8 }, (_, index) => node(`n${index}`, { cpus: 2 })),
    services: [service("web", { replicas: 12 }), service("api", { replicas: 5 })],
    taskDefinitions: [
      definition("web", [{ cpu: 0.5 }]),
      definition("api", [{ cpu: 0.25 }]),
      definition("oneoff"),
    ],
    tasks: [task("j1", null, null), task("j2", null, null)],
    newId: sequentialIds("t"),
    random: seededRandom(seed),
  });
}

describe("scheduler: plans", () => {
  it("is deterministic: the same input and seed give the same plan", () => {
    const first = evaluate(fleet(42));
    const second = evaluate(fleet(42));
    assert.deepEqual(first, second);
    assert.equal(first.plan.create.length, 17);
    assert.equal(first.plan.assign.length, 2);
  });

  it("uses the seeded randomness for tie-breaks", () => {
    const placements = new Set<string>();
    for (let seed = 1; seed <= 10; seed += 1) {
      placements.add(
        JSON.stringify(evaluate(fleet(seed)).plan.create.map((planned) => planned.node)),
      );
    }
    assert.ok(placements.size > 1, "different seeds should break ties differently");
  });

  it("keeps spreading whatever the seed", () => {
    for (let seed = 1; seed <= 20; seed += 1) {
      const input = schedulerInput({
        nodes: [node("a"), node("b"), node("c")],
        services: [service("web", { replicas: 9 })],
        taskDefinitions: [definition("web")],
        random: seededRandom(seed),
      });
      assert.deepEqual(createdPerNode(evaluate(input).plan), { a: 3, b: 3, c: 3 });
    }
  });

  it("carries the versions of the services, tasks and nodes it read", () => {
    const input = schedulerInput({
      nodes: [node("n1"), node("n2")],
      services: [
        service("grow", { replicas: 2, version: 3 }),
        service("shrink", { replicas: 0, version: 9 }),
        service("steady", { replicas: 1, version: 5 }),
      ],
      taskDefinitions: [
        definition("grow"),
        definition("shrink"),
        definition("steady"),
        definition("oneoff"),
      ],
      tasks: [
        task("s1", "shrink", "n1", { version: 11 }),
        task("st", "steady", "n1", { version: 2 }),
        task("job", null, null, { version: 6 }),
      ],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(plan.reads, {
      services: { grow: 3, shrink: 9 },
      tasks: { s1: 11, job: 6 },
      nodes: { n1: 1, n2: 1 },
    });
  });

  it("bounds creations and assignments per plan and asks to run again at once", () => {
    const bounds = {
      restartBackoffMsMin: 1000,
      restartBackoffMsMax: 60_000,
      placementsPerPlanMax: 3,
      commandBytesMax: 512 * 1024,
    };
    const input = schedulerInput({
      now: 5000,
      nodes: [node("n1")],
      services: [service("web", { replicas: 4 })],
      taskDefinitions: [definition("web"), definition("oneoff")],
      tasks: [task("job", null, null)],
    });
    const { plan, nextEvaluationAt } = evaluate(input, bounds);
    assert.equal(plan.assign.length + plan.create.length, 3);
    assert.deepEqual(plan.assign, [{ taskId: "job", node: "n1" }]);
    assert.equal(nextEvaluationAt, 5000);
  });

  it("does not spend the bound on pending tasks that still fit nowhere", () => {
    const bounds = {
      restartBackoffMsMin: 1000,
      restartBackoffMsMax: 60_000,
      placementsPerPlanMax: 2,
      commandBytesMax: 512 * 1024,
    };
    const input = schedulerInput({
      now: 5000,
      nodes: [node("n1", { memoryMb: 10 })],
      services: [service("web", { replicas: 2 })],
      taskDefinitions: [
        definition("web", [{ memoryMb: 5 }]),
        definition("oneoff", [{ memoryMb: 100 }]),
      ],
      tasks: [task("big1", null, null), task("big2", null, null)],
    });
    const { plan, nextEvaluationAt } = evaluate(input, bounds);
    assert.equal(plan.create.length, 2);
    assert.equal(plan.events.length, 2);
    assert.equal(nextEvaluationAt, null);
  });

  it("stops any number of tasks regardless of the placement bound", () => {
    const bounds = {
      restartBackoffMsMin: 1000,
      restartBackoffMsMax: 60_000,
      placementsPerPlanMax: 1,
      commandBytesMax: 512 * 1024,
    };
    const input = schedulerInput({
      nodes: [node("n1")],
      services: [service("web", { replicas: 0 })],
      taskDefinitions: [definition("web")],
      tasks: [task("a", "web", "n1"), task("b", "web", "n1"), task("c", "web", "n1")],
    });
    assert.equal(evaluate(input, bounds).plan.stop.length, 3);
  });
});

/** Bytes of the `plan.apply` command that would carry the plan, as encodeCommand counts them. */
function commandBytes(plan: Plan, at: number): number {
  return new TextEncoder().encode(JSON.stringify({ type: "plan.apply", at, plan })).byteLength;
}

/** Evaluates and applies until the plan is empty; returns every evaluation and the last input. */
function settle(
  input: SchedulerInput,
  bounds: SchedulerLimits,
  rounds: number,
): { evaluations: Evaluation[]; last: SchedulerInput } {
  const evaluations: Evaluation[] = [];
  let current = input;
  for (let round = 0; round < rounds; round += 1) {
    const evaluation = evaluate(current, bounds);
    evaluations.push(evaluation);
    const { create, assign, stop, events } = evaluation.plan;
    if (create.length + assign.length + stop.length + events.length === 0) break;
    current = applyPlan(current, evaluation.plan);
  }
  return { evaluations, last: current };
}

describe("scheduler: plan bytes", () => {
  it("keeps a 1000-replica service that fits once within one command, and places it", () => {
    const name = "s".repeat(limits.serviceNameLengthMax);
    const ports = [8080, 8081, 8082].map((host) => ({
      container: host,
      host,
      protocol: "tcp" as const,
    }));
    const input = schedulerInput({
      now: 1_700_000_000_000,
      nodes: [node("n1")],
      services: [service(name, { replicas: limits.replicasMax })],
      taskDefinitions: [definition(name, [{ ports }])],
      newId: sequentialIds("t".repeat(24)),
    });
    const first = evaluate(input);
    assert.ok(JSON.stringify(first.plan).length < limits.commandBytesMax);
    assert.equal(first.plan.events.length, 1);

    // A smaller bound splits the same work over many plans, each with its own summary event.
    for (const bounds of [limits, { ...limits, commandBytesMax: 64 * 1024 }]) {
      const { evaluations, last } = settle(input, bounds, 50);
      for (const { plan } of evaluations) {
        assert.ok(commandBytes(plan, input.now) <= bounds.commandBytesMax / 2);
        assert.ok(plan.events.length <= 1);
      }
      assert.deepEqual(evaluations.at(-1)?.plan.create, [], "the plans settle");
      assert.equal(evaluations.at(-1)?.nextEvaluationAt, null);
      assert.equal(last.tasks.length, limits.replicasMax);
      assert.deepEqual(
        last.tasks.filter((each) => each.node !== null).map((each) => each.node),
        ["n1"],
      );
    }
  });

  it("stops growing a plan at half the command bound and asks to run again at once", () => {
    const bounds = { ...limits, commandBytesMax: 8 * 1024 };
    const input = schedulerInput({
      now: 5000,
      nodes: [node("n1", { cpus: 64 }), node("n2", { cpus: 64 })],
      services: [service("web", { replicas: 300 })],
      taskDefinitions: [definition("web", [{ cpu: 0.1 }]), definition("oneoff")],
      tasks: [task("job", null, null)],
    });
    const first = evaluate(input, bounds);
    assert.ok(first.plan.create.length > 0 && first.plan.create.length < 300);
    assert.deepEqual(first.plan.assign, [{ taskId: "job", node: "n1" }]);
    assert.equal(first.nextEvaluationAt, 5000);

    const { evaluations, last } = settle(input, bounds, 100);
    for (const { plan } of evaluations) assert.ok(commandBytes(plan, 5000) <= 4 * 1024);
    assert.equal(evaluations.at(-1)?.nextEvaluationAt, null);
    assert.equal(last.tasks.filter((each) => each.node !== null).length, 301);
  });

  it("bounds stops by bytes too", () => {
    const bounds = { ...limits, commandBytesMax: 8 * 1024 };
    const tasks = Array.from({ length: 200 }, (_, index) => task(`t${index}`, "web", "n1"));
    const input = schedulerInput({
      now: 5000,
      nodes: [node("n1")],
      services: [service("web", { replicas: 0 })],
      taskDefinitions: [definition("web")],
      tasks,
    });
    const first = evaluate(input, bounds);
    assert.ok(first.plan.stop.length > 0 && first.plan.stop.length < 200);
    assert.equal(first.nextEvaluationAt, 5000);
    const { evaluations, last } = settle(input, bounds, 100);
    for (const { plan } of evaluations) assert.ok(commandBytes(plan, 5000) <= 4 * 1024);
    assert.deepEqual(
      last.tasks.filter((each) => each.desired === "running"),
      [],
    );
  });
});

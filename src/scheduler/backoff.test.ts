// Restart backoff: the first replacement is immediate, later ones wait a doubling delay up to
// a ceiling, and the evaluation says when to run again.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { restartDelayMs } from "./backoff.ts";
import { evaluate } from "./evaluate.ts";
import { definition, node, schedulerInput, service, task } from "./test-harness.ts";
import type { SchedulerLimits } from "./types.ts";

const bounds: SchedulerLimits = {
  restartBackoffMsMin: 1000,
  restartBackoffMsMax: 60_000,
  placementsPerPlanMax: 1000,
  commandBytesMax: 512 * 1024,
};
const now = 1_000_000;

function failedService(name: string, failureStreak: number, lastFailureAt: number) {
  return service(name, { failureStreak, lastFailureAt });
}

function inputFor(services: ReturnType<typeof service>[]) {
  return schedulerInput({
    now,
    nodes: [node("n1")],
    services,
    taskDefinitions: services.map((each) => definition(each.name)),
    tasks: services.map((each) => task(`dead-${each.name}`, each.name, "n1", { state: "failed" })),
  });
}

describe("scheduler: restart backoff", () => {
  it("doubles the delay per failure from the second on, clamped to the maximum", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 7, 8, 100, 5000].map((streak) => restartDelayMs(streak, bounds)),
      [0, 0, 1000, 2000, 4000, 8000, 32_000, 60_000, 60_000, 60_000],
    );
  });

  it("uses the limits from core by default", () => {
    const input = inputFor([failedService("web", 2, now - 10)]);
    assert.equal(evaluate(input).nextEvaluationAt, now - 10 + limits.restartBackoffMsMin);
  });

  it("replaces the first failure at once", () => {
    const { plan, nextEvaluationAt } = evaluate(inputFor([failedService("web", 1, now)]), bounds);
    assert.equal(plan.create.length, 1);
    assert.equal(plan.create[0]?.node, "n1");
    assert.equal(nextEvaluationAt, null);
  });

  it("delays the second replacement and says when to come back", () => {
    const { plan, nextEvaluationAt } = evaluate(
      inputFor([failedService("web", 2, now - 400)]),
      bounds,
    );
    assert.deepEqual(plan.create, []);
    assert.deepEqual(plan.reads.services, {});
    assert.equal(nextEvaluationAt, now + 600);
  });

  it("replaces once the delay has passed", () => {
    const atExpiry = evaluate(inputFor([failedService("web", 2, now - 1000)]), bounds);
    assert.equal(atExpiry.plan.create.length, 1);
    assert.equal(atExpiry.nextEvaluationAt, null);
  });

  it("wakes at the earliest expiry over all services and places the others", () => {
    const input = inputFor([
      failedService("a", 4, now - 1000), // 4 s delay: 3 s left
      failedService("b", 3, now - 500), // 2 s delay: 1.5 s left
      failedService("c", 1, now), // first failure: now
      failedService("d", 50, now - 10), // clamped to the maximum
    ]);
    const { plan, nextEvaluationAt } = evaluate(input, bounds);
    assert.deepEqual(
      plan.create.map((planned) => planned.service),
      ["c"],
    );
    assert.equal(nextEvaluationAt, now + 1500);
  });

  it("clamps the delay to restartBackoffMsMax", () => {
    const input = inputFor([failedService("web", 30, now - 59_000)]);
    assert.equal(evaluate(input, bounds).nextEvaluationAt, now + 1000);
  });

  it("counts a backoff as expired when the clock stepped back past its ceiling", () => {
    const steppedBack = inputFor([failedService("web", 9, now + 3_600_000)]);
    const { plan, nextEvaluationAt } = evaluate(steppedBack, bounds);
    assert.equal(plan.create.length, 1);
    assert.equal(nextEvaluationAt, null);
  });

  it("still waits out a failure stamped slightly ahead of now, within the ceiling", () => {
    const skewed = inputFor([failedService("web", 2, now + 5000)]);
    const { plan, nextEvaluationAt } = evaluate(skewed, bounds);
    assert.deepEqual(plan.create, []);
    assert.equal(nextEvaluationAt, now + 6000);
  });

  it("never delays scaling down", () => {
    const input = schedulerInput({
      now,
      nodes: [node("n1")],
      services: [service("web", { replicas: 1, failureStreak: 9, lastFailureAt: now })],
      taskDefinitions: [definition("web")],
      tasks: [task("a", "web", "n1"), task("b", "web", "n1", { createdAt: 1 })],
    });
    const { plan, nextEvaluationAt } = evaluate(input, bounds);
    assert.deepEqual(
      plan.stop.map((stop) => stop.taskId),
      ["b"],
    );
    assert.equal(nextEvaluationAt, null);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fail, ok } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { emptyPlan } from "../scheduler/plan-builder.ts";
import type { Command } from "../state/commands.ts";
import type { ApplyResult } from "../state/machine.ts";
import { coalesceDelayMs, isEmptyPlan, needsEvaluation } from "./scheduler-loop.ts";

const entry = (command: Command, result: ApplyResult) => ({ index: 7, command, result });
const scale = { type: "service.update" as const, at: 1, name: "web", replicas: 2 };
const plan = { type: "plan.apply" as const, at: 1, plan: emptyPlan() };

describe("when the leader evaluates again", () => {
  it("after an update that changed a service's count or revision, not after one that did not", () => {
    const value = { name: "web", revision: 1, replicas: 2 };
    assert.equal(needsEvaluation(entry(scale, ok({ ...value, rescheduled: true }))), true);
    assert.equal(needsEvaluation(entry(scale, ok({ ...value, rescheduled: false }))), false);
    // A result remembered from before the flag existed still triggers an evaluation.
    assert.equal(needsEvaluation(entry(scale, ok(value))), true);
  });

  it("after a refused plan (it was stale), never after its own applied plan or a refused command", () => {
    assert.equal(needsEvaluation(entry(plan, fail("E_CONFLICT", "stale"))), true);
    assert.equal(needsEvaluation(entry(plan, ok(null))), false);
    assert.equal(needsEvaluation(entry(scale, fail("E_NOT_FOUND", "no service"))), false);
  });

  it("after any other applied change", () => {
    const create = {
      type: "service.create" as const,
      at: 1,
      name: "w",
      replicas: 1,
      containers: [],
    };
    assert.equal(needsEvaluation(entry(create, ok({ name: "w", revision: 1 }))), true);
  });
});

describe("which plans the leader proposes", () => {
  it("proposes a plan that only completes a deployment or a rebalance", () => {
    assert.equal(isEmptyPlan(emptyPlan()), true);
    assert.equal(isEmptyPlan({ ...emptyPlan(), completeDeployments: ["web"] }), false);
    assert.equal(isEmptyPlan({ ...emptyPlan(), rebalanced: ["web"] }), false);
  });
});

describe("how long writes wait to share an evaluation", () => {
  it("a few milliseconds while evaluations are quick, longer as they grow, never past the cap", () => {
    assert.equal(coalesceDelayMs(0), limits.schedulerCoalesceMs);
    assert.equal(coalesceDelayMs(0.5), limits.schedulerCoalesceMs);
    assert.equal(coalesceDelayMs(10), 10 * limits.schedulerBusyFactor);
    assert.equal(coalesceDelayMs(10_000), limits.schedulerCoalesceMaxMs);
  });
});

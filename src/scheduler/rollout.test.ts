import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Deployment,
  deploymentDefaults,
  placementDefaults,
  type Service,
} from "../core/types.ts";
import { evaluate } from "./evaluate.ts";
import { isHealthy } from "./rollout.ts";
import { applyPlan, definition, node, schedulerInput, service, task } from "./test-harness.ts";
import type { SchedulerInput } from "./types.ts";

const nodes = [node("a"), node("b"), node("c")];

function deploying(name: string, toRevision: number): Deployment {
  return {
    id: 1,
    service: name,
    fromRevision: toRevision - 1,
    toRevision,
    status: "in_progress",
    failedTasks: 0,
    failureThreshold: 3,
    isRollback: false,
    reason: "",
    createdAt: 0,
    updatedAt: 0,
  };
}

interface Trace {
  input: SchedulerInput;
  /** Healthy tasks desired running right after each plan, before any agent acts. */
  healthyAfterPlan: number[];
  activeAfterPlan: number[];
  completed: boolean;
  rebalanced: boolean;
}

/** Evaluates and applies plans; between them agents start what was placed and stop what stops. */
function run(input: SchedulerInput, steps = 30): Trace {
  const trace: Trace = {
    input,
    healthyAfterPlan: [],
    activeAfterPlan: [],
    completed: false,
    rebalanced: false,
  };
  for (let step = 0; step < steps; step += 1) {
    const { plan } = evaluate(trace.input);
    let next = applyPlan(trace.input, plan);
    const active = next.tasks.filter((t) => t.desired === "running");
    trace.healthyAfterPlan.push(active.filter(isHealthy).length);
    trace.activeAfterPlan.push(active.length);
    if (plan.completeDeployments.length > 0) {
      trace.completed = true;
      next = { ...next, deployments: [] };
    }
    if (plan.rebalanced.length > 0) {
      trace.rebalanced = true;
      next = { ...next, services: next.services.map((s) => ({ ...s, rebalanceRequested: false })) };
    }
    const settled = next.tasks
      .filter((t) => t.desired === "running" || t.node === null)
      .map((t) =>
        t.node !== null && t.state === "pending" ? { ...t, state: "running" as const } : t,
      );
    trace.input = { ...next, tasks: settled };
    if (plan.create.length + plan.stop.length + plan.assign.length === 0 && step > 0) break;
  }
  return trace;
}

function rolling(web: Partial<Service>, count: number, extra: Partial<SchedulerInput> = {}) {
  const svc = service("web", {
    replicas: count,
    taskDefinition: { family: "web", revision: 2 },
    ...web,
  });
  return schedulerInput({
    nodes,
    services: [svc],
    taskDefinitions: [definition("web"), definition("web", [{}], 2)],
    tasks: Array.from({ length: count }, (_, i) => task(`old-${i}`, "web", nodes[i % 3]!.id)),
    deployments: [deploying("web", 2)],
    ...extra,
  });
}

const revisions = (input: SchedulerInput) =>
  input.tasks.filter((t) => t.desired === "running").map((t) => t.taskDefinition.revision);

describe("scheduler: rolling deployments", () => {
  it("starts new tasks first and never drops below the desired count (defaults 200/100)", () => {
    const trace = run(rolling({}, 4));
    assert.deepEqual(revisions(trace.input), [2, 2, 2, 2]);
    assert.ok(Math.min(...trace.healthyAfterPlan) >= 4, `healthy: ${trace.healthyAfterPlan}`);
    assert.ok(Math.max(...trace.activeAfterPlan) <= 8, `active: ${trace.activeAfterPlan}`);
    assert.ok(trace.completed, "the deployment is marked complete");
  });

  it("with minHealthyPercent 50 and maxPercent 100, stops first and stays within both", () => {
    const settings = { ...deploymentDefaults, minHealthyPercent: 50, maxPercent: 100 };
    const trace = run(rolling({ deployment: settings }, 4));
    assert.deepEqual(revisions(trace.input), [2, 2, 2, 2]);
    assert.ok(Math.min(...trace.healthyAfterPlan) >= 2, `healthy: ${trace.healthyAfterPlan}`);
    assert.ok(Math.max(...trace.activeAfterPlan) <= 4, `active: ${trace.activeAfterPlan}`);
  });

  it("keeps old tasks while new ones are not healthy", () => {
    const input = rolling({}, 2);
    const first = applyPlan(input, evaluate(input).plan);
    // The new tasks start but never pass their healthcheck.
    const unhealthy = first.tasks.map((t) =>
      t.taskDefinition.revision === 2
        ? {
            ...t,
            state: "running" as const,
            containers: [
              {
                name: "main",
                containerId: "x",
                state: "running" as const,
                exitCode: null,
                health: "unhealthy" as const,
                ports: [],
              },
            ],
          }
        : t,
    );
    const { plan } = evaluate({ ...first, tasks: unhealthy });
    assert.deepEqual(plan.stop, [], "no old task stops for an unhealthy new one");
    assert.deepEqual(plan.completeDeployments, []);
  });

  it("lets one old task stop first when its replacement fits nowhere (a fixed host port)", () => {
    const port = [{ ports: [{ container: 80, host: 8080, protocol: "tcp" as const }] }];
    const input = schedulerInput({
      nodes: [node("a")],
      services: [service("web", { replicas: 1, taskDefinition: { family: "web", revision: 2 } })],
      taskDefinitions: [definition("web", port), definition("web", port, 2)],
      tasks: [task("old", "web", "a")],
      deployments: [deploying("web", 2)],
    });
    const trace = run(input);
    assert.deepEqual(revisions(trace.input), [2]);
    assert.ok(trace.completed);
  });
});

describe("scheduler: drain and rebalance", () => {
  it("moves every task off a draining node, never below the desired count", () => {
    const input = schedulerInput({
      nodes: [node("a"), node("b", { status: "draining" }), node("c")],
      services: [service("web", { replicas: 3 })],
      taskDefinitions: [definition("web")],
      tasks: [task("t1", "web", "a"), task("t2", "web", "b"), task("t3", "web", "b")],
    });
    const trace = run(input);
    const onB = trace.input.tasks.filter((t) => t.node === "b" && t.desired === "running");
    assert.deepEqual(onB, []);
    assert.equal(revisions(trace.input).length, 3);
    assert.ok(Math.min(...trace.healthyAfterPlan) >= 3, `healthy: ${trace.healthyAfterPlan}`);
  });

  it("spreads a service again when asked, then clears the request", () => {
    const input = schedulerInput({
      nodes,
      services: [service("web", { replicas: 3, rebalanceRequested: true })],
      taskDefinitions: [definition("web")],
      tasks: [task("t1", "web", "a"), task("t2", "web", "a"), task("t3", "web", "a")],
    });
    const trace = run(input);
    const perNode = trace.input.tasks
      .filter((t) => t.desired === "running")
      .map((t) => t.node)
      .sort();
    assert.deepEqual(perNode, ["a", "b", "c"]);
    assert.ok(trace.rebalanced);
    assert.ok(Math.min(...trace.healthyAfterPlan) >= 3);
  });

  it("rebalances without dropping below the desired count while a move's task starts", () => {
    const input = schedulerInput({
      nodes,
      services: [service("web", { replicas: 4, rebalanceRequested: true })],
      taskDefinitions: [definition("web")],
      tasks: ["t1", "t2"]
        .map((id) => task(id, "web", "a"))
        .concat(["t3", "t4"].map((id) => task(id, "web", "b"))),
    });
    // Between plans the new task is placed but not yet running (unhealthy) for one round.
    const first = applyPlan(input, evaluate(input).plan);
    assert.equal(first.tasks.filter((t) => t.node === "c").length, 1);
    const second = evaluate(first).plan;
    assert.deepEqual(second.stop, [], "no healthy task stops before its replacement runs");
    const trace = run(input);
    assert.ok(Math.min(...trace.healthyAfterPlan) >= 4, `healthy: ${trace.healthyAfterPlan}`);
    const perNode = trace.input.tasks.filter((t) => t.desired === "running").map((t) => t.node);
    assert.equal(perNode.length, 4);
    assert.equal(new Set(perNode).size, 3);
  });

  it("keeps every old task when the new revision fits on no node at all", () => {
    const nowhere = { ...placementDefaults, constraints: ["zone == nowhere"] };
    const moved = run(
      rolling({ placement: nowhere, taskDefinition: { family: "web", revision: 1 } }, 3, {
        deployments: [],
      }),
      10,
    );
    const kept = moved.input.tasks.filter(
      (t) => t.id.startsWith("old-") && t.desired === "running",
    );
    assert.equal(kept.length, 3, "the old tasks stay while their replacements wait");
    assert.ok(Math.min(...moved.healthyAfterPlan) >= 3, `healthy: ${moved.healthyAfterPlan}`);
    const huge = schedulerInput({
      nodes: [node("a", { memoryMb: 512 })],
      services: [service("web", { replicas: 1, taskDefinition: { family: "web", revision: 2 } })],
      taskDefinitions: [definition("web"), definition("web", [{ memoryMb: 4096 }], 2)],
      tasks: [task("old", "web", "a")],
      deployments: [deploying("web", 2)],
    });
    const trace = run(huge, 10);
    assert.ok(trace.input.tasks.some((t) => t.id === "old" && t.desired === "running"));
  });

  it("leaves an uneven spread alone unless asked or opted in", () => {
    const tasks = [task("t1", "web", "a"), task("t2", "web", "a")];
    const base = { nodes, taskDefinitions: [definition("web")], tasks };
    const plain = evaluate(
      schedulerInput({ ...base, services: [service("web", { replicas: 2 })] }),
    );
    assert.equal(plain.plan.create.length + plain.plan.stop.length, 0);
    const optedIn = service("web", {
      replicas: 2,
      placement: { ...placementDefaults, rebalance: true },
    });
    const moved = evaluate(schedulerInput({ ...base, services: [optedIn] }));
    assert.equal(moved.plan.create.length, 1);
  });
});

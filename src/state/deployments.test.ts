import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openDatabase } from "../adapters/libsql.ts";
import { emptyPlan } from "../scheduler/plan-builder.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import type { Command, CommandOf } from "./commands.ts";
import { StateMachine } from "./machine.ts";
import { container, register } from "./test-harness.ts";

/** The Pi these tests place on: larger than the harness's default node. */
const pi = { arch: "arm64", cpus: 4, memoryMb: 4096 };

function machine() {
  const sm = new StateMachine(openDatabase(":memory:", "NORMAL"));
  const apply = (command: Command) => sm.apply(command, sm.appliedIndex() + 1);
  apply({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") });
  apply(register(2, { ...pi, labels: { zone: "garage" } }));
  return { sm, apply };
}

type Apply = ReturnType<typeof machine>["apply"];

function plan(parts: Partial<CommandOf<"plan.apply">["plan"]>): CommandOf<"plan.apply">["plan"] {
  return { ...emptyPlan(), ...parts };
}

/** A new revision of web: its container with another image, as a user's update. */
function updateImage(apply: Apply, image: string, at: number): void {
  apply({ type: "service.update", at, name: "web", containers: [{ ...container, image }] });
}

/** Places a task of web's current revision on n1 and reports it `state`. */
function taskOf(sm: StateMachine, apply: Apply, id: string, state: "running" | "failed"): void {
  const web = sm.view.service("web");
  assert.ok(web);
  const placed = apply({
    type: "plan.apply",
    at: 10,
    plan: plan({
      create: [{ id, service: "web", taskDefinition: web.taskDefinition, node: "n1" }],
    }),
  });
  assert.ok(placed.ok);
  const report = { taskId: id, node: "n1", reason: "", containers: [] };
  apply({
    type: "task.report",
    at: 11,
    reports: [{ ...report, state, exitCode: state === "failed" ? 1 : null }],
  });
}

/** The scheduler's word that every task of the deployment in progress is healthy. */
function complete(sm: StateMachine, apply: Apply): void {
  const version = sm.view.service("web")?.version ?? 0;
  const reads = { services: { web: version }, tasks: {}, nodes: {} };
  assert.ok(
    apply({ type: "plan.apply", at: 5, plan: plan({ completeDeployments: ["web"], reads }) }).ok,
  );
}

function statuses(sm: StateMachine): [number | null, number, string][] {
  return sm.view.deployments("web").map((d) => [d.fromRevision, d.toRevision, d.status]);
}

describe("deployments", () => {
  it("rolls back to the previous revision when the circuit breaker trips", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 2, containers: [container] });
    taskOf(sm, apply, "good", "running");
    complete(sm, apply);
    updateImage(apply, "broken:1", 4);
    assert.equal(sm.view.deploymentInProgress("web")?.failureThreshold, 3, "clamped to 3");
    taskOf(sm, apply, "bad1", "failed");
    taskOf(sm, apply, "bad2", "failed");
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2, "two failures are not three");
    taskOf(sm, apply, "bad3", "failed");
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
    assert.deepEqual(statuses(sm), [
      [2, 1, "in_progress"],
      [1, 2, "rolled_back"],
      [null, 1, "completed"],
    ]);
    assert.equal(sm.view.service("web")?.failureStreak, 0, "the old revision starts afresh");
    assert.ok(sm.view.events().some((e) => e.type === "deployment.rollback"));
  });

  it("marks a deployment failed, and stays on its revision, when rollback is off", () => {
    const { sm, apply } = machine();
    const deployment = { maxPercent: 200, minHealthyPercent: 100, rollback: false };
    apply({
      type: "service.create",
      at: 3,
      name: "web",
      replicas: 1,
      containers: [container],
      deployment,
    });
    updateImage(apply, "broken:1", 4);
    for (const id of ["b1", "b2", "b3"]) taskOf(sm, apply, id, "failed");
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2);
    assert.equal(statuses(sm)[0]?.[2], "failed");
  });

  it("does not roll back a failed rollback again", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
    complete(sm, apply);
    updateImage(apply, "x:2", 4);
    for (const id of ["a1", "a2", "a3"]) taskOf(sm, apply, id, "failed");
    for (const id of ["b1", "b2", "b3"]) taskOf(sm, apply, id, "failed");
    assert.deepEqual(statuses(sm).slice(0, 2), [
      [2, 1, "failed"],
      [1, 2, "rolled_back"],
    ]);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
  });

  it("rolls back past a revision that never finished deploying, to the last completed one", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
    complete(sm, apply);
    updateImage(apply, "x:2", 4);
    updateImage(apply, "x:3", 5);
    for (const id of ["c1", "c2", "c3"]) taskOf(sm, apply, id, "failed");
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
  });

  it("refuses a rollback to a revision that never completed a deployment", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
    complete(sm, apply);
    updateImage(apply, "x:2", 4);
    for (const id of ["b1", "b2", "b3"]) taskOf(sm, apply, id, "failed");
    complete(sm, apply);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
    const again = apply({ type: "service.rollback", at: 9, name: "web" });
    assert.equal(again.ok, false, "revision 2 failed: a rollback does not go back to it");
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
  });

  it("completes a deployment only through a plan, and rolls back on request", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
    const version = sm.view.service("web")?.version ?? 0;
    apply({
      type: "plan.apply",
      at: 5,
      plan: plan({
        completeDeployments: ["web"],
        reads: { services: { web: version }, tasks: {}, nodes: {} },
      }),
    });
    assert.equal(statuses(sm)[0]?.[2], "completed");
    const refused = apply({ type: "service.rollback", at: 6, name: "web" });
    assert.equal(refused.ok, false);
    if (!refused.ok) assert.equal(refused.code, "E_CONFLICT");
    updateImage(apply, "x:2", 7);
    const back = apply({ type: "service.rollback", at: 8, name: "web" });
    assert.ok(back.ok);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
    assert.deepEqual(statuses(sm)[0], [2, 1, "in_progress"]);
    assert.equal(sm.view.deployments("web")[0]?.isRollback, true);
  });
});

describe("node lifecycle commands", () => {
  it("drains a node through an outage and a restart, until it is activated", () => {
    const { sm, apply } = machine();
    apply({ type: "node.drain", at: 3, nodeId: "n1" });
    assert.equal(sm.view.nodeById("n1")?.status, "draining");
    const row = sm.view.nodeById("n1")?.rowVersion ?? 0;
    apply({ type: "node.down", at: 4, nodeId: "n1", rowVersion: row, silentMs: 3000 });
    assert.equal(sm.view.nodeById("n1")?.status, "down");
    apply({ type: "node.up", at: 5, nodeId: "n1", rowVersion: row + 1 });
    assert.equal(sm.view.nodeById("n1")?.status, "draining", "a drained node comes back draining");
    apply({ type: "node.activate", at: 6, nodeId: "n1" });
    assert.equal(sm.view.nodeById("n1")?.status, "ready");
  });

  it("keeps labels people set over the agent's, through a registration", () => {
    const { sm, apply } = machine();
    apply({
      type: "node.label",
      at: 3,
      nodeId: "n1",
      set: { zone: "desk", rack: "2" },
      remove: [],
    });
    assert.deepEqual(sm.view.nodeById("n1")?.labels, { zone: "desk", rack: "2" });
    const again = sm.view.nodeById("n1");
    assert.ok(again);
    apply(register(4, { ...pi, labels: { zone: "garage", ssd: "yes" } }));
    assert.deepEqual(sm.view.nodeById("n1")?.labels, { zone: "desk", ssd: "yes", rack: "2" });
    apply({ type: "node.label", at: 5, nodeId: "n1", set: {}, remove: ["zone"] });
    assert.equal(sm.view.nodeById("n1")?.labels.zone, "garage", "the agent's label shows again");
    const refused = apply({ type: "node.label", at: 6, nodeId: "n1", set: {}, remove: ["ssd"] });
    assert.equal(refused.ok, false, "an agent's own label is changed where it is set");
  });

  it("refuses a plan that places on a node changed since it was read", () => {
    const { sm, apply } = machine();
    apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
    const web = sm.view.service("web");
    const node = sm.view.nodeById("n1");
    assert.ok(web && node);
    apply({ type: "node.drain", at: 4, nodeId: "n1" });
    const stale = apply({
      type: "plan.apply",
      at: 5,
      plan: plan({
        create: [{ id: "t1", service: "web", taskDefinition: web.taskDefinition, node: "n1" }],
        reads: { services: { web: web.version }, tasks: {}, nodes: { n1: node.rowVersion } },
      }),
    });
    assert.equal(stale.ok, false);
    assert.equal(sm.view.task("t1"), null);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { placementDefaults } from "../core/types.ts";
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

const placed = (constraints: string[], extra = {}) =>
  service("web", { replicas: 4, placement: { ...placementDefaults, constraints, ...extra } });

const fleet = [
  node("a", { arch: "arm64", labels: { zone: "garage" } }),
  node("b", { arch: "arm64", labels: { zone: "desk" } }),
  node("c", { arch: "amd64", labels: { zone: "desk" } }),
];

function placeWith(web: ReturnType<typeof service>, nodes = fleet) {
  const input = schedulerInput({ nodes, services: [web], taskDefinitions: [definition("web")] });
  return evaluate(input).plan;
}

describe("scheduler: constraints", () => {
  it("places only on nodes that meet every constraint", () => {
    assert.deepEqual(createdPerNode(placeWith(placed(["arch == arm64"]))), { a: 2, b: 2 });
    assert.deepEqual(createdPerNode(placeWith(placed(["zone != garage"]))), { b: 2, c: 2 });
    assert.deepEqual(createdPerNode(placeWith(placed(["name in (a, c)"]))), { a: 2, c: 2 });
    assert.deepEqual(createdPerNode(placeWith(placed(["name =~ ^[bc]$", "arch != amd64"]))), {
      b: 4,
    });
  });

  it("leaves a task waiting with E_NO_CAPACITY when no node meets them", () => {
    const plan = placeWith(placed(["zone == attic"]));
    assert.deepEqual(createdPerNode(plan), { pending: 4 });
    assert.equal(plan.events[0]?.type, "E_NO_CAPACITY");
  });

  it("moves a task off a node that no longer meets them, starting the replacement first", () => {
    const web = placed(["zone == desk"], {});
    const input = schedulerInput({
      nodes: fleet,
      services: [service("web", { ...web, replicas: 1 })],
      taskDefinitions: [definition("web")],
      tasks: [task("t1", "web", "a")],
    });
    const first = evaluate(input).plan;
    assert.equal(first.stop.length, 0, "the only healthy task stays until its replacement runs");
    assert.equal(first.create.length, 1);
    assert.notEqual(first.create[0]?.node, "a");
  });
});

describe("scheduler: strategies", () => {
  it("spreads over an attribute's values before spreading over nodes", () => {
    const web = placed([], { spreadBy: "zone" });
    // Two zones: garage has one node, desk two. Spread by zone puts half in the garage.
    assert.deepEqual(createdPerNode(placeWith(web)), { a: 2, b: 1, c: 1 });
    // Spread by node (the default) gives each node its share instead.
    const byNode = createdPerNode(placeWith(service("web", { replicas: 3 })));
    assert.deepEqual(byNode, { a: 1, b: 1, c: 1 });
  });

  it("binpacks on memory: the fullest node that fits takes the task", () => {
    const nodes = [
      node("a", { memoryMb: 1024 }),
      node("b", { memoryMb: 512 }),
      node("c", { memoryMb: 2048 }),
    ];
    const web = service("web", {
      replicas: 3,
      placement: { ...placementDefaults, strategy: "binpack" },
    });
    const input = schedulerInput({
      nodes,
      services: [web],
      taskDefinitions: [definition("web", [{ memoryMb: 256 }])],
    });
    // b (512) takes two, then is full; a (1024) is the fullest left.
    assert.deepEqual(createdPerNode(evaluate(input).plan), { b: 2, a: 1 });
  });

  it("breaks ties with the seeded randomness, the same way for the same seed", () => {
    const web = service("web", { replicas: 1 });
    const draw = (random: number) =>
      evaluate(
        schedulerInput({
          nodes: fleet,
          services: [web],
          taskDefinitions: [definition("web")],
          random: () => random,
        }),
      ).plan.create[0]?.node;
    assert.equal(draw(0), "a");
    assert.equal(draw(0.5), "b");
    assert.equal(draw(0.99), "c");
  });
});

describe("scheduler: global services", () => {
  const global = (extra = {}) =>
    service("agent", {
      mode: "global",
      replicas: 0,
      taskDefinition: { family: "agent", revision: 1 },
      ...extra,
    });

  it("runs one task on every eligible node", () => {
    const input = schedulerInput({
      nodes: [...fleet, node("d", { status: "down" }), node("e", { engineReady: false })],
      services: [global()],
      taskDefinitions: [definition("agent")],
    });
    assert.deepEqual(createdPerNode(evaluate(input).plan), { a: 1, b: 1, c: 1 });
  });

  it("follows its constraints, and stops a task on a node that stops being eligible", () => {
    const input = schedulerInput({
      nodes: [fleet[0]!, fleet[1]!, node("c", { status: "draining" })],
      services: [global({ placement: { ...placementDefaults, constraints: ["zone == desk"] } })],
      taskDefinitions: [definition("agent")],
      tasks: [task("on-a", "agent", "a"), task("on-c", "agent", "c")],
    });
    const { plan } = evaluate(input);
    assert.deepEqual(createdPerNode(plan), { b: 1 });
    assert.deepEqual(plan.stop.map((s) => s.taskId).sort(), ["on-a", "on-c"]);
  });

  const unplaceable = [
    ["where the engine stopped answering for a moment", { engineReady: false }],
    ["on a node whose disk filled", { diskFull: true }],
  ] as const;
  for (const [where, state] of unplaceable) {
    it(`keeps a task ${where}, and starts none on such a node that has no task`, () => {
      const input = schedulerInput({
        nodes: [fleet[0]!, node("b", state), node("c", state)],
        services: [global()],
        taskDefinitions: [definition("agent")],
        tasks: [task("on-a", "agent", "a"), task("on-b", "agent", "b")],
      });
      const { plan } = evaluate(input);
      assert.deepEqual(plan.stop, []);
      assert.deepEqual(plan.create, []);
    });
  }

  it("grows onto a node that comes back and keeps one task per node", () => {
    let input = schedulerInput({
      nodes: [fleet[0]!, { ...fleet[1]!, status: "down" }],
      services: [global()],
      taskDefinitions: [definition("agent")],
      tasks: [task("on-a", "agent", "a"), task("dup", "agent", "a", { createdAt: 5 })],
    });
    const first = evaluate(input).plan;
    assert.deepEqual(
      first.stop.map((s) => s.taskId),
      ["dup"],
    );
    assert.deepEqual(first.create, []);
    input = applyPlan(input, first);
    input = { ...input, nodes: [fleet[0]!, fleet[1]!] };
    assert.deepEqual(createdPerNode(evaluate(input).plan), { b: 1 });
  });

  it("rolls a new revision node by node, stop first", () => {
    const agent = global({ taskDefinition: { family: "agent", revision: 2 } });
    const input = schedulerInput({
      nodes: fleet,
      services: [agent],
      taskDefinitions: [definition("agent"), definition("agent", [{}], 2)],
      tasks: ["a", "b", "c"].map((n) => task(`old-${n}`, "agent", n)),
    });
    const { plan } = evaluate(input);
    assert.equal(plan.stop.length, 1, "one node at a time while every task is needed");
    assert.equal(plan.create.length, 1, "its new task starts beside the stopping one");
    assert.equal(plan.create[0]?.node, plan.stop[0]?.taskId.slice(4));
  });
});

describe("scheduler: host paths are each node's choice", () => {
  const mounting = [{ mounts: [{ source: "/srv/media", target: "/media", readOnly: true }] }];
  const nodes = [
    node("a", { hostPaths: { allowed: ["/srv"], denied: ["/var/lib/shoal"] } }),
    node("b"),
    node("c", { hostPaths: { allowed: ["/home"], denied: [] } }),
  ];

  it("places a task that mounts a host path only on nodes that allow it", () => {
    const web = service("web", { replicas: 3 });
    const input = schedulerInput({
      nodes,
      services: [web],
      taskDefinitions: [definition("web", mounting)],
    });
    assert.deepEqual(createdPerNode(evaluate(input).plan), { a: 3 });
  });

  it("leaves it waiting, saying so, when no node allows it", () => {
    const web = service("web", { replicas: 1 });
    const input = schedulerInput({
      nodes: nodes.slice(1),
      services: [web],
      taskDefinitions: [definition("web", mounting)],
    });
    const plan = evaluate(input).plan;
    assert.deepEqual(createdPerNode(plan), { pending: 1 });
    assert.match(
      plan.events[0]?.message ?? "",
      /it mounts \/srv\/media, which 0 ready node\(s\) allow/,
    );
  });
});

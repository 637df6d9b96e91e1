// Property tests over random fleets and services: whatever the scheduler plans, no node holds
// more memory or cpu than it has, and no host port is taken twice on one node. Tasks that are
// stopping still hold what they reserved until their agent reports them gone.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  deploymentDefaults,
  type NodeStatus,
  placementDefaults,
  type Service,
  type Task,
  type TaskDefinition,
} from "../core/types.ts";
import { cpuToMilli, demandOf } from "./demand.ts";
import { evaluate } from "./evaluate.ts";
import { applyPlan, definition, node, schedulerInput, service, task } from "./test-harness.ts";
import type { SchedulerInput } from "./types.ts";

const nodeArb = fc.record({
  memoryMb: fc.integer({ min: 64, max: 2048 }),
  cpus: fc.integer({ min: 1, max: 4 }),
  zone: fc.constantFrom("garage", "desk", "attic"),
});

const serviceArb = fc.record({
  replicas: fc.integer({ min: 0, max: 12 }),
  global: fc.boolean(),
  memoryMb: fc.integer({ min: 4, max: 512 }),
  cpu: fc.constantFrom(0, 0.25, 0.5, 1),
  hostPort: fc.option(fc.constantFrom(80, 443, 8080), { nil: null }),
  strategy: fc.constantFrom("spread" as const, "binpack" as const),
  spreadBy: fc.constantFrom("node", "zone"),
  constraint: fc.constantFrom(null, "zone != attic", "name in (n0, n1)", "name =~ [02]"),
});

/** What changes between evaluations: agents finish stops, nodes come and go, services scale. */
const changeArb = fc.record({
  finishStops: fc.boolean(),
  nodeIndex: fc.nat(),
  nodeStatus: fc.constantFrom<NodeStatus>("ready", "draining", "down", "ready"),
  serviceIndex: fc.nat(),
  replicas: fc.integer({ min: 0, max: 12 }),
  newRevision: fc.boolean(),
});

type ServiceShape = typeof serviceArb extends fc.Arbitrary<infer T> ? T : never;

function build(shape: ServiceShape, index: number): { service: Service; defs: TaskDefinition[] } {
  const name = `s${index}`;
  const ports =
    shape.hostPort === null
      ? []
      : [{ container: 80, host: shape.hostPort, protocol: "tcp" as const }];
  const containers = [{ memoryMb: shape.memoryMb, cpu: shape.cpu || undefined, ports }];
  const svc = service(name, {
    mode: shape.global ? "global" : "replicated",
    replicas: shape.global ? 0 : shape.replicas,
    placement: {
      ...placementDefaults,
      constraints: shape.constraint === null ? [] : [shape.constraint],
      strategy: shape.strategy,
      spreadBy: shape.spreadBy,
    },
    deployment: { ...deploymentDefaults },
  });
  return { service: svc, defs: [definition(name, containers, 1), definition(name, containers, 2)] };
}

function overCommitted(input: SchedulerInput): string | null {
  const definitions = new Map(input.taskDefinitions.map((d) => [`${d.family}:${d.revision}`, d]));
  const held = new Map<string, { memory: number; cpu: number; ports: Set<string> }>();
  for (const task of input.tasks) {
    if (task.node === null) continue;
    const def = definitions.get(`${task.taskDefinition.family}:${task.taskDefinition.revision}`);
    assert.ok(def);
    const demand = demandOf(def);
    const usage = held.get(task.node) ?? { memory: 0, cpu: 0, ports: new Set<string>() };
    usage.memory += demand.memoryMb;
    usage.cpu += demand.cpuMilli;
    for (const port of demand.ports) {
      if (usage.ports.has(port)) return `port ${port} twice on ${task.node}`;
      usage.ports.add(port);
    }
    held.set(task.node, usage);
  }
  for (const info of input.nodes) {
    const usage = held.get(info.id);
    if (!usage) continue;
    if (usage.memory > info.memoryMb) return `${usage.memory} MB on ${info.id} (${info.memoryMb})`;
    if (usage.cpu > cpuToMilli(info.cpus)) return `${usage.cpu} mcpu on ${info.id}`;
  }
  return null;
}

function change(
  input: SchedulerInput,
  step: typeof changeArb extends fc.Arbitrary<infer T> ? T : never,
): SchedulerInput {
  let tasks: Task[] = [...input.tasks];
  if (step.finishStops) tasks = tasks.filter((t) => t.desired === "running");
  // Agents start what was placed on them.
  tasks = tasks.map((t) =>
    t.node !== null && t.state === "pending" ? { ...t, state: "running" } : t,
  );
  const nodes = input.nodes.map((n, i) =>
    i === step.nodeIndex % input.nodes.length
      ? { ...n, status: step.nodeStatus, rowVersion: n.rowVersion + 1 }
      : n,
  );
  const downed = new Set(nodes.filter((n) => n.status === "down").map((n) => n.id));
  // A node marked down loses its tasks (the state machine marks them lost).
  tasks = tasks.filter((t) => t.node === null || !downed.has(t.node));
  const services = input.services.map((s, i) => {
    if (i !== step.serviceIndex % input.services.length) return s;
    const revision = step.newRevision ? 2 : s.taskDefinition.revision;
    const replicas = s.mode === "global" ? 0 : step.replicas;
    return {
      ...s,
      replicas,
      taskDefinition: { ...s.taskDefinition, revision },
      version: s.version + 1,
    };
  });
  return { ...input, nodes, tasks, services };
}

describe("scheduler properties", () => {
  it("never over-commits a node's memory, cpu or host ports, over runs of changes", () => {
    fc.assert(
      fc.property(
        fc.array(nodeArb, { minLength: 1, maxLength: 5 }),
        fc.array(serviceArb, { minLength: 1, maxLength: 4 }),
        fc.array(changeArb, { minLength: 1, maxLength: 8 }),
        fc.integer(),
        (nodeShapes, serviceShapes, changes, seed) => {
          const built = serviceShapes.map(build);
          let draw = seed;
          let input = schedulerInput({
            nodes: nodeShapes.map((shape, i) =>
              node(`n${i}`, {
                memoryMb: shape.memoryMb,
                cpus: shape.cpus,
                labels: { zone: shape.zone },
              }),
            ),
            services: built.map((b) => b.service),
            taskDefinitions: built.flatMap((b) => b.defs),
            random: () => {
              draw = (draw * 1103515245 + 12345) & 0x7fffffff;
              return draw / 0x80000000;
            },
          });
          for (const step of [null, ...changes]) {
            if (step !== null) input = change(input, step);
            input = applyPlan(input, evaluate(input).plan);
            const problem = overCommitted(input);
            if (problem !== null) throw new Error(problem);
          }
        },
      ),
      { numRuns: 300, seed: 20261126 },
    );
  });

  it("catches an over-commitment when one is made (the checker bites)", () => {
    const port = [{ memoryMb: 40, ports: [{ container: 80, host: 80, protocol: "tcp" as const }] }];
    const base = schedulerInput({
      nodes: [node("n0", { memoryMb: 100 })],
      taskDefinitions: [definition("big", [{ memoryMb: 80 }]), definition("web", port)],
    });
    const one = { ...base, tasks: [task("b1", "big", "n0")] };
    assert.equal(overCommitted(one), null);
    assert.match(
      overCommitted({ ...base, tasks: [task("b1", "big", "n0"), task("b2", "big", "n0")] }) ?? "",
      /MB/,
    );
    assert.match(
      overCommitted({ ...base, tasks: [task("w1", "web", "n0"), task("w2", "web", "n0")] }) ?? "",
      /port/,
    );
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ok } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { Command } from "../state/commands.ts";
import { register } from "../state/test-harness.ts";
import { Heartbeats, heartbeatSchema } from "./heartbeats.ts";

/** A registry on a clock the test moves. */
function registry() {
  const clock = { nowMs: 0 };
  return { clock, heartbeats: new Heartbeats(() => clock.nowMs) };
}

const applied = (command: Command) => ({ index: 1, command, result: ok(undefined) });

const report = (node: string) => ({
  taskId: `t-${node}`,
  node,
  state: "running" as const,
  reason: "",
  exitCode: null,
  containers: [],
});

describe("the heartbeat registry", () => {
  it("keeps when each node was last heard, and the last usage it reported", () => {
    const { clock, heartbeats } = registry();
    clock.nowMs = 100;
    heartbeats.heardFrom("b", { load1: 0.5, memoryFreeMb: 900, at: 7 });
    clock.nowMs = 250;
    // A heartbeat without usage is proof of life, and leaves the last report standing.
    heartbeats.heardFrom("b");
    assert.equal(heartbeats.heardAt.get("b"), 250);
    assert.deepEqual(heartbeats.usageOf("b"), { load1: 0.5, memoryFreeMb: 900, at: 7 });
    assert.equal(heartbeats.usageOf("c"), null);
    assert.equal(heartbeats.heardAt.has("c"), false);
  });

  it("hears a node in its own applied commands: a registration, an engine report, a task report", () => {
    const { clock, heartbeats } = registry();
    clock.nowMs = 40;
    heartbeats.heardIn(applied(register(1, { id: "b", name: "b" })));
    heartbeats.heardIn(
      applied({ type: "node.engine", at: 2, nodeId: "c", ready: true, message: "" }),
    );
    heartbeats.heardIn(
      applied({ type: "task.report", at: 3, reports: [report("d"), report("e")] }),
    );
    // Someone else's word on a node is no proof of its life.
    heartbeats.heardIn(applied({ type: "node.drain", at: 4, nodeId: "f" }));
    assert.deepEqual(
      [...heartbeats.heardAt],
      [
        ["b", 40],
        ["c", 40],
        ["d", 40],
        ["e", 40],
      ],
    );
  });

  it("keeps a bounded number of nodes, forgetting the one silent longest", () => {
    const { clock, heartbeats } = registry();
    const usage = { load1: 1, memoryFreeMb: 1, at: 1 };
    for (let n = 0; n < limits.heartbeatUsagesKeptMax; n++) {
      clock.nowMs = n;
      heartbeats.heardFrom(`n${n}`, usage);
    }
    // n0 speaks again: n1 is now the one silent longest, and goes when one more node comes.
    heartbeats.heardFrom("n0", usage);
    heartbeats.heardFrom("new", usage);
    assert.equal(heartbeats.heardAt.size, limits.heartbeatUsagesKeptMax);
    assert.ok(heartbeats.heardAt.has("n0") && heartbeats.usageOf("n0") !== null);
    assert.equal(heartbeats.heardAt.has("n1"), false);
    assert.equal(heartbeats.usageOf("n1"), null);
    assert.ok(heartbeats.heardAt.has("new") && heartbeats.usageOf("new") !== null);
  });

  it("takes a heartbeat's body only in its own shape", () => {
    const usage = { load1: 0.25, memoryFreeMb: 512, at: 1000 };
    assert.equal(heartbeatSchema.safeParse({ usage }).success, true);
    assert.equal(heartbeatSchema.safeParse({}).success, true);
    for (const bad of [
      { usage: { ...usage, load1: -1 } },
      { usage: { ...usage, memoryFreeMb: 1.5 } },
      { usage: { ...usage, extra: 1 } },
      { usage, nodeId: "b" },
    ]) {
      assert.equal(heartbeatSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeInfo } from "../core/types.ts";
import { judgeLiveness } from "./liveness.ts";
import { node } from "./test-harness.ts";

const nodeWith = (id: string, status: NodeInfo["status"]): NodeInfo => ({ ...node(id), status });
const judge = (nodes: NodeInfo[], heard: [string, number][], leadingSince: number, now: number) =>
  judgeLiveness({ nodes, heardAt: new Map(heard), leadingSince, now, downAfterMs: 3000 });

describe("liveness", () => {
  it("marks down a node silent for longer than downAfterMs, and only that one", () => {
    const nodes = [nodeWith("a", "ready"), nodeWith("b", "draining"), nodeWith("c", "ready")];
    const { down, up } = judge(
      nodes,
      [
        ["a", 9000],
        ["b", 6500],
        ["c", 6999],
      ],
      0,
      10_000,
    );
    assert.deepEqual(
      down.map((d) => [d.node.id, d.silentMs]),
      [
        ["b", 3500],
        ["c", 3001],
      ],
    );
    assert.deepEqual(up, []);
  });

  it("gives every node one full grace period from the start of a leadership, no more", () => {
    const nodes = [nodeWith("a", "ready")];
    assert.equal(judge(nodes, [], 5000, 8000).down.length, 0, "within the new leader's grace");
    assert.equal(judge(nodes, [], 5000, 8001).down.length, 1, "grace over");
    assert.equal(
      judge(nodes, [["a", 1000]], 5000, 8001).down.length,
      1,
      "old news counts no longer",
    );
  });

  it("brings back a down node heard lately, and leaves left nodes alone", () => {
    const nodes = [nodeWith("a", "down"), nodeWith("b", "down"), nodeWith("c", "left")];
    const { down, up } = judge(
      nodes,
      [
        ["a", 9500],
        ["b", 1000],
      ],
      0,
      10_000,
    );
    assert.deepEqual(
      up.map((n) => n.id),
      ["a"],
    );
    assert.deepEqual(down, []);
  });
});

// Valid certificates of the CA that a node refuses all the same: a removed node's, one minted for
// a member with another key than the one pinned at admission, and an unknown node's once this
// replica knows itself.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { node } from "../scheduler/test-harness.ts";
import { refusedPeer } from "./peer-refusal.ts";

const pinned = "a".repeat(64);
const rows = new Map([
  ["self", node("self")],
  ["pi", node("pi", { keyDigest: pinned })],
  ["old", node("old", { status: "left", keyDigest: pinned })],
  ["unpinned", node("unpinned")],
]);
const view = { nodeById: (id: string) => rows.get(id) ?? null };

describe("peer refusal", () => {
  it("takes a member's certificate with its pinned key", () => {
    assert.equal(refusedPeer(view, "self", { nodeId: "pi", keyDigest: pinned }), false);
    assert.equal(
      refusedPeer(view, "self", { nodeId: "unpinned", keyDigest: "b".repeat(64) }),
      false,
    );
  });

  it("refuses a certificate naming a member with another key: one minted with the CA key", () => {
    assert.equal(refusedPeer(view, "self", { nodeId: "pi", keyDigest: "b".repeat(64) }), true);
  });

  it("refuses a node that left, with whatever key", () => {
    assert.equal(refusedPeer(view, "self", { nodeId: "old", keyDigest: pinned }), true);
  });

  it("refuses an unknown node once this replica holds its own row, and not before", () => {
    assert.equal(refusedPeer(view, "self", { nodeId: "made-up", keyDigest: pinned }), true);
    assert.equal(refusedPeer(view, "joiner", { nodeId: "leader", keyDigest: pinned }), false);
    assert.equal(refusedPeer(null, "self", { nodeId: "made-up", keyDigest: pinned }), false);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { node } from "../scheduler/test-harness.ts";
import { parseConstraint, satisfies } from "./constraints.ts";

const pi = node("id-pi", { name: "pi-1", arch: "arm64", labels: { zone: "garage", arch: "x" } });
const nuc = node("id-nuc", { name: "nuc", arch: "amd64", labels: { zone: "desk" } });
const bare = node("id-bare", { name: "bare", arch: "arm64", labels: {} });

function matching(text: string): string[] {
  const parsed = parseConstraint(text);
  assert.ok(parsed.ok, `${text} should parse`);
  return [pi, nuc, bare].filter((n) => satisfies(n, parsed.value)).map((n) => n.name);
}

describe("placement constraints", () => {
  it("compares built-in attributes and labels with == and !=", () => {
    assert.deepEqual(matching("arch == arm64"), ["pi-1", "bare"]);
    assert.deepEqual(matching("arch != arm64"), ["nuc"]);
    assert.deepEqual(matching("name == nuc"), ["nuc"]);
    assert.deepEqual(matching("id == id-pi"), ["pi-1"]);
    assert.deepEqual(matching('zone == "garage"'), ["pi-1"]);
  });

  it("lets a node without the label match only the negative operators", () => {
    assert.deepEqual(matching("zone != garage"), ["nuc", "bare"]);
    assert.deepEqual(matching("zone not in (garage)"), ["nuc", "bare"]);
    assert.deepEqual(matching("zone !~ ^gar"), ["nuc", "bare"]);
    assert.deepEqual(matching("zone =~ ."), ["pi-1", "nuc"]);
  });

  it("matches lists with in and not in", () => {
    assert.deepEqual(matching("name in (pi-1, nuc)"), ["pi-1", "nuc"]);
    assert.deepEqual(matching("name not in (pi-1,nuc)"), ["bare"]);
  });

  it("matches regular expressions unanchored, as Nomad does", () => {
    assert.deepEqual(matching("name =~ ^pi-[0-9]+$"), ["pi-1"]);
    assert.deepEqual(matching("name =~ u"), ["nuc"]);
  });

  // A backtracking engine would not return here within the age of the universe: the test's
  // timeout is a guard against a hang, not a speed goal.
  it("answers for a pattern a backtracking engine never finishes", { timeout: 10_000 }, () => {
    const parsed = parseConstraint("zone =~ ^(a+)+$");
    assert.ok(parsed.ok);
    const slow = node("x", { labels: { zone: `${"a".repeat(100)}b` } });
    assert.equal(satisfies(slow, parsed.value), false);
  });

  it("reads only a node's own labels, not an object's inherited keys", () => {
    assert.deepEqual(matching("constructor =~ ."), []);
    assert.deepEqual(matching("toString != x"), ["pi-1", "nuc", "bare"]);
  });

  it("reaches a label that shares a built-in's name through labels.", () => {
    assert.deepEqual(matching("labels.arch == x"), ["pi-1"]);
    assert.deepEqual(matching("labels.zone == desk"), ["nuc"]);
  });

  it("refuses what it cannot read, saying why", () => {
    for (const bad of [
      "arch",
      "arch = arm64",
      "arch ~= x",
      "name in a,b",
      "name in (a,,b)",
      "name =~ (",
      "9x == 1",
    ]) {
      const parsed = parseConstraint(bad);
      assert.equal(parsed.ok, false, `${bad} should be refused`);
      if (!parsed.ok) assert.equal(parsed.code, "E_VALIDATION");
    }
    assert.equal(parseConstraint(`zone == ${"x".repeat(300)}`).ok, false);
  });
});

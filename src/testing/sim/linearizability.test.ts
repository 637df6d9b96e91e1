// The linearizability checker accepts correct histories and bites on wrong ones.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KvOperation } from "./linearizability.ts";
import { checkHistory, verdictFailure } from "./linearizability.ts";

let nextId = 0;
function operation(
  fields: Partial<KvOperation> & Pick<KvOperation, "kind" | "callMs" | "returnMs">,
): KvOperation {
  return { id: nextId++, key: "k", value: null, expected: null, ok: null, ...fields };
}
const unknown = Number.POSITIVE_INFINITY;

describe("linearizability checker", () => {
  it("accepts a sequential history", () => {
    const history = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 1 }),
      operation({ kind: "read", value: "1", callMs: 2, returnMs: 3 }),
      operation({ kind: "cas", expected: "1", value: "2", ok: true, callMs: 4, returnMs: 5 }),
      operation({ kind: "read", value: "2", callMs: 6, returnMs: 7 }),
    ];
    assert.equal(checkHistory(history).kind, "linearizable");
  });

  it("rejects a stale read after a completed write", () => {
    const history = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 1 }),
      operation({ kind: "write", value: "2", callMs: 2, returnMs: 3 }),
      operation({ kind: "read", value: "1", callMs: 4, returnMs: 5 }),
    ];
    assert.equal(checkHistory(history).kind, "violation");
  });

  it("accepts either order of concurrent operations", () => {
    const history = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 10 }),
      operation({ kind: "read", value: null, callMs: 1, returnMs: 2 }),
      operation({ kind: "read", value: "1", callMs: 3, returnMs: 4 }),
    ];
    assert.equal(checkHistory(history).kind, "linearizable");
  });

  it("rejects a read that goes back in time", () => {
    const history = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 10 }),
      operation({ kind: "read", value: "1", callMs: 1, returnMs: 2 }),
      operation({ kind: "read", value: null, callMs: 3, returnMs: 4 }),
    ];
    assert.equal(checkHistory(history).kind, "violation");
  });

  it("lets an unknown write take effect late or never", () => {
    const late = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: unknown }),
      operation({ kind: "read", value: null, callMs: 5, returnMs: 6 }),
      operation({ kind: "read", value: "1", callMs: 50, returnMs: 60 }),
    ];
    assert.equal(checkHistory(late).kind, "linearizable");
    const never = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: unknown }),
      operation({ kind: "read", value: null, callMs: 50, returnMs: 60 }),
    ];
    assert.equal(checkHistory(never).kind, "linearizable");
  });

  it("checks compare-and-set results against the register", () => {
    const wrong = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 1 }),
      operation({ kind: "cas", expected: "0", value: "2", ok: true, callMs: 2, returnMs: 3 }),
    ];
    assert.equal(checkHistory(wrong).kind, "violation");
    const lost = [
      operation({ kind: "write", value: "1", callMs: 0, returnMs: 1 }),
      operation({ kind: "cas", expected: "1", value: "2", ok: true, callMs: 2, returnMs: 3 }),
      operation({ kind: "read", value: "1", callMs: 4, returnMs: 5 }),
    ];
    assert.equal(checkHistory(lost).kind, "violation");
  });

  it("stays fast on a long history of one key with concurrency", () => {
    const history: KvOperation[] = [];
    for (let round = 0; round < 300; round++) {
      const base = round * 10;
      history.push(
        operation({ kind: "write", value: `${round}`, callMs: base, returnMs: base + 15 }),
      );
      history.push(
        operation({ kind: "read", value: `${round}`, callMs: base + 12, returnMs: base + 14 }),
      );
      history.push(
        operation({ kind: "write", value: `x${round}`, callMs: base + 1, returnMs: unknown }),
      );
    }
    // A search that blew up on concurrency would run out of this step budget and say so.
    assert.equal(checkHistory(history, 20_000).kind, "linearizable");
  });

  /** Key "a": twenty sequential writes, more steps than the tiny budget below allows. */
  function longKey(): KvOperation[] {
    return Array.from({ length: 20 }, (_, round) =>
      operation({
        key: "a",
        kind: "write",
        value: `${round}`,
        callMs: round * 2,
        returnMs: round * 2 + 1,
      }),
    );
  }
  /** Key "b": a stale read after a completed write, which the search rejects in a few steps. */
  function staleKey(): KvOperation[] {
    return [
      operation({ key: "b", kind: "write", value: "1", callMs: 0, returnMs: 1 }),
      operation({ key: "b", kind: "write", value: "2", callMs: 2, returnMs: 3 }),
      operation({ key: "b", kind: "read", value: "1", callMs: 4, returnMs: 5 }),
    ];
  }
  const tinyBudget = 10;

  it("checks the keys after an inconclusive one and reports their violation", () => {
    assert.equal(checkHistory(longKey()).kind, "linearizable");
    const verdict = checkHistory([...longKey(), ...staleKey()], tinyBudget);
    assert.equal(verdict.kind, "violation");
    assert.equal(verdict.kind === "violation" && verdict.key, "b");
  });

  it("fails a run on a key the search could not decide", () => {
    const verdict = checkHistory(longKey(), tinyBudget);
    assert.deepEqual(verdict, { kind: "inconclusive", keys: ["a"] });
    assert.match(verdictFailure(verdict) ?? "passed", /inconclusive .* a$/);
    assert.equal(verdictFailure(checkHistory(longKey())), null);
  });

  it("names every key the search could not decide", () => {
    const alsoLong = longKey().map((each) => ({ ...each, id: nextId++, key: "c" }));
    const verdict = checkHistory([...alsoLong, ...longKey()], tinyBudget);
    assert.deepEqual(verdict, { kind: "inconclusive", keys: ["a", "c"] });
  });
});

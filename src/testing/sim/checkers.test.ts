// The acknowledged-write check bites: an index that holds another operation's entry, or an
// entry of no operation, is a lost write, even though something was applied there.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Entry } from "../../raft/types.ts";
import { checkAcknowledgedWrite, SafetyChecker } from "./checkers.ts";
import { encodeCommand } from "./kv-machine.ts";

function commandEntry(index: number, term: number, operation: number): Entry {
  const data = encodeCommand({ operation, kind: "put", key: "k", value: `v${operation}` });
  return { index, term, kind: "command", data };
}

function noopEntry(index: number, term: number): Entry {
  return { index, term, kind: "noop", data: new Uint8Array() };
}

/** A checker that saw index 1 apply a no-op, 2 apply operation 7 and 3 apply operation 8. */
function checkerWithApplied(): SafetyChecker {
  const checker = new SafetyChecker();
  checker.onApply("m1", noopEntry(1, 1), null);
  checker.onApply("m1", commandEntry(2, 1, 7), 7);
  checker.onApply("m1", commandEntry(3, 2, 8), 8);
  return checker;
}

describe("acknowledged-write check", () => {
  it("accepts a write whose own entry was applied at its index", () => {
    const checker = checkerWithApplied();
    const write = { id: 7, index: 2 };
    assert.deepEqual(checkAcknowledgedWrite(write, 3, checker.appliedRecord(2)), { ok: true });
  });

  it("fails a write whose index holds another operation's entry", () => {
    const checker = checkerWithApplied();
    const write = { id: 9, index: 3 };
    const checked = checkAcknowledgedWrite(write, 3, checker.appliedRecord(3));
    assert.equal(checked.ok, false);
    assert.match(checked.ok ? "" : checked.reason, /operation 9 .* at 3, where operation 8/);
  });

  it("fails a write whose index holds a no-op", () => {
    const checker = checkerWithApplied();
    const write = { id: 9, index: 1 };
    const checked = checkAcknowledgedWrite(write, 3, checker.appliedRecord(1));
    assert.equal(checked.ok, false);
    assert.match(checked.ok ? "" : checked.reason, /no operation/);
  });

  it("fails a write past what was applied or never applied", () => {
    const checker = checkerWithApplied();
    const beyond = { id: 9, index: 4 };
    assert.equal(checkAcknowledgedWrite(beyond, 3, checker.appliedRecord(4)).ok, false);
    assert.equal(checkAcknowledgedWrite(beyond, 4, checker.appliedRecord(4)).ok, false);
  });
});

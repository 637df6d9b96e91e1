// Remembered exit codes are bounded: the oldest is forgotten first.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { ExitCodes } from "./exit-codes.ts";

describe("exit codes", () => {
  it("keeps at most exitCodesRememberedMax, forgetting the oldest", () => {
    const codes = new ExitCodes();
    for (let i = 0; i <= limits.exitCodesRememberedMax; i++) codes.remember(`c${i}`, i % 256);
    assert.equal(codes.view().size, limits.exitCodesRememberedMax);
    assert.equal(codes.has("c0"), false);
    assert.equal(codes.view().get("c1"), 1);
    codes.forget("c1");
    assert.equal(codes.has("c1"), false);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newClusterKey, seal, unseal } from "./secret-box.ts";

describe("secret box", () => {
  it("seals so that only the cluster key opens, and a changed byte opens nothing", () => {
    const key = newClusterKey();
    const sealed = seal(key, "the-api-token");
    assert.doesNotMatch(Buffer.from(sealed, "base64").toString("latin1"), /the-api-token/);
    assert.equal(unseal(key, sealed), "the-api-token");
    assert.equal(unseal(newClusterKey(), sealed), null);
    const bytes = Buffer.from(sealed, "base64");
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    assert.equal(unseal(key, bytes.toString("base64")), null);
    assert.notEqual(seal(key, "same"), seal(key, "same"), "a fresh IV each time");
  });
});

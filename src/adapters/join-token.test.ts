// The join token's shape, its refusals, and the proof a joiner sends instead of the secret.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatJoinToken, parseJoinToken } from "../cluster/join-token.ts";
import { joinProof, proofMatches } from "./join-token.ts";

const digest = "ab".repeat(32);

describe("join token", () => {
  it("carries the cluster, the CA's digest and the secret", () => {
    const token = formatJoinToken("abc123", digest, "Secret_-9");
    assert.equal(token.text, `shoal2.abc123.${digest}.Secret_-9`);
    assert.deepEqual(parseJoinToken(`  ${token.text}\n`), token);
  });

  it("refuses a token of a fleet from before TLS with the way on, and malformed ones", () => {
    assert.throws(() => parseJoinToken("shoal1.abc.secret"), /from before TLS.*re-form it/);
    for (const bad of [
      "shoal2.abc.secret",
      `shoal2.ABC.${digest}.s`,
      `shoal2.abc.${digest.slice(1)}.s`,
      `shoal2.abc.${digest}.s.extra`,
      `shoal2.abc.${digest}.s p`,
    ]) {
      assert.throws(() => parseJoinToken(bad), /shoal2\.<cluster>\.<ca-sha256>\.<secret>/, bad);
    }
  });

  it("proves the secret for one node's one request, without the secret", () => {
    const proof = joinProof("secret", "node1", "CSR");
    assert.doesNotMatch(proof, /secret/);
    assert.equal(proofMatches("secret", "node1", "CSR", proof), true);
    assert.equal(proofMatches("other", "node1", "CSR", proof), false);
    assert.equal(proofMatches("secret", "node2", "CSR", proof), false, "another node's");
    assert.equal(proofMatches("secret", "node1", "CSR2", proof), false, "another request's");
    assert.equal(proofMatches("secret", "node1", "CSR", "zz"), false);
  });
});

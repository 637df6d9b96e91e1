import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { derivePeerKey, PeerVerifier, peerHeaders, signPeerRequest } from "./peer-auth.ts";

const key = derivePeerKey("shoal-cluster.secret");
const request = { method: "POST", path: "/internal/raft/append", body: '{"entries":[]}' };
const now = 1_800_000_000_000;

function check(
  verifier: PeerVerifier,
  headers: Record<string, string>,
  body = request.body,
  at = now,
) {
  return verifier.verify({ ...request, body }, (name) => headers[name], at);
}

describe("peer request signing", () => {
  it("accepts a signed request once and names its sender", () => {
    const verifier = new PeerVerifier(key);
    const headers = signPeerRequest(key, "node-a", request, now);
    assert.deepEqual(check(verifier, headers), { ok: true, value: "node-a" });
  });

  it("refuses unsigned, stale, replayed, forged and tampered requests", () => {
    const verifier = new PeerVerifier(key);
    const signed = signPeerRequest(key, "node-a", request, now);
    const refused = (result: ReturnType<typeof check>, why: RegExp) => {
      assert.equal(result.ok, false);
      assert.match(result.ok ? "" : result.message, why);
    };
    refused(check(verifier, {}), /unsigned/);
    refused(
      check(verifier, signPeerRequest(key, "a", request, now - limits.peerRequestWindowMs - 1)),
      /stale/,
    );
    refused(
      check(verifier, signPeerRequest(derivePeerKey("other-token"), "a", request, now)),
      /signature/,
    );
    refused(check(verifier, signed, '{"entries":[1]}'), /signature/);
    refused(check(verifier, { ...signed, [peerHeaders.signature]: "zz" }), /signature/);
    assert.equal(check(verifier, signed).ok, true);
    refused(check(verifier, signed), /replayed/);
  });

  it("forgets nonces once they could no longer pass the window, and stays bounded", () => {
    const verifier = new PeerVerifier(key);
    const first = signPeerRequest(key, "a", request, now, "n1");
    assert.equal(check(verifier, first).ok, true);
    const later = now + limits.peerRequestWindowMs + 1;
    assert.equal(
      check(verifier, signPeerRequest(key, "a", request, later, "n2"), request.body, later).ok,
      true,
    );
    assert.equal((verifier as unknown as { seen: Map<string, number> }).seen.has("n1"), false);
  });
});

// Peer requests (/internal/...) prove knowledge of the join token without sending it: each is
// signed with an HMAC key derived from the token, over method, path, time, a nonce and the body's
// digest. A verifier refuses unsigned, stale, replayed and forged requests.
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { fail, ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";

export const peerHeaders = {
  node: "x-shoal-node",
  time: "x-shoal-time",
  nonce: "x-shoal-nonce",
  signature: "x-shoal-signature",
} as const;

/** The peer key: HKDF over the join token, so the token itself never signs or travels. */
export function derivePeerKey(joinToken: string): Buffer {
  return Buffer.from(hkdfSync("sha256", joinToken, "shoal", "shoal peer requests v1", 32));
}

export interface SignedRequest {
  method: string;
  path: string;
  body: Uint8Array | string;
}

function digest(body: Uint8Array | string): string {
  return createHash("sha256").update(body).digest("hex");
}

function signature(key: Buffer, request: SignedRequest, time: string, nonce: string): string {
  const text = [request.method.toUpperCase(), request.path, time, nonce, digest(request.body)].join(
    "\n",
  );
  return createHmac("sha256", key).update(text).digest("hex");
}

/** Headers that sign `request` as sent by `nodeId` at wall time `now`. */
export function signPeerRequest(
  key: Buffer,
  nodeId: string,
  request: SignedRequest,
  now: number,
  nonce: string = randomBytes(16).toString("hex"),
): Record<string, string> {
  const time = String(now);
  return {
    [peerHeaders.node]: nodeId,
    [peerHeaders.time]: time,
    [peerHeaders.nonce]: nonce,
    [peerHeaders.signature]: signature(key, request, time, nonce),
  };
}

/** The refusal that means a different join token (a stale time or a replay means something else). */
export const badSignatureMessage = "bad peer signature (a different join token?)";

/** Checks signatures and remembers nonces for the replay window, bounded in count. */
export class PeerVerifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly key: Buffer) {}

  verify(
    request: SignedRequest,
    header: (name: string) => string | undefined,
    now: number,
  ): Result<string> {
    const node = header(peerHeaders.node);
    const time = header(peerHeaders.time);
    const nonce = header(peerHeaders.nonce);
    const given = header(peerHeaders.signature);
    if (!node || !time || !nonce || !given) return fail("E_UNAUTHORIZED", "unsigned peer request");
    if (!/^\d+$/.test(time) || Math.abs(now - Number(time)) > limits.peerRequestWindowMs) {
      return fail("E_UNAUTHORIZED", "stale peer request (check the clocks of both machines)");
    }
    const expected = Buffer.from(signature(this.key, request, time, nonce), "hex");
    const actual = Buffer.from(/^[0-9a-f]{64}$/.test(given) ? given : "", "hex");
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      return fail("E_UNAUTHORIZED", badSignatureMessage);
    }
    if (this.seen.has(nonce)) return fail("E_UNAUTHORIZED", "replayed peer request");
    this.remember(nonce, Number(time), now);
    return ok(node);
  }

  /** Keeps nonces only as long as their time could still pass the window check. */
  private remember(nonce: string, time: number, now: number): void {
    for (const [old, at] of this.seen) {
      if (this.seen.size < limits.peerNoncesMax && now - at <= limits.peerRequestWindowMs) break;
      this.seen.delete(old);
    }
    this.seen.set(nonce, time);
  }
}

// Every /v1 route but health needs the cluster's API token as a bearer token, checked against the
// token's hash in the store (the store never holds the token itself). Until the store is open the
// hash is not known, and requests are answered 503 E_NOT_READY, not 401.
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ShoalError } from "../core/errors.ts";

/** SHA-256 of an API token, hex: the token is long and random, so no salt or stretching is needed. */
export function apiTokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function matches(given: string, expectedHash: string): boolean {
  const a = Buffer.from(apiTokenHash(given), "hex");
  const b = Buffer.from(expectedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `expectedHash` is the API token's hash, or null while the store is still opening. */
export function requireToken(expectedHash: () => string | null): MiddlewareHandler {
  return async (c, next) => {
    const hash = expectedHash();
    if (hash === null) throw new ShoalError("E_NOT_READY", "the store is still opening");
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new ShoalError("E_UNAUTHORIZED", "missing bearer token");
    if (!matches(match[1], hash)) {
      throw new ShoalError("E_UNAUTHORIZED", "wrong API token");
    }
    await next();
  };
}

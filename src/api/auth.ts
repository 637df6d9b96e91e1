// Every /v1 route but health needs the cluster's API token as a bearer token. Until the store is
// open the token is not known, and requests are answered 503 E_NOT_READY, not 401.
import { timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ShoalError } from "../core/errors.ts";

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `expected` is the cluster's API token, or null while the store is still opening. */
export function requireToken(expected: () => string | null): MiddlewareHandler {
  return async (c, next) => {
    const token = expected();
    if (token === null) throw new ShoalError("E_NOT_READY", "the store is still opening");
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) throw new ShoalError("E_UNAUTHORIZED", "missing bearer token");
    if (!sameToken(match[1], token)) {
      throw new ShoalError("E_UNAUTHORIZED", "wrong API token");
    }
    await next();
  };
}

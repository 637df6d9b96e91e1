// Every /v1 route but health needs the cluster's API token as a bearer token.
import { timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ShoalError } from "../core/errors.ts";

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function requireToken(expected: () => string | null): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const token = expected();
    if (!match?.[1]) throw new ShoalError("E_UNAUTHORIZED", "missing bearer token");
    if (token === null || !sameToken(match[1], token)) {
      throw new ShoalError("E_UNAUTHORIZED", "wrong API token");
    }
    await next();
  };
}

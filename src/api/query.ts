// Query strings are checked like bodies: each route names the parameters it takes, and an unknown
// or malformed one is a 400 E_VALIDATION that names it, before anything is read or proposed.
import type { Context } from "hono";
import { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import { validationError } from "./errors.ts";

/** How fresh a read must be. Accepted and validated now; the fleet reads it to pick a path. */
export const consistencySchema = z.enum(["local", "leader", "linearizable"]);

/** A route that takes no query parameters at all. */
export const noQuery = z.strictObject({});

/** A read of the fleet's state, which may ask for a consistency level. */
export const readQuery = z.strictObject({ consistency: consistencySchema.optional() });

/** A sequence number: digits only, so `since=`, `1e3` and `0x10` are refused, not coerced. */
export const sequenceSchema = z
  .string()
  .regex(/^\d+$/, "must be a sequence number (digits only)")
  .transform(Number)
  .refine(Number.isSafeInteger, "is too large");

export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const result = schema.safeParse(c.req.query());
  if (!result.success) throw validationError(result.error, "query");
  return result.data;
}

/** Refuses a request body where a route takes none (DELETE): silently ignoring it hides mistakes. */
export async function refuseBody(c: Context): Promise<void> {
  const text = await c.req.text();
  if (text.trim() !== "") {
    throw new ShoalError("E_VALIDATION", `${c.req.method} ${c.req.path} takes no request body`);
  }
}

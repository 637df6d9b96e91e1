// Reads and validates a JSON body: malformed JSON and schema violations become 400s that name
// the field, before anything is proposed.
import type { Context } from "hono";
import type { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import { validationError } from "./errors.ts";

export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let parsed: unknown;
  try {
    parsed = text.trim() === "" ? {} : JSON.parse(text);
  } catch (error) {
    throw new ShoalError("E_BAD_JSON", `the body is not valid JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw validationError(result.error);
  return result.data;
}

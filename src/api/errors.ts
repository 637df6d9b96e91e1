// One place maps errors to HTTP: ShoalErrors by their code, everything else as a plain 500 whose
// details go only to the log.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { ShoalError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";

export function errorBody(code: string, message: string, details: unknown = null) {
  return { error: { code, message, details } };
}

export function validationError(error: ZodError, where = "body"): ShoalError {
  const issues = error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const first = issues[0];
  const message = first
    ? `${where}${first.path ? `.${first.path}` : ""}: ${first.message}`
    : `${where} is not valid`;
  return new ShoalError("E_VALIDATION", message, { details: issues });
}

export function handleError(logger: Logger) {
  return (error: Error, c: Context) => {
    if (error instanceof ShoalError) {
      return c.json(
        errorBody(error.code, error.message, error.details ?? null),
        error.status as ContentfulStatusCode,
      );
    }
    if (error instanceof HTTPException && error.status === 413) {
      return c.json(errorBody("E_BODY_TOO_LARGE", "the request body is larger than 1 MiB"), 413);
    }
    if (error instanceof HTTPException) {
      return c.json(errorBody("E_VALIDATION", error.message), error.status);
    }
    logger.error({ err: error, path: c.req.path }, "request failed");
    return c.json(errorBody("E_INTERNAL", "internal error"), 500);
  };
}

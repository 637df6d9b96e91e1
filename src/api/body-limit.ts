// Bounds request bodies. A body with a declared length is judged by its header alone: hono's
// bodyLimit asks for `c.req.raw.body`, which turns @hono/node-server's lightweight request into a
// full web Request on every request (a third of the API's cost per write, measured), while the
// declared length is all it needs. A body that declares no length (chunked) goes through hono's
// bodyLimit, which counts while reading.
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ShoalError } from "../core/errors.ts";

export function limitBody(maxSize: number, what: string): MiddlewareHandler {
  const refuse = (): never => {
    throw new ShoalError("E_BODY_TOO_LARGE", `${what} is larger than ${sizeText(maxSize)}`);
  };
  const counting = bodyLimit({ maxSize, onError: refuse });
  return async (c, next) => {
    // GET and HEAD bodies are never read.
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const declared = c.req.header("content-length");
    if (declared === undefined || c.req.header("transfer-encoding") !== undefined) {
      return counting(c, next);
    }
    // Node's parser delivers exactly the declared length, so the header is the whole truth.
    if (Number(declared) > maxSize) refuse();
    await next();
  };
}

const mebibyte = 1024 * 1024;

function sizeText(bytes: number): string {
  return bytes % mebibyte === 0 ? `${bytes / mebibyte} MiB` : `${bytes} bytes`;
}

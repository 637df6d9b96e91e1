// /internal/...: the peer routes on the API's port. Every request must carry a valid signature
// made with the join token's key; anything else gets 401 and changes nothing.
import { Hono } from "hono";
import { ShoalError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import { limitBody } from "../body-limit.ts";
import { type ApiNode, EncodedJson } from "../context.ts";

export function internalRoutes(node: ApiNode): Hono {
  const app = new Hono();
  app.use("*", limitBody(limits.peerBodyBytesMax, "the peer request body"));

  app.post("/:kind", async (c) => {
    const peer = node.peer?.();
    if (!peer) throw new ShoalError("E_NOT_READY", "this node takes no peer requests yet");
    const body = await c.req.text();
    const verified = peer.verifier.verify(
      { method: c.req.method, path: c.req.path, body },
      (name) => c.req.header(name),
      node.clock.now(),
    );
    if (!verified.ok) throw new ShoalError("E_UNAUTHORIZED", verified.message);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new ShoalError("E_BAD_JSON", "the peer request body is not JSON");
    }
    const answer = await peer.handle(c.req.param("kind"), parsed, verified.value);
    if (answer instanceof EncodedJson) {
      return c.body(answer.text, 200, { "content-type": "application/json" });
    }
    return c.json(answer ?? { ok: true });
  });
  return app;
}

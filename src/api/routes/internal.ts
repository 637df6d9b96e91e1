// /internal/...: the peer routes on the API's port. Only a connection whose client showed a
// valid, unrevoked certificate of the cluster's CA gets an answer, and it is refused before any
// of its body is read; the sender is the node its certificate names.
import { Hono } from "hono";
import { ShoalError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import { limitBody } from "../body-limit.ts";
import { type ApiNode, EncodedJson } from "../context.ts";

export function internalRoutes(node: ApiNode): Hono<{ Variables: { peer: string } }> {
  const app = new Hono<{ Variables: { peer: string } }>();
  app.use("*", async (c, next) => {
    const peer = node.connectionPeer?.(c.env) ?? null;
    if (!peer) {
      throw new ShoalError("E_UNAUTHORIZED", "peer routes need a certificate of this cluster");
    }
    c.set("peer", peer);
    await next();
  });
  app.use("*", limitBody(limits.peerBodyBytesMax, "the peer request body"));

  app.post("/:kind", async (c) => {
    const peer = node.peer?.();
    if (!peer) throw new ShoalError("E_NOT_READY", "this node takes no peer requests yet");
    let parsed: unknown;
    try {
      parsed = JSON.parse(await c.req.text());
    } catch {
      throw new ShoalError("E_BAD_JSON", "the peer request body is not JSON");
    }
    const answer = await peer.handle(c.req.param("kind"), parsed, c.get("peer"));
    if (answer instanceof EncodedJson) {
      return c.body(answer.text, 200, { "content-type": "application/json" });
    }
    return c.json(answer ?? { ok: true });
  });
  return app;
}

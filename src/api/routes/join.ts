// /join: where a node without a certificate joins. `GET /join/ca` serves the cluster's CA (public:
// the joiner trusts it only if its token pins its digest); `POST /join` takes a certificate request
// with a proof of the join secret, over TLS the joiner verified against that CA.
import { Hono } from "hono";
import { ShoalError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import { limitBody } from "../body-limit.ts";
import type { ApiNode } from "../context.ts";

function endpointOf(node: ApiNode) {
  const joins = node.joins?.();
  if (!joins) throw new ShoalError("E_NOT_READY", "this node belongs to no cluster yet");
  return joins;
}

export function joinRoutes(node: ApiNode): Hono {
  const app = new Hono();
  app.use("*", limitBody(limits.joinRequestBytesMax, "the join request"));
  app.get("/ca", (c) =>
    c.body(endpointOf(node).caPem(), 200, { "content-type": "application/x-pem-file" }),
  );
  app.post("/", async (c) => {
    const joins = endpointOf(node);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await c.req.text());
    } catch {
      throw new ShoalError("E_BAD_JSON", "the join request is not JSON");
    }
    return c.json(await joins.admit(parsed));
  });
  return app;
}

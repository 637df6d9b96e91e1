// The HTTP API of a node: every route under /v1, a body limit, the bearer token on everything
// but health, and one error handler. Route tests need no socket: `app.request(...)`.
import { Hono } from "hono";
import { limits } from "../core/limits.ts";
import { requireToken } from "./auth.ts";
import { limitBody } from "./body-limit.ts";
import type { ApiNode } from "./context.ts";
import { errorBody, handleError } from "./errors.ts";
import { clusterRoutes } from "./routes/cluster.ts";
import { EventStreams, eventRoutes } from "./routes/events.ts";
import { internalRoutes } from "./routes/internal.ts";
import { joinRoutes } from "./routes/join.ts";
import { serviceRoutes } from "./routes/services.ts";
import { taskRoutes } from "./routes/tasks.ts";

export interface Api {
  app: Hono;
  /** Ends open event streams so the server can close. */
  close(): void;
}

export function createApi(node: ApiNode): Api {
  const app = new Hono();
  const streams = new EventStreams();
  app.onError(handleError(node.logger));
  app.notFound((c) =>
    c.json(errorBody("E_NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), 404),
  );

  // Health answers while the disk is full too: the node is up, serves reads and says why it
  // refuses writes in `disk`.
  app.get("/v1/health", (c) => {
    const store = node.store();
    if (!store) return c.json({ status: "starting", node: node.nodeId }, 503);
    const disk = node.disk?.() ?? null;
    return c.json({
      status: "ok",
      node: node.nodeId,
      appliedIndex: store.view.appliedIndex(),
      ...(disk ? { disk } : {}),
    });
  });

  app.route("/internal", internalRoutes(node));
  app.route("/join", joinRoutes(node));

  // Read at each request: a rotation takes effect on this node as soon as it is applied here.
  app.use(
    "/v1/*",
    requireToken(() => node.store()?.view.cluster()?.apiTokenHash ?? null),
  );
  app.use("/v1/*", limitBody(limits.requestBodyBytesMax, "the request body"));

  app.route("/v1", clusterRoutes(node));
  app.route("/v1/services", serviceRoutes(node));
  app.route("/v1/tasks", taskRoutes(node));
  app.route("/v1/events", eventRoutes(node, streams));
  return { app, close: () => streams.endAll() };
}

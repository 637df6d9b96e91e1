// /v1/services: create, list, inspect, scale or update, delete.
import { Hono } from "hono";
import { ShoalError } from "../../core/errors.ts";
import { servicePatchSchema, serviceSpecSchema } from "../../state/spec.ts";
import { readJson } from "../body.ts";
import type { ApiNode } from "../context.ts";
import { noQuery, parseQuery, readQuery, refuseBody } from "../query.ts";
import { renderDeployment, renderService, renderTask } from "../render.ts";
import { notFound, param, propose, readView, refuseUnallowedHostPaths, viewOf } from "../store.ts";

export function serviceRoutes(node: ApiNode): Hono {
  const app = new Hono();

  app.post("/", async (c) => {
    parseQuery(c, noQuery);
    const spec = await readJson(c, serviceSpecSchema);
    if (viewOf(node).service(spec.name)) {
      throw new ShoalError("E_CONFLICT", `a service named ${spec.name} already exists`);
    }
    const { name, mode, replicas, containers, placement, deployment } = spec;
    refuseUnallowedHostPaths(viewOf(node), containers);
    await propose(node, {
      type: "service.create",
      at: node.clock.now(),
      name,
      mode,
      replicas,
      containers,
      placement,
      deployment,
      stopAfterDisconnectMs: spec.stopAfterDisconnectMs,
      ingress: spec.ingress,
      drainMs: spec.drainMs,
    });
    const view = viewOf(node);
    return c.json(renderService(view, view.service(name) ?? notFound(`service ${name}`)), 201);
  });

  app.get("/", async (c) => {
    const { view } = await readView(c, node, readQuery);
    return c.json(view.services().map((service) => renderService(view, service)));
  });

  app.get("/:name", async (c) => {
    const { view } = await readView(c, node, readQuery);
    const name = param(c, "name");
    const service = view.service(name) ?? notFound(`service ${name}`);
    const active = view.activeTasksForService(name);
    const deployments = view.deployments(name).map((d) => renderDeployment(d, active));
    return c.json({ ...renderService(view, service), deployments, tasks: active.map(renderTask) });
  });

  /** `shoal service rollback`: back to the revision before the latest deployment. */
  app.post("/:name/rollback", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    const name = param(c, "name");
    await propose(node, { type: "service.rollback", at: node.clock.now(), name });
    const view = viewOf(node);
    return c.json(renderService(view, view.service(name) ?? notFound(`service ${name}`)));
  });

  /** `shoal service rebalance`: spread the tasks again, starting each move first. */
  app.post("/:name/rebalance", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    const name = param(c, "name");
    await propose(node, { type: "service.rebalance", at: node.clock.now(), name });
    const view = viewOf(node);
    return c.json(renderService(view, view.service(name) ?? notFound(`service ${name}`)));
  });

  app.patch("/:name", async (c) => {
    parseQuery(c, noQuery);
    const name = param(c, "name");
    const patch = await readJson(c, servicePatchSchema);
    refuseUnallowedHostPaths(viewOf(node), patch.containers);
    // No look before the write: the state machine refuses an unknown service with E_NOT_FOUND.
    await propose(node, { type: "service.update", at: node.clock.now(), name, ...patch });
    const view = viewOf(node);
    return c.json(renderService(view, view.service(name) ?? notFound(`service ${name}`)));
  });

  app.delete("/:name", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    const name = param(c, "name");
    if (!viewOf(node).service(name)) notFound(`service ${name}`);
    await propose(node, { type: "service.delete", at: node.clock.now(), name });
    return c.json({ name, deleted: true });
  });

  return app;
}

// /v1/cluster, /v1/nodes and /v1/task-definitions: what the fleet is made of.
import { Hono } from "hono";
import type { ApiNode } from "../context.ts";
import { noQuery, parseQuery, readQuery } from "../query.ts";
import { renderTaskDefinition } from "../render.ts";
import { notFound, openStore, param, viewOf } from "../store.ts";

export function clusterRoutes(node: ApiNode): Hono {
  const app = new Hono();

  app.get("/cluster", (c) => {
    // `consistency` is validated here and read by the fleet, which picks the path of the read.
    parseQuery(c, readQuery);
    const { view, log } = openStore(node);
    const cluster = view.cluster() ?? notFound("cluster");
    const self = view.node(node.nodeId);
    const leader =
      log.isLeader() && self ? { id: self.id, name: self.name, address: self.address } : null;
    return c.json({
      id: cluster.id,
      createdAt: cluster.createdAt,
      leader,
      term: 1,
      leaseHeld: log.isLeader(),
      appliedIndex: view.appliedIndex(),
      nodes: view.nodes(),
    });
  });

  app.get("/nodes", (c) => {
    parseQuery(c, readQuery);
    return c.json(viewOf(node).nodes());
  });

  app.get("/nodes/:id", (c) => {
    parseQuery(c, readQuery);
    const id = param(c, "id");
    return c.json(viewOf(node).node(id) ?? notFound(`node ${id}`));
  });

  app.get("/task-definitions", (c) => {
    parseQuery(c, noQuery);
    return c.json(viewOf(node).taskDefinitions().map(renderTaskDefinition));
  });

  app.get("/task-definitions/:family", (c) => {
    parseQuery(c, noQuery);
    const family = param(c, "family");
    const definitions = viewOf(node).taskDefinitions(family);
    if (definitions.length === 0) notFound(`task definition family ${family}`);
    return c.json(definitions.map(renderTaskDefinition));
  });

  app.get("/task-definitions/:family/:revision", (c) => {
    parseQuery(c, noQuery);
    const family = param(c, "family");
    const revision = param(c, "revision");
    const definition = /^\d+$/.test(revision)
      ? viewOf(node).taskDefinition(family, Number(revision))
      : null;
    return c.json(
      renderTaskDefinition(definition ?? notFound(`task definition ${family}:${revision}`)),
    );
  });

  return app;
}

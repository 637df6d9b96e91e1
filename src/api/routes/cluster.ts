// /v1/cluster, /v1/nodes and /v1/task-definitions: what the fleet is made of.
import { Hono } from "hono";
import { z } from "zod";
import { ShoalError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { FleetStatus, NodeInfo } from "../../core/types.ts";
import { labelsSchema } from "../../state/commands.ts";
import type { StateView } from "../../state/views.ts";
import { readJson } from "../body.ts";
import type { ApiNode } from "../context.ts";
import { noQuery, parseQuery, readQuery, refuseBody } from "../query.ts";
import { renderTaskDefinition } from "../render.ts";
import { notFound, param, propose, readView, viewOf } from "../store.ts";

const labelChangeSchema = z
  .strictObject({
    set: labelsSchema.default({}),
    remove: z.array(z.string().min(1)).max(limits.labelsPerNodeMax).default([]),
  })
  .refine((change) => Object.keys(change.set).length + change.remove.length > 0, {
    message: "give labels to set or to remove",
  });

/**
 * A node with its place in the Raft configuration (`null` once it left it), and its machine use
 * from its last heartbeat when the answering node leads (heartbeats go only to the leader).
 */
function renderNode(node: ApiNode, info: NodeInfo) {
  const fleet = node.fleet?.();
  return { ...info, role: fleet?.roleOf(info.id) ?? null, usage: fleet?.usageOf(info.id) ?? null };
}

/** Without replication (a store under test) the node is its own leader and only voter. */
function loneStatus(node: ApiNode, view: StateView): FleetStatus {
  const leads = openLog(node).isLeader();
  return {
    leader: leads ? node.nodeId : null,
    term: 1,
    leaseHeld: leads,
    leaseRemainingMs: 0,
    voters: [node.nodeId],
    learners: [],
    members: [{ id: node.nodeId, role: "voter", match: null, appliedIndex: view.appliedIndex() }],
    snapshotIndex: 0,
  };
}

function rotationOf(node: ApiNode) {
  const rotation = node.rotation?.();
  if (!rotation) throw new ShoalError("E_NOT_READY", "this node cannot rotate tokens (no fleet)");
  return rotation;
}

function openLog(node: ApiNode) {
  return node.store()?.log ?? notFound("store");
}

export function clusterRoutes(node: ApiNode): Hono {
  const app = new Hono();

  app.get("/cluster", async (c) => {
    const { view } = await readView(c, node, readQuery);
    const cluster = view.cluster() ?? notFound("cluster");
    const fleet = node.fleet?.();
    const status = fleet ? await fleet.status() : loneStatus(node, view);
    const leaderNode = status.leader ? view.nodeById(status.leader) : null;
    const names = new Map(view.nodes().map((n) => [n.id, n.name]));
    return c.json({
      id: cluster.id,
      createdAt: cluster.createdAt,
      leader: status.leader
        ? {
            id: status.leader,
            name: leaderNode?.name ?? null,
            address: leaderNode ? `${leaderNode.address}:${leaderNode.port}` : null,
          }
        : null,
      term: status.term,
      leaseHeld: status.leaseHeld,
      leaseRemainingMs: status.leaseRemainingMs,
      voters: status.voters,
      learners: status.learners,
      members: status.members.map((m) => ({ ...m, name: names.get(m.id) ?? null })),
      answeredBy: node.nodeId,
      // The answering node's own disk, measured now: the store may not take writes to say it.
      disk: node.disk?.() ?? null,
      appliedIndex: view.appliedIndex(),
      snapshotIndex: status.snapshotIndex,
      stateHash: view.stateHash(),
      nodes: view.nodes().map((info) => renderNode(node, info)),
    });
  });

  app.get("/nodes", async (c) => {
    const { view } = await readView(c, node, readQuery);
    return c.json(view.nodes().map((info) => renderNode(node, info)));
  });

  app.get("/nodes/:id", async (c) => {
    const { view } = await readView(c, node, readQuery);
    const id = param(c, "id");
    return c.json(renderNode(node, view.node(id) ?? notFound(`node ${id}`)));
  });

  /** `shoal node rm`: the node leaves the cluster; its tasks are placed elsewhere. */
  app.delete("/nodes/:id", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    const id = param(c, "id");
    const info = viewOf(node).node(id) ?? notFound(`node ${id}`);
    await propose(node, { type: "node.leave", at: node.clock.now(), nodeId: info.id });
    return c.json(renderNode(node, viewOf(node).node(info.id) ?? notFound(`node ${id}`)));
  });

  /** `shoal node drain` and `shoal node activate`. */
  for (const action of ["drain", "activate"] as const) {
    app.post(`/nodes/:id/${action}`, async (c) => {
      parseQuery(c, noQuery);
      await refuseBody(c);
      const id = param(c, "id");
      const info = viewOf(node).node(id) ?? notFound(`node ${id}`);
      await propose(node, { type: `node.${action}`, at: node.clock.now(), nodeId: info.id });
      return c.json(renderNode(node, viewOf(node).node(info.id) ?? notFound(`node ${id}`)));
    });
  }

  /** `shoal node label`: `{ "set": { "zone": "desk" }, "remove": ["rack"] }`. */
  app.post("/nodes/:id/labels", async (c) => {
    parseQuery(c, noQuery);
    const id = param(c, "id");
    const body = await readJson(c, labelChangeSchema);
    const info = viewOf(node).node(id) ?? notFound(`node ${id}`);
    await propose(node, { type: "node.label", at: node.clock.now(), nodeId: info.id, ...body });
    return c.json(renderNode(node, viewOf(node).node(info.id) ?? notFound(`node ${id}`)));
  });

  /** `shoal token rotate`: a new join secret; the old one joins no node from now on. */
  app.post("/cluster/join-token/rotate", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    return c.json({ joinToken: await rotationOf(node).rotateJoinSecret() });
  });

  /** `shoal token rotate --api`: a new API token; the old one gets 401 on every node once applied. */
  app.post("/cluster/api-token/rotate", async (c) => {
    parseQuery(c, noQuery);
    await refuseBody(c);
    return c.json({ apiToken: await rotationOf(node).rotateApiToken() });
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

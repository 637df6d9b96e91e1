// /v1/tasks: run a one-off task, list and inspect tasks, stop one.
import { Hono } from "hono";
import { z } from "zod";
import { ShoalError } from "../../core/errors.ts";
import { taskRunSchema } from "../../state/spec.ts";
import { readJson } from "../body.ts";
import type { ApiNode } from "../context.ts";
import { consistencySchema, noQuery, parseQuery, readQuery } from "../query.ts";
import { renderTask } from "../render.ts";
import { notFound, param, propose, readView, refuseUnallowedHostPaths, viewOf } from "../store.ts";

const listQuery = z.strictObject({
  service: z.string().optional(),
  node: z.string().optional(),
  state: z.enum(["pending", "starting", "running", "stopped", "failed", "lost"]).optional(),
  consistency: consistencySchema.optional(),
});

const stopBody = z.strictObject({ reason: z.string().max(1024).default("stopped by user") });

export function taskRoutes(node: ApiNode): Hono {
  const app = new Hono();

  app.post("/", async (c) => {
    parseQuery(c, noQuery);
    const spec = await readJson(c, taskRunSchema);
    const taskId = node.newId();
    const at = node.clock.now();
    if ("taskDefinition" in spec) {
      const [family = "", revision = "0"] = spec.taskDefinition.split(":");
      if (!viewOf(node).taskDefinition(family, Number(revision))) {
        notFound(`task definition ${spec.taskDefinition}`);
      }
      await propose(node, { type: "task.run", at, taskId, family, revision: Number(revision) });
    } else {
      refuseUnallowedHostPaths(viewOf(node), spec.containers);
      await propose(node, {
        type: "task.run",
        at,
        taskId,
        family: spec.family,
        containers: spec.containers,
      });
    }
    return c.json(renderTask(viewOf(node).task(taskId) ?? notFound(`task ${taskId}`)), 201);
  });

  app.get("/", async (c) => {
    const { view, query } = await readView(c, node, listQuery);
    const { consistency: _, ...filter } = query;
    const nodeId = filter.node ? (view.node(filter.node)?.id ?? filter.node) : undefined;
    return c.json(view.tasks({ ...filter, node: nodeId }).map(renderTask));
  });

  app.get("/:id", async (c) => {
    const { view } = await readView(c, node, readQuery);
    const id = param(c, "id");
    return c.json(renderTask(view.task(id) ?? notFound(`task ${id}`)));
  });

  app.post("/:id/stop", async (c) => {
    parseQuery(c, noQuery);
    const id = param(c, "id");
    const { reason } = await readJson(c, stopBody);
    const task = viewOf(node).task(id) ?? notFound(`task ${id}`);
    if (task.desired === "stopped") {
      throw new ShoalError(
        "E_CONFLICT",
        `task ${id} is already ${task.state === "stopped" ? "stopped" : "stopping"}`,
      );
    }
    await propose(node, { type: "task.stop", at: node.clock.now(), taskId: id, reason });
    return c.json(renderTask(viewOf(node).task(id) ?? notFound(`task ${id}`)));
  });

  return app;
}

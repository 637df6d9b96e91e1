// Task definitions are registered, never changed: each change of containers is a new revision.
import type { ContainerSpec } from "../core/types.ts";
import type { ApplyContext } from "./context.ts";

/** Registers the next revision of `family`; revisions are immutable once registered. */
export function registerTaskDefinition(
  ctx: ApplyContext,
  family: string,
  containers: ContainerSpec[],
): number {
  const revision = ctx.view.latestRevision(family) + 1;
  ctx.run(
    "INSERT INTO task_definitions (family, revision, containers, created_at) VALUES (?, ?, ?, ?)",
    family,
    revision,
    JSON.stringify(containers),
    ctx.at,
  );
  ctx.event({
    type: "taskdef.registered",
    message: `task definition ${family}:${revision} registered`,
  });
  return revision;
}

// The agent's view of the committed store on its own node.
import type { CommandLog } from "../state/command-log.ts";
import type { AgentStore } from "./ports.ts";

/** Reads through `log.view()` each time: a snapshot install replaces the database under it. */
export function localAgentStore(log: CommandLog): AgentStore {
  return {
    clusterId: () => log.view().cluster()?.id ?? "",
    tasksForNode: (nodeId) => log.view().activeTasksForNode(nodeId),
    task: (taskId) => log.view().task(taskId),
    taskDefinition: (family, revision) => log.view().taskDefinition(family, revision),
    service: (name) => log.view().service(name),
    onChange: (listener) => log.onApplied(() => listener()),
  };
}

// The agent's view of the committed store on its own node.
import type { CommandLog } from "../state/command-log.ts";
import type { StateView } from "../state/views.ts";
import type { AgentStore } from "./ports.ts";

export function localAgentStore(view: StateView, log: CommandLog): AgentStore {
  return {
    clusterId: () => view.cluster()?.id ?? "",
    tasksForNode: (nodeId) => view.activeTasksForNode(nodeId),
    task: (taskId) => view.task(taskId),
    taskDefinition: (family, revision) => view.taskDefinition(family, revision),
    onChange: (listener) => log.onApplied(() => listener()),
  };
}

// What the agent needs from the rest of its node: a view of the committed store (this node's
// replica), and a way to report what it observes. Reports are proposed to the replicated log,
// which forwards them to the leader over mutual TLS (agent/local-reporter.ts). Agents act only on
// committed state.
import type { Service, Task, TaskDefinition, TaskReport } from "../core/types.ts";

export interface AgentStore {
  clusterId(): string;
  /** Every task placed on this node that is not yet terminal, or is terminal but desired running. */
  tasksForNode(nodeId: string): Task[];
  /** Looks up one task by id, terminal or not; null when unknown (pruned or never existed). */
  task(taskId: string): Task | null;
  taskDefinition(family: string, revision: number): TaskDefinition | null;
  /** A service by name, for its settings (stopAfterDisconnectMs); null when unknown. */
  service(name: string): Service | null;
  /** Calls `listener` after the store applied commands; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

export interface AgentReporter {
  /** Reports task state changes; resolves once they are committed. */
  reportTasks(reports: TaskReport[]): Promise<void>;
  /** Reports whether this node's container engine answers. */
  reportEngine(ready: boolean, message: string): Promise<void>;
}

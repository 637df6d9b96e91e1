// The scheduler's input and output: an immutable view of state in, a plan out.
import type { Deployment, NodeInfo, Plan, Service, Task, TaskDefinition } from "../core/types.ts";

export interface SchedulerInput {
  nodes: readonly NodeInfo[];
  services: readonly Service[];
  /** Every task definition that a service or a task in this view refers to. */
  taskDefinitions: readonly TaskDefinition[];
  /** The store's active tasks: desired running or not yet ended (still stopping). */
  tasks: readonly Task[];
  /** Deployments in progress: the scheduler marks them done once their tasks are healthy. */
  deployments: readonly Deployment[];
  now: number;
  newId: () => string;
  /** Seeded randomness in [0, 1) for tie-breaks. */
  random: () => number;
}

export interface Evaluation {
  plan: Plan;
  /** When a backoff expires and the scheduler wants to run again, or null. */
  nextEvaluationAt: number | null;
}

/** The bounds an evaluation obeys; `limits` from core by default, smaller ones in tests. */
export interface SchedulerLimits {
  restartBackoffMsMin: number;
  restartBackoffMsMax: number;
  placementsPerPlanMax: number;
  /** A plan is kept to half of this, the bound of one encoded command. */
  commandBytesMax: number;
}

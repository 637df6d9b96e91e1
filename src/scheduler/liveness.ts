// Which nodes the leader marks down, or back up, from when it last heard each one. Pure: the
// leader keeps the times in memory (heartbeats are never written to the log) and passes them in.
import type { NodeInfo } from "../core/types.ts";

export interface LivenessInput {
  nodes: readonly NodeInfo[];
  /** When this leader last heard each node, on its monotonic clock. */
  heardAt: ReadonlyMap<string, number>;
  /**
   * When this leader started leading: every node counts as heard then, so a new leader gives each
   * one a full `downAfterMs` of grace, and no more (Nomad's long reset after a failover is the
   * trap this avoids).
   */
  leadingSince: number;
  now: number;
  downAfterMs: number;
}

export interface LivenessJudgement {
  down: { node: NodeInfo; silentMs: number }[];
  up: NodeInfo[];
}

export function judgeLiveness(input: LivenessInput): LivenessJudgement {
  const { nodes, heardAt, leadingSince, now, downAfterMs } = input;
  const judgement: LivenessJudgement = { down: [], up: [] };
  for (const node of nodes) {
    const heard = heardAt.get(node.id);
    if (node.status === "ready" || node.status === "draining") {
      const silentMs = now - Math.max(heard ?? Number.NEGATIVE_INFINITY, leadingSince);
      if (silentMs > downAfterMs) judgement.down.push({ node, silentMs: Math.round(silentMs) });
    } else if (node.status === "down" && heard !== undefined && now - heard <= downAfterMs) {
      judgement.up.push(node);
    }
  }
  return judgement;
}

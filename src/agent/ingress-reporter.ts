// The node's report of its ingress: when what it listens on differs from what its row says, it
// proposes `node.ingress` (the store keeps it for `service inspect` and `shoal status`, and
// records an event when a port starts or fails to listen). Looked at as often as the node
// heartbeats, so a report a missing leader refused is made again.
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { IngressListening } from "../core/types.ts";
import type { CommandLog } from "../state/command-log.ts";

export interface IngressReporterOptions {
  log: CommandLog;
  nodeId: string;
  /** What the node's ingress does now; ports still opening are left out until they know. */
  statuses: () => IngressListening[];
  now: () => number;
  logger: Logger;
}

/** Starts the reports; returns the function that stops them. */
export function reportIngress(options: IngressReporterOptions): () => void {
  let reporting = false;
  const timer = setInterval(() => {
    if (reporting) return;
    reporting = true;
    void reportOnce(options).finally(() => {
      reporting = false;
    });
  }, limits.agentHeartbeatMs);
  return () => clearInterval(timer);
}

/** One look: proposes when the row says other than the ingress does. */
export async function reportOnce(options: IngressReporterOptions): Promise<void> {
  const { log, nodeId, logger } = options;
  const row = log.view().nodeById(nodeId);
  if (!row || row.status === "left") return;
  const listeners = options.statuses();
  if (JSON.stringify(listeners) === JSON.stringify(row.ingress)) return;
  try {
    const result = await log.propose({
      type: "node.ingress",
      at: options.now(),
      nodeId,
      listeners,
    });
    if (!result.ok) logger.warn({ code: result.code }, "ingress report refused");
  } catch (error) {
    logger.warn({ err: error }, "ingress report failed; it is made again");
  }
}

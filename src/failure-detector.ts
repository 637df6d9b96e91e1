// Failure detection: every node heartbeats to the leader every `agentHeartbeatMs`; the leader
// keeps when it last heard each node in memory (a heartbeat is never a log entry) and, while its
// lease holds, marks down a node silent for `nodeDownAfterMs` (its tasks are then lost and placed
// elsewhere) and marks up a down node it hears again. The judgement is the scheduler's pure
// `judgeLiveness`; each verdict is fenced by the version of the node row it read.
import type { RaftCommandLog } from "./adapters/raft-command-log.ts";
import { limits } from "./core/limits.ts";
import type { NodeInfo } from "./core/types.ts";
import { judgeLiveness } from "./scheduler/liveness.ts";
import type { Command } from "./state/commands.ts";

export interface FailureDetectorOptions {
  log: RaftCommandLog;
  nodeId: string;
  /** Sends this node's heartbeat to the leader (a peer request); rejects when unanswered. */
  heartbeat: (leaderId: string) => Promise<void>;
  /** Wall-clock time for commands. */
  now: () => number;
  logger: { info(object: object, message?: string): void };
}

export class FailureDetector {
  private readonly heardAt = new Map<string, number>();
  private unsubscribe: (() => void) | null = null;
  private leading: { term: number; since: number } | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private judging = false;
  /** When this node last knew a leader holding the lease heard it (monotonic ms). */
  private contactAt: number;

  constructor(private readonly options: FailureDetectorOptions) {
    this.contactAt = options.log.monotonicNow();
  }

  /**
   * How long this node has been cut off from the leader, or null while it is not: no heartbeat
   * answered for `cutOffAfterMs`. Its agent then restarts its own crashed containers and applies
   * the services' `stopAfterDisconnectMs`.
   */
  disconnectedMs(): number | null {
    const silent = this.options.log.monotonicNow() - this.contactAt;
    return silent >= limits.cutOffAfterMs ? silent : null;
  }

  start(): void {
    this.unsubscribe = this.options.log.onApplied((entry) => {
      for (const nodeId of speakers(entry.command)) this.heard(nodeId);
    });
    this.timers.push(setInterval(() => void this.beat(), limits.agentHeartbeatMs));
    this.timers.push(setInterval(() => void this.judge(), limits.livenessCheckMs));
  }

  stop(): void {
    this.unsubscribe?.();
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  /** `nodeId` showed it is alive: a heartbeat, or a command of its own (matters while leading). */
  heard(nodeId: string): void {
    this.heardAt.set(nodeId, this.options.log.monotonicNow());
  }

  private async beat(): Promise<void> {
    const { log, nodeId } = this.options;
    const { role, leader } = log.status();
    if (role === "leader") {
      this.heard(nodeId);
      // A leader that lost its lease is as cut off as any follower without one.
      if (log.isLeader()) this.contactAt = log.monotonicNow();
      return;
    }
    if (!leader) return;
    try {
      await this.options.heartbeat(leader);
      this.contactAt = log.monotonicNow();
    } catch {
      // Unanswered: the silence shows in disconnectedMs().
    }
  }

  /** One round of judgement, while this node holds the lease. */
  private async judge(): Promise<void> {
    const { log } = this.options;
    if (!log.isLeader()) {
      this.leading = null;
      return;
    }
    if (this.judging) return;
    this.judging = true;
    try {
      await this.judgeOnce();
    } finally {
      this.judging = false;
    }
  }

  private async judgeOnce(): Promise<void> {
    const { log } = this.options;
    const now = log.monotonicNow();
    const { term } = log.status();
    if (this.leading?.term !== term) this.leading = { term, since: now };
    this.heard(this.options.nodeId);
    const { down, up } = judgeLiveness({
      nodes: log.view().nodes(),
      heardAt: this.heardAt,
      leadingSince: this.leading.since,
      now,
      downAfterMs: limits.nodeDownAfterMs,
    });
    const at = this.options.now();
    for (const { node, silentMs } of down) {
      const { id: nodeId, rowVersion } = node;
      await this.record(node, { type: "node.down", at, nodeId, rowVersion, silentMs });
    }
    for (const node of up) {
      const { id: nodeId, rowVersion } = node;
      await this.record(node, { type: "node.up", at, nodeId, rowVersion });
    }
  }

  private async record(node: NodeInfo, verdict: Command): Promise<void> {
    const result = await this.options.log.proposeHere(verdict);
    this.options.logger.info(
      { node: node.name, verdict: verdict.type, ok: result.ok },
      "node judged",
    );
  }
}

/**
 * The nodes that spoke through an applied command: a registration (a node that joins, or starts
 * again, before its first heartbeat arrives), an engine report or a task report is proof of life.
 */
function speakers(command: Command): string[] {
  if (command.type === "node.register") return [command.id];
  if (command.type === "node.engine") return [command.nodeId];
  if (command.type === "task.report") return command.reports.map((report) => report.node);
  return [];
}

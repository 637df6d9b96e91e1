// Failure detection. Every node heartbeats to the leader every `agentHeartbeatMs`
// (HeartbeatSender); the leader, while it holds the lease, marks down a node silent for
// `nodeDownAfterMs` (its tasks are then lost and placed elsewhere) and marks up a down node it
// hears again (LivenessJudge, a leader duty). The judgement is the scheduler's pure
// `judgeLiveness`; each verdict is fenced by the version of the node row it read.
import { limits } from "../core/limits.ts";
import type { Timers } from "../core/timers.ts";
import type { NodeInfo } from "../core/types.ts";
import { judgeLiveness } from "../scheduler/liveness.ts";
import type { Command } from "../state/commands.ts";
import type { Heartbeats } from "./heartbeats.ts";
import type { LeaderDuty } from "./leadership.ts";
import type { DutyContext, MemberLog } from "./ports.ts";

export interface HeartbeatSenderOptions {
  log: Pick<MemberLog, "status">;
  nodeId: string;
  heartbeats: Heartbeats;
  /** Whether this node's leader duties run (Leadership.leading): its own lease is its contact. */
  leading: () => boolean;
  /** Sends this node's heartbeat to the leader (a peer request); rejects when unanswered. */
  send: (leaderId: string) => Promise<void>;
  timers: Timers;
}

/** On every node: the heartbeat to the leader, and how long the leader has not answered. */
export class HeartbeatSender {
  private cancel: (() => void) | null = null;
  /** When this node last knew a leader holding the lease heard it (monotonic ms). */
  private contactAt: number;

  constructor(private readonly options: HeartbeatSenderOptions) {
    this.contactAt = options.timers.monotonic();
  }

  start(): void {
    this.cancel ??= this.options.timers.every(limits.agentHeartbeatMs, () => void this.beat());
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }

  /**
   * How long this node has been cut off from the leader, or null while it is not: no heartbeat
   * answered for `cutOffAfterMs`. Its agent then restarts its own crashed containers and applies
   * the services' `stopAfterDisconnectMs`.
   */
  disconnectedMs(): number | null {
    const silent = this.options.timers.monotonic() - this.contactAt;
    return silent >= limits.cutOffAfterMs ? silent : null;
  }

  private async beat(): Promise<void> {
    const { log, nodeId, heartbeats, timers } = this.options;
    const { role, leader } = log.status();
    if (role === "leader") {
      heartbeats.heardFrom(nodeId);
      // A leader that lost its lease is as cut off as any follower without one.
      if (this.options.leading()) this.contactAt = timers.monotonic();
      return;
    }
    if (!leader) return;
    try {
      await this.options.send(leader);
      this.contactAt = timers.monotonic();
    } catch {
      // Unanswered: the silence shows in disconnectedMs().
    }
  }
}

export interface LivenessJudgeOptions extends DutyContext {
  log: Pick<MemberLog, "view" | "proposeHere">;
  heartbeats: Heartbeats;
}

/** The leader's judgement of every node's liveness, each `livenessCheckMs` while it leads. */
export class LivenessJudge implements LeaderDuty {
  readonly name = "liveness";
  private cancel: (() => void) | null = null;
  /** The term led and when its first lease began: a lease regained in that term adds no grace. */
  private leading: { term: number; since: number } | null = null;
  private judging = false;

  constructor(private readonly options: LivenessJudgeOptions) {}

  establish(term: number): void {
    const { timers, heartbeats, nodeId } = this.options;
    if (this.leading?.term !== term) this.leading = { term, since: timers.monotonic() };
    heartbeats.heardFrom(nodeId);
    this.cancel ??= timers.every(limits.livenessCheckMs, () => void this.judge());
  }

  revoke(): void {
    this.cancel?.();
    this.cancel = null;
  }

  private async judge(): Promise<void> {
    if (this.judging || this.cancel === null || this.leading === null) return;
    this.judging = true;
    try {
      await this.judgeOnce(this.leading.since);
    } finally {
      this.judging = false;
    }
  }

  private async judgeOnce(leadingSince: number): Promise<void> {
    const { log, heartbeats, nodeId, timers } = this.options;
    heartbeats.heardFrom(nodeId);
    const { down, up } = judgeLiveness({
      nodes: log.view().nodes(),
      heardAt: heartbeats.heardAt,
      leadingSince,
      now: timers.monotonic(),
      downAfterMs: limits.nodeDownAfterMs,
    });
    const at = this.options.now();
    for (const { node, silentMs } of down) {
      const { id, rowVersion } = node;
      await this.record(node, { type: "node.down", at, nodeId: id, rowVersion, silentMs });
    }
    for (const node of up) {
      const { id, rowVersion } = node;
      await this.record(node, { type: "node.up", at, nodeId: id, rowVersion });
    }
  }

  private async record(node: NodeInfo, verdict: Command): Promise<void> {
    // A verdict still in flight when the lease ends is refused here: E_NOT_LEADER.
    if (this.cancel === null) return;
    const result = await this.options.log.proposeHere(verdict);
    this.options.logger.info(
      { node: node.name, verdict: verdict.type, ok: result.ok },
      "node judged",
    );
  }
}

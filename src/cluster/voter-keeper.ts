// A leader duty, each `memberDutyIntervalMs`: create the cluster row of a new cluster, take out of
// the configuration the nodes that left (demoted first when they vote), hand over when this
// node itself left, and keep 1, 3 or 5 voters (the plan is the scheduler's pure
// `nextMembershipChange`).
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { MembershipChange } from "../raft/types.ts";
import { nextMembershipChange, zonesOf } from "../scheduler/voters.ts";
import { handOverLeadership, reachableMembers } from "./handover.ts";
import type { LeaderDuty } from "./leadership.ts";
import type { MemberLog } from "./ports.ts";

/** What a new cluster's `cluster.init` carries besides its id: its secrets, sealed. */
export interface ClusterSecrets {
  apiTokenHash: string;
  apiTokenSealed: string;
  joinSecretSealed: string;
}

export interface VoterKeeperOptions {
  log: MemberLog;
  nodeId: string;
  clusterId: string;
  newClusterSecrets: () => ClusterSecrets;
  timers: Timers;
  /** Wall-clock time for commands. */
  now: () => number;
  logger: Logger;
}

export class VoterKeeper implements LeaderDuty {
  readonly name = "voters";
  private cancel: (() => void) | null = null;
  private busy = false;

  constructor(private readonly options: VoterKeeperOptions) {}

  establish(): void {
    if (this.cancel) return;
    this.cancel = this.options.timers.every(limits.memberDutyIntervalMs, () => void this.round());
    void this.round();
  }

  revoke(): void {
    this.cancel?.();
    this.cancel = null;
  }

  /** One round; a round still running makes the next one wait its turn. */
  async round(): Promise<void> {
    if (this.busy || this.cancel === null) return;
    this.busy = true;
    try {
      await this.keep();
    } catch (error) {
      this.options.logger.warn({ err: error }, "a leader duty failed; retrying");
    } finally {
      this.busy = false;
    }
  }

  private async keep(): Promise<void> {
    const { log, logger } = this.options;
    if (!log.view().cluster()) {
      await this.createCluster();
      return;
    }
    if (log.view().nodeById(this.options.nodeId)?.status === "left") {
      await handOverLeadership(log, logger);
      return;
    }
    const change = this.departureChange() ?? this.voterChange();
    if (change === null || this.cancel === null) return;
    const applied = await log.changeMembership(change);
    logger.info(
      { change, ok: applied.ok, ...(applied.ok ? {} : { error: applied.message }) },
      "membership change",
    );
  }

  private async createCluster(): Promise<void> {
    const { clusterId } = this.options;
    const created = await this.options.log.proposeHere({
      type: "cluster.init",
      at: this.options.now(),
      clusterId,
      ...this.options.newClusterSecrets(),
    });
    if (created.ok) this.options.logger.info({ cluster: clusterId }, "created");
  }

  /** A node that left on purpose leaves the configuration: demoted first if it votes. */
  private departureChange(): MembershipChange | null {
    const { log, nodeId } = this.options;
    const { voters, learners } = log.status().membership;
    const view = log.view();
    const left = (id: string) => id !== nodeId && view.nodeById(id)?.status === "left";
    const voter = voters.find(left);
    // A demotion needs the remaining voters' quorum, which the voter plan's gate also checks.
    if (voter !== undefined && this.reachableVoters(voters, voter) >= quorumOf(voters.length - 1)) {
      return { type: "demote", member: voter };
    }
    const learner = learners.find(left);
    return learner === undefined ? null : { type: "remove", member: learner };
  }

  private reachableVoters(voters: readonly string[], without: string): number {
    const reachable = reachableMembers(this.options.log);
    return voters.filter((v) => v !== without && (v === this.options.nodeId || reachable.has(v)))
      .length;
  }

  private voterChange(): MembershipChange | null {
    const { log, nodeId } = this.options;
    const status = log.status();
    const followers = log.followers();
    const caughtUp = followers
      .filter((f) => status.lastIndex - f.match <= limits.caughtUpEntriesMax)
      .map((f) => f.id);
    return nextMembershipChange({
      membership: status.membership,
      leader: nodeId,
      reachable: reachableMembers(log),
      caughtUp: new Set(caughtUp),
      zones: zonesOf(log.view().nodes()),
      lastHeardAt: new Map(followers.map((f) => [f.id, f.lastHeardMs])),
      now: log.monotonicNow(),
      voterReplaceAfterMs: limits.voterReplaceAfterMs,
    });
  }
}

function quorumOf(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

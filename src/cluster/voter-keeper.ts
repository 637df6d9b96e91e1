// A leader duty, each `memberDutyIntervalMs`: create the cluster row of a new cluster, take out of
// the configuration the nodes that left (demoted first when they vote), hand over when this
// node itself left, and keep 1, 3 or 5 voters (the plan is the scheduler's pure
// `nextMembershipChange`).
import { limits } from "../core/limits.ts";
import type { MembershipChange } from "../raft/types.ts";
import { nextMembershipChange, zonesOf } from "../scheduler/voters.ts";
import { handOverLeadership, reachableMembers } from "./handover.ts";
import type { LeaderDuty } from "./leadership.ts";
import type { DutyContext, MemberLog } from "./ports.ts";
import { Rounds } from "./rounds.ts";

/** What a new cluster's `cluster.init` carries besides its id: its secrets, sealed. */
export interface ClusterSecrets {
  apiTokenHash: string;
  apiTokenSealed: string;
  joinSecretSealed: string;
}

export interface VoterKeeperOptions extends DutyContext {
  log: MemberLog;
  clusterId: string;
  /** A new cluster's secrets as the store keeps them (its first leader writes cluster.init). */
  newClusterSecrets: () => ClusterSecrets;
}

export class VoterKeeper implements LeaderDuty {
  readonly name = "voters";
  private readonly rounds: Rounds;

  constructor(private readonly options: VoterKeeperOptions) {
    this.rounds = new Rounds(
      options.timers,
      limits.memberDutyIntervalMs,
      () => this.keep(),
      (error) => options.logger.warn({ err: error }, "a leader duty failed; retrying"),
    );
  }

  establish(): void {
    this.rounds.start();
  }

  revoke(): void {
    this.rounds.stop();
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
    if (change === null || !this.rounds.running) return;
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

// The duties a fleet node keeps on a timer besides scheduling. On every node: register itself
// (again after each start, since its address or facts may have changed) and keep the cluster's
// API token in its data dir. On the leader: create the cluster row of a new cluster, and keep 1,
// 3 or 5 voters (the voter plan is the scheduler's pure `nextMembershipChange`).
import type { RaftCommandLog } from "./adapters/raft-command-log.ts";
import { limits } from "./core/limits.ts";
import type { MembershipChange } from "./raft/types.ts";
import { nextMembershipChange, zonesOf } from "./scheduler/voters.ts";
import type { Command } from "./state/commands.ts";

export interface StewardOptions {
  log: RaftCommandLog;
  nodeId: string;
  clusterId: string;
  /** This node's registration, proposed once per start. */
  registration: () => Command;
  /**
   * A new cluster's secrets as the store keeps them: the API token's hash and sealed copy, and
   * the join secret sealed.
   */
  newClusterSecrets: () => {
    apiTokenHash: string;
    apiTokenSealed: string;
    joinSecretSealed: string;
  };
  /** Called with the sealed API token whenever this node's api.token may be missing or stale. */
  onApiToken: (sealed: string) => void;
  /** Called with the sealed join secret whenever this node's join.token may be stale. */
  onJoinSecret: (sealed: string) => void;
  now: () => number;
  logger: {
    info(object: object, message?: string): void;
    warn(object: object, message?: string): void;
  };
}

export class Steward {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private registered = false;
  private apiToken = "";
  private joinSecret = "";

  constructor(private readonly options: StewardOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), limits.stewardIntervalMs);
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Whether this start's registration has been applied. */
  get isRegistered(): boolean {
    return this.registered;
  }

  /** One round of duties; a round still running makes the next one wait its turn. */
  async tick(): Promise<void> {
    if (this.busy || this.timer === null) return;
    this.busy = true;
    try {
      if (this.options.log.isLeader()) await this.leaderDuties();
      if (!this.registered) await this.register();
      // After the duties: a new cluster's row (and its API token) may have just been applied.
      this.keepSecrets();
    } catch (error) {
      this.options.logger.warn({ err: error }, "a fleet duty failed; retrying");
    } finally {
      this.busy = false;
    }
  }

  /** Writes this node's api.token and join.token again once a rotation has been applied. */
  private keepSecrets(): void {
    const cluster = this.options.log.view().cluster();
    if (!cluster) return;
    if (cluster.apiTokenSealed && cluster.apiTokenSealed !== this.apiToken) {
      this.options.onApiToken(cluster.apiTokenSealed);
      this.apiToken = cluster.apiTokenSealed;
    }
    if (cluster.joinSecretSealed && cluster.joinSecretSealed !== this.joinSecret) {
      this.options.onJoinSecret(cluster.joinSecretSealed);
      this.joinSecret = cluster.joinSecretSealed;
    }
  }

  private async register(): Promise<void> {
    // Before the cluster row exists (a new cluster's first moments) there is nothing to join.
    if (!this.options.log.view().cluster()) return;
    const result = await this.options.log.propose(this.options.registration());
    if (result.ok) this.registered = true;
  }

  private async leaderDuties(): Promise<void> {
    const { log } = this.options;
    if (!log.view().cluster()) {
      const created = await log.proposeHere({
        type: "cluster.init",
        at: this.options.now(),
        clusterId: this.options.clusterId,
        ...this.options.newClusterSecrets(),
      });
      if (created.ok) this.options.logger.info({ cluster: this.options.clusterId }, "created");
      return;
    }
    if (log.view().nodeById(this.options.nodeId)?.status === "left") {
      await this.handOverLeadership();
      return;
    }
    const change = this.departureChange() ?? this.voterChange();
    if (change === null) return;
    const applied = await log.changeMembership(change);
    this.options.logger.info(
      { change, ok: applied.ok, ...(applied.ok ? {} : { error: applied.message }) },
      "membership change",
    );
  }

  /**
   * A leader whose own node left gives the lead to the most caught-up voter, which removes it.
   * The only voter first promotes a caught-up learner, or the cluster would be left headless.
   */
  private async handOverLeadership(): Promise<void> {
    if (await this.transferToBestVoter("a departing leader hands over")) return;
    const { log } = this.options;
    const { learners } = log.status().membership;
    const lastIndex = log.status().lastIndex;
    const learner = this.reachableByMatch().find(
      (f) => learners.includes(f.id) && lastIndex - f.match <= limits.caughtUpEntriesMax,
    );
    if (!learner) return;
    const promoted = await log.changeMembership({ type: "promote", member: learner.id });
    this.options.logger.info({ learner: learner.id, ok: promoted.ok }, "promoted a successor");
  }

  /** Reachable followers, the most caught-up first. */
  private reachableByMatch() {
    const reachable = this.reachable();
    return this.options.log
      .followers()
      .filter((f) => reachable.has(f.id))
      .sort((a, b) => b.match - a.match);
  }

  /**
   * Hands leadership to the most caught-up reachable voter (a stopping leader spares the fleet
   * an election timeout). False when this node does not lead or no such voter exists.
   */
  async transferToBestVoter(why: string): Promise<boolean> {
    const { log, nodeId } = this.options;
    if (log.status().role !== "leader") return false;
    const { voters } = log.status().membership;
    const voter = this.reachableByMatch().find((f) => voters.includes(f.id) && f.id !== nodeId);
    if (!voter) return false;
    const moved = await log.transferLeadership(voter.id, limits.transferWaitMs);
    this.options.logger.info({ to: voter.id, ok: moved.ok }, why);
    return true;
  }

  /** For `--leave` on shutdown: hand leadership over (promoting a successor if needed) in time. */
  async departAsLeader(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (this.options.log.status().role === "leader" && Date.now() < deadline) {
      await this.handOverLeadership();
      await new Promise((resolve) => setTimeout(resolve, limits.stewardIntervalMs / 5));
    }
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
    const reachable = this.reachable();
    return voters.filter((v) => v !== without && (v === this.options.nodeId || reachable.has(v)))
      .length;
  }

  private reachable(): Set<string> {
    const { log } = this.options;
    const now = log.monotonicNow();
    return new Set(
      log
        .followers()
        .filter((f) => now - f.lastHeardMs <= limits.memberSilentAfterMs)
        .map((f) => f.id),
    );
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
      reachable: this.reachable(),
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

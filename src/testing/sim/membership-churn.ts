// Membership changes, leadership transfers and wipes in a simulation run, as the voter keeper
// and a fleet's operators make them, with the faults aimed at them: a cut right after a change,
// a leader lost for good after a demotion, an old leader left deaf after it handed over, a voter
// taken out while its link from the leader stalls mid-transfer.
import { quorumSize } from "../../raft/membership.ts";
import type { RaftCore } from "../../raft/raft-core.ts";
import {
  type MemberId,
  type Membership,
  type MembershipChange,
  noMember,
} from "../../raft/types.ts";
import { timingOf } from "./fault-profile.ts";
import { checkWritesCommittedSince } from "./final-checks.ts";
import type { ClientKind, SimMember } from "./sim-member.ts";
import type { Simulation } from "./simulation.ts";

/** How often a membership change is followed at once by another (before the first commits). */
const secondChangeChance = 0.3;
/** How often a membership change is followed at once by a cut between old and new voters. */
const splitOnChangeChance = 0.2;
/** How often a leader that just appended a demotion loses its data dir (in runs with wipes). */
const wipeAfterDemotionChance = 0.3;
/** How often a run with churn ends with a voter taken out while its link stalls. */
const stalledRemovalChance = 0.5;
/** The stalled removal starts this long before the run ends, once clients have stopped. */
const stalledRemovalLeadMs = 2400;
/** How often the stalled removal looks at the leader to take its next step. */
const stalledRemovalPollMs = 20;

/** A voter taken out while the leader's link to it stalls, step by step. */
interface StalledRemoval {
  readonly leader: SimMember;
  readonly term: number;
  readonly target: MemberId;
  /** The transfer has yet to lapse, the demotion or the removal to commit. */
  step: "transfer" | "demote" | "remove";
  /** The index of the change the step waits for. */
  index: number;
  readonly giveUpMs: number;
}

export class MembershipChurn {
  /** A leader that was picked for demotion handed over; the next leader demotes it. */
  private leaderToDemote: MemberId = noMember;
  /** A leader that handed over and hears no one: clients that knew it read from it until then. */
  private deafOldLeader = { id: noMember, untilMs: 0 };

  constructor(private readonly sim: Simulation) {}

  /**
   * A member's data dir is wiped: the process stops and its identity is retired for good
   * (restarting it empty would let it vote again in terms it already voted in). It comes back
   * under a new id with an empty log; the leader removes the old id and adds the new one.
   */
  wipe(): void {
    const leader = this.sim.currentLeader();
    const membership = leader?.core?.status().membership;
    if (membership === undefined) return;
    const candidates = this.sim.members.filter(
      (member) => member.running && membership.voters.includes(member.id),
    );
    if (candidates.length === 0) return;
    this.wipeMember(this.sim.random.pick(candidates));
  }

  private wipeMember(victim: SimMember): void {
    this.sim.wiped.add(victim.id);
    victim.crash();
    const fresh = this.sim.addMember(`${victim.id}w`, { voters: [], learners: [] });
    this.sim.trace.add(`wipe ${victim.id} as ${fresh.id}`);
    fresh.start();
  }

  /**
   * After healing, whoever leads keeps removing retired identities until the run ends: a removal
   * appended by one leader may be lost with its term, and a later leader's configuration can
   * still hold the retired id (seed 67320), so one leader not seeing it is no reason to stop.
   */
  removeWiped(): void {
    const leader = this.sim.currentLeader();
    if (leader && !leader.paused) {
      leader.withCore((core) => {
        const { voters, learners } = core.status().membership;
        const retired = [...voters, ...learners].find((id) => this.sim.wiped.has(id));
        if (retired !== undefined) core.proposeMembership({ type: "remove", member: retired });
      });
    }
    this.sim.queue.after(200, () => this.removeWiped());
  }

  /** Like the voter keeper, whoever leads keeps changing the membership while the faults last. */
  churnMembership(): void {
    if (!this.sim.faultsActive) return;
    this.changeMembership();
    const intervalMs = this.sim.profile.membershipChangeIntervalMs;
    this.sim.queue.after(this.sim.random.between(intervalMs / 2, intervalMs), () =>
      this.churnMembership(),
    );
  }

  changeMembership(): void {
    const leader = this.sim.currentLeader();
    if (!leader || leader.paused) return;
    leader.withCore((core) => {
      const before = core.status().membership.voters;
      if (!this.proposeChange(core)) return;
      // A voter keeper that does not wait for its change to commit asks for the next one at once:
      // the core must refuse it until the first has committed.
      if (this.sim.random.chance(secondChangeChance)) this.proposeChange(core);
      if (this.sim.faultsActive && this.sim.random.chance(splitOnChangeChance)) {
        this.splitOnChange(core, before);
      }
    });
  }

  /**
   * The leader appends a follower's demotion that only that follower receives, and is then
   * lost for good: the demoted member holds the longest log, so the others cannot win without
   * it, and it must still campaign (in the configuration it is no voter of).
   */
  private loseLeaderAfterDemotion(leader: SimMember, demoted: MemberId): void {
    this.sim.network.partition([
      [leader.id, demoted],
      this.sim.ids().filter((id) => id !== leader.id && id !== demoted),
    ]);
    this.sim.queue.after(this.sim.random.between(10, 50), () => {
      if (!this.sim.faultsActive) return;
      // One wipe per run: two lost for good could be a majority.
      if (leader.running && this.sim.wiped.size === 0) this.wipeMember(leader);
      this.sim.network.heal();
    });
  }

  /**
   * Right after a change is appended, the leader and the voters it added are cut from the voters
   * of before: each side may hold a quorum of the configuration it knows, and only one change
   * at a time keeps the two quorums from being disjoint.
   */
  private splitOnChange(core: RaftCore, before: readonly MemberId[]): void {
    const added = core.status().membership.voters.filter((id) => !before.includes(id));
    const side = [core.id, ...added];
    this.sim.network.partition([side, this.sim.ids().filter((id) => !side.includes(id))]);
  }

  /** Proposes one change on a leader's core; whether it was accepted. */
  private proposeChange(core: RaftCore): boolean {
    if (core.status().role !== "leader") return false;
    const change = this.pickMembershipChange(core.status().membership, core.id);
    if (change === null) return false;
    const leader = this.sim.memberById(core.id);
    const demotesOther = change.type === "demote" && change.member !== core.id;
    const loseLeader = this.sim.profile.wipes && this.sim.faultsActive && this.sim.wiped.size === 0;
    if (leader && demotesOther && loseLeader && this.sim.random.chance(wipeAfterDemotionChance)) {
      this.loseLeaderAfterDemotion(leader, change.member);
    }
    if (change.member === core.id && this.sim.answerRandom.chance(0.5)) {
      // As the voter keeper does: it hands over, and the next leader demotes it.
      this.sim.trace.add(`membership ${core.id} ${change.type} ${change.member} hand over first`);
      this.leaderToDemote = core.id;
      this.handOver(core);
      return false;
    }
    const proposed = core.proposeMembership(change);
    this.sim.trace.add(`membership ${core.id} ${change.type} ${change.member} ${proposed.ok}`);
    return proposed.ok;
  }

  /**
   * Retired identities go first, then a departed leader; otherwise any single-server change,
   * with voters kept between `votersMin` (3, or 1 for some seeds) and 5, so that churn runs
   * through 4 and 5 voters, and down to a sole voter. The voter to demote may be the leader.
   */
  private pickMembershipChange(
    membership: Membership,
    leaderId: MemberId,
  ): MembershipChange | null {
    const { voters, learners } = membership;
    const retired = [...voters, ...learners].find((id) => this.sim.wiped.has(id));
    if (retired !== undefined) return { type: "remove", member: retired };
    const handedOver = this.leaderToDemote;
    const { votersMin } = this.sim.profile;
    if (handedOver !== leaderId && voters.includes(handedOver) && voters.length > votersMin) {
      this.leaderToDemote = noMember;
      return { type: "demote", member: handedOver };
    }
    const outsiders = this.sim
      .ids()
      .filter((id) => !voters.includes(id) && !learners.includes(id) && !this.sim.wiped.has(id));
    const options: MembershipChange[] = [];
    const outsider = outsiders[0];
    if (outsider !== undefined) options.push({ type: "addLearner", member: outsider });
    const learner = learners[0];
    if (learner !== undefined) {
      if (voters.length < 5) options.push({ type: "promote", member: learner });
      options.push({ type: "remove", member: learner });
    }
    if (voters.length > votersMin) {
      options.push({ type: "demote", member: this.sim.random.pick(voters) });
    }
    return options.length === 0 ? null : this.sim.random.pick(options);
  }

  transferLeadership(): void {
    const leader = this.sim.currentLeader();
    if (!leader || leader.paused) return;
    leader.withCore((core) => {
      if (core.status().role === "leader") this.handOver(core);
    });
  }

  private handOver(core: RaftCore): void {
    const others = core.status().membership.voters.filter((id) => id !== core.id);
    if (others.length === 0) return;
    core.transferLeadership(this.sim.random.pick(others));
    this.sim.trace.add(`transfer ${core.id}`);
    const deafen =
      this.sim.faultsActive && this.sim.random.chance(this.sim.profile.cutAfterTransferChance);
    if (deafen) this.deafenOldLeader(core.id);
  }

  /**
   * The leader that just handed over stops hearing the others (its own messages, the TimeoutNow
   * among them, still leave), so it leads on in its term until CheckQuorum deposes it while the
   * new leader commits; clients that knew it keep reading from it meanwhile. Only its ReadIndex
   * heartbeat round, which no one answers, keeps those reads from being stale.
   */
  private deafenOldLeader(id: MemberId): void {
    for (const other of this.sim.ids()) if (other !== id) this.sim.network.cutOneWay(other, id);
    const { electionTimeoutMsMax } = timingOf(this.sim.profile);
    this.deafOldLeader = { id, untilMs: this.sim.queue.nowMs + electionTimeoutMsMax * 2 };
    this.sim.faultsHeldUntilMs = this.deafOldLeader.untilMs;
    this.sim.trace.add(`deafen old leader ${id}`);
    this.sim.queue.after(
      electionTimeoutMsMax * 2,
      () => this.sim.faultsActive && this.sim.network.heal(),
    );
  }

  /** A read while an old leader is deaf goes to it half the time. */
  deafOldLeaderFor(kind: ClientKind): SimMember | null {
    const { id, untilMs } = this.deafOldLeader;
    if (this.sim.queue.nowMs >= untilMs || (kind !== "readIndex" && kind !== "leaseRead"))
      return null;
    if (!this.sim.random.chance(0.5)) return null;
    return this.sim.memberById(id) ?? null;
  }

  /** At the heal, under churn: some runs end with a voter taken out while its link stalls. */
  scheduleStalledRemoval(): void {
    if (!this.sim.profile.membershipChanges) return;
    if (!this.sim.answerRandom.chance(stalledRemovalChance)) return;
    const endMs = this.sim.profile.faultPhaseMs + this.sim.profile.healPhaseMs;
    this.sim.queue.at(endMs - stalledRemovalLeadMs, () => this.takeOutStalledVoter());
  }

  /**
   * The leader's link to a voter stalls (a stream whose packets stop moving) just as the leader
   * hands over to it: the timeout-now waits on the link, and the transfer lapses. The voter, silent
   * to the leader, is taken out as the voter keeper takes out a node that left (`shoal node rm`):
   * demoted, then removed. Then the link moves again and what it held arrives in order, the
   * timeout-now first: the removed member, which never learned it was removed, elects itself in
   * the next term with a vote request that skips the vote refusal, and answers the leader's stale
   * heartbeats in that term. The cluster is whole and calm, so writes must keep committing: what a
   * member outside the configuration sends moves no voter's term (as in hashicorp/raft).
   */
  private takeOutStalledVoter(): void {
    const leader = this.sim.currentLeader();
    const core = leader?.core;
    if (!leader || !core || leader.paused) return;
    const status = core.status();
    const { voters, learners } = status.membership;
    if (status.role !== "leader" || status.transferTarget !== noMember || voters.length < 3) return;
    if ([...voters, ...learners].some((id) => this.sim.wiped.has(id))) return;
    const live = (id: MemberId) => this.sim.memberById(id)?.running === true;
    const caughtUp = core
      .followers()
      .filter((follower) => voters.includes(follower.id) && follower.match === status.lastIndex)
      .map((follower) => follower.id)
      .filter(live);
    if (caughtUp.length === 0) return;
    const target = this.sim.answerRandom.pick(caughtUp);
    // Without the target, the others must still make a quorum, or nothing could commit.
    const others = voters.filter((id) => id !== target && live(id));
    if (others.length < quorumSize(voters.length)) return;
    this.sim.network.stall(leader.id, target);
    leader.withCore((leading) => leading.transferLeadership(target));
    this.sim.trace.add(`stalled removal ${target} from ${leader.id}`);
    // Given up in time for the probe before the run's end (a slow clock lapses transfers late).
    const giveUpMs = this.sim.queue.nowMs + stalledRemovalLeadMs - 500;
    const race: StalledRemoval = {
      leader,
      term: status.term,
      target,
      step: "transfer",
      index: 0,
      giveUpMs,
    };
    this.sim.queue.after(stalledRemovalPollMs, () => this.advanceStalledRemoval(race));
  }

  private advanceStalledRemoval(race: StalledRemoval): void {
    const { leader, target } = race;
    const status = leader.core?.status();
    const leads = status?.role === "leader" && status.term === race.term && !leader.paused;
    if (status === undefined || !leads || this.sim.queue.nowMs >= race.giveUpMs) {
      // The race did not play out (a slow clock, a change refused): the stalled connection is
      // reset, so the stale timeout-now never arrives.
      this.sim.network.reset(leader.id, target);
      return;
    }
    const committed = status.commitIndex >= race.index;
    if (race.step === "transfer" && status.transferTarget === noMember) {
      this.proposeInRace(race, { type: "demote", member: target }, "demote");
    } else if (race.step === "demote" && committed) {
      this.proposeInRace(race, { type: "remove", member: target }, "remove");
    } else if (race.step === "remove" && committed && this.everyVoterHolds(leader, race.index)) {
      this.resumeStalledLink(leader.id, target);
      return;
    }
    this.sim.queue.after(stalledRemovalPollMs, () => this.advanceStalledRemoval(race));
  }

  /** Proposes the race's next change; on success the race waits for it to commit. */
  private proposeInRace(
    race: StalledRemoval,
    change: MembershipChange,
    next: StalledRemoval["step"],
  ): void {
    race.leader.withCore((core) => {
      if (core.status().role !== "leader" || race.step === next) return;
      const proposed = core.proposeMembership(change);
      this.sim.trace.add(`membership ${core.id} ${change.type} ${change.member} ${proposed.ok}`);
      if (!proposed.ok) return;
      race.step = next;
      race.index = proposed.value.index;
    });
  }

  /** Whether every voter holds the leader's entry at `index` (the removal reached them all). */
  private everyVoterHolds(leader: SimMember, index: number): boolean {
    const core = leader.core;
    if (!core) return false;
    const { voters } = core.status().membership;
    const matches = new Map(core.followers().map((follower) => [follower.id, follower.match]));
    return voters.every((id) => id === leader.id || (matches.get(id) ?? 0) >= index);
  }

  /** The link moves again; probe writes must commit while the removed member campaigns. */
  private resumeStalledLink(leaderId: MemberId, target: MemberId): void {
    this.sim.network.resume(leaderId, target);
    // Once its vote requests have landed; well within the vote refusal that follows a deposition.
    const sinceMs = this.sim.queue.nowMs + 50;
    const windowMs = timingOf(this.sim.profile).electionTimeoutMsMin / 2;
    this.sim.workload.probe(sinceMs, windowMs);
    this.sim.queue.at(sinceMs + windowMs, () =>
      checkWritesCommittedSince(this.sim, sinceMs, "while a removed member campaigned"),
    );
  }
}

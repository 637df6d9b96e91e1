// The faults of a simulation run, drawn from its seed while the fault phase lasts: partitions
// and one-way cuts, crashes and power losses, pauses, full disks, and the aimed faults that each
// set up one race (a restart into a campaign, a cut new leader, a lost answer, the image race, a
// power cut after a restart); then the healing, which may leave one member deaf for a while,
// and under churn may end the run with a voter taken out while its link stalls.
import { type MemberId, noMember } from "../../raft/types.ts";
import { timingOf } from "./fault-profile.ts";
import { checkWritesCommittedSince, livenessBoundMs } from "./final-checks.ts";
import type { SimMember } from "./sim-member.ts";
import { calmNetwork } from "./sim-network.ts";
import type { Simulation } from "./simulation.ts";

/** Long enough for a lost answer's hand-over, the cut and the heal to play out undisturbed. */
const answerLossHeldMs = 2500;
/** How often a crash in a flush comes with the leader cut off (a power cut hitting both). */
const correlatedLossChance = 0.5;
/** How long a member stays deaf after healing (leaveOneDeaf); well past an election. */
const deafMs = 3000;

export class FaultInjector {
  /** Members an aimed fault wants back soon after their crash. */
  private readonly quickRestarts = new Set<MemberId>();
  /** A forwarder whose answer was lost as its leader handed over to it: cut off once it leads. */
  private forwarderToDepose: MemberId = noMember;
  /** A follower cut off at a leader's compaction, to lag behind its next snapshot. */
  private laggard: { leader: MemberId; follower: MemberId } | null = null;

  constructor(private readonly sim: Simulation) {}

  injectFault(): void {
    if (!this.sim.faultsActive) return;
    const profile = this.sim.profile;
    if (this.sim.queue.nowMs < this.sim.faultsHeldUntilMs) {
      this.sim.queue.after(this.sim.faultsHeldUntilMs - this.sim.queue.nowMs, () =>
        this.injectFault(),
      );
      return;
    }
    const choices: (() => void)[] = [() => this.sim.network.heal()];
    if (profile.partitions) {
      choices.push(() => this.sim.network.partition(this.randomSplit()));
      choices.push(() => this.sim.network.isolate(this.sim.random.pick(this.sim.ids())));
      choices.push(() => this.isolateLeader());
      choices.push(() => this.cutLeaderFromOne());
      choices.push(() =>
        this.sim.network.cutOneWay(
          this.sim.random.pick(this.sim.ids()),
          this.sim.random.pick(this.sim.ids()),
        ),
      );
    }
    if (profile.crashes) choices.push(() => this.sim.random.pick(this.sim.members).crash());
    if (profile.crashes && profile.partitions) choices.push(() => this.restartIntoCampaign());
    if (profile.pauses) choices.push(() => this.pause(this.sim.random.pick(this.sim.members)));
    if (profile.membershipChanges) choices.push(() => this.sim.churn.changeMembership());
    if (profile.wipes && this.sim.wiped.size === 0) choices.push(() => this.sim.churn.wipe());
    if (profile.transfers) choices.push(() => this.sim.churn.transferLeadership());
    if (profile.diskFull) choices.push(() => this.fillDisk(this.sim.random.pick(this.sim.members)));
    this.sim.random.pick(choices)();
    this.sim.queue.after(
      this.sim.random.between(profile.faultIntervalMsMin, profile.faultIntervalMsMax),
      () => this.injectFault(),
    );
  }

  private randomSplit(): MemberId[][] {
    const groups: MemberId[][] = [[], []];
    for (const id of this.sim.ids()) groups[this.sim.random.nextInt(2)]?.push(id);
    return groups;
  }

  /**
   * One follower stops hearing the leader and times out while the others still follow it; half
   * the time the link is broken both ways, so it can only campaign through the others.
   */
  private cutLeaderFromOne(): void {
    const leader = this.sim.currentLeader();
    if (leader === null) return;
    const others = this.sim.ids().filter((id) => id !== leader.id && !this.sim.wiped.has(id));
    if (others.length === 0) return;
    const follower = this.sim.random.pick(others);
    this.sim.network.cutOneWay(leader.id, follower);
    if (this.sim.random.chance(0.5)) this.sim.network.cutOneWay(follower, leader.id);
  }

  /**
   * One follower is cut from the leader and will campaign soon; just before, enough others to
   * make a quorum with it restart, while their acknowledgements still hold up the leader's
   * lease. Only their refusal to vote right after a restart keeps them from electing it while
   * that lease holds. Nothing else happens meanwhile, and clients write nothing new, so the
   * candidate's log stays as up-to-date as theirs.
   */
  private restartIntoCampaign(): void {
    const leader = this.sim.currentLeader();
    const voters = leader?.core?.status().membership.voters ?? [];
    const followers = voters.filter((id) => id !== leader?.id && !this.sim.wiped.has(id));
    const needed = Math.floor(voters.length / 2);
    if (leader === null || followers.length < needed + 1) return;
    const candidate = this.sim.random.pick(followers);
    const others = followers.filter((id) => id !== candidate);
    const restarted = others
      .slice(this.sim.random.nextInt(others.length - needed + 1))
      .slice(0, needed);
    this.sim.network.cutOneWay(leader.id, candidate);
    this.sim.network.cutOneWay(candidate, leader.id);
    const { electionTimeoutMsMin } = timingOf(this.sim.profile);
    const crashInMs = this.sim.random.between(electionTimeoutMsMin / 2, electionTimeoutMsMin);
    this.sim.trace.add(`restart into campaign ${candidate} ${restarted.join(",")} ${crashInMs}`);
    const quietMs = crashInMs + electionTimeoutMsMin * 2;
    this.sim.hushedUntilMs = this.sim.queue.nowMs + quietMs;
    this.sim.faultsHeldUntilMs = this.sim.queue.nowMs + quietMs;
    this.sim.queue.after(crashInMs, () => {
      for (const id of restarted) {
        const member = this.sim.memberById(id);
        if (!this.sim.faultsActive || member === undefined || !member.running) continue;
        member.crash();
        // Back at once, before the leader's next heartbeat reaches it.
        this.sim.queue.after(this.sim.random.between(1, 20), () => {
          if (!member.running && !this.sim.wiped.has(member.id)) member.start();
        });
      }
    });
  }

  private isolateLeader(): void {
    const leader = this.sim.currentLeader();
    if (leader !== null) this.sim.network.isolate(leader.id);
  }

  onBecameLeader(member: SimMember): void {
    this.sim.trace.add(`leader ${member.id} ${member.core?.status().term}`);
    if (member.id === this.forwarderToDepose) this.deposeForwarder(member.id);
    // A voter keeper may act the moment it leads, before its term's first entry has committed.
    const eager = this.sim.profile.membershipChanges && this.sim.faultsActive;
    if (eager && this.sim.random.chance(this.sim.profile.changeOnElectionChance)) {
      this.sim.queue.after(0, () => this.sim.churn.changeMembership());
    }
    if (!this.sim.faultsActive || !this.sim.random.chance(this.sim.profile.isolateNewLeaderChance))
      return;
    // The new leader alone is cut off: earlier cuts heal, so the leaders before it come back
    // with their own stray entries (the races of the Raft paper's figure 8).
    const delayMs = this.sim.random.between(0, this.sim.profile.isolateNewLeaderDelayMsMax);
    const cut = () => this.sim.faultsActive && this.cutNewLeader(member.id);
    if (delayMs === 0) cut();
    else this.sim.queue.after(delayMs, cut);
  }

  /**
   * Alone, or with some others on its side: a new leader that still reaches part of the old
   * configuration can commit there while the members cut from it elect someone else.
   */
  private cutNewLeader(id: MemberId): void {
    if (this.sim.random.chance(0.5)) {
      this.sim.network.isolateAlone(id);
      return;
    }
    const [near, far] = this.randomSplit();
    const withLeader = (near ?? []).filter((other) => other !== id);
    this.sim.network.partition([[id, ...withLeader], (far ?? []).filter((other) => other !== id)]);
  }

  /**
   * A forwarded write applied, and its answer lost as the connection drops, while the leader
   * hands over to the forwarder: the forwarder, holding the write, leads next and proposes its
   * own copy, and is cut off before that copy commits. The caller must hear that the write may
   * have been applied, not that it was refused. Returns whether the answer is lost.
   */
  loseAnswerToForwarder(forwarder: MemberId, leaderId: MemberId, value: unknown): boolean {
    const held = this.sim.queue.nowMs < this.sim.faultsHeldUntilMs;
    if (!this.sim.faultsActive || held || !(value as { ok?: boolean }).ok) return false;
    if (!this.sim.answerRandom.chance(this.sim.profile.loseAnswerToForwarderChance)) return false;
    const core = this.sim.memberById(leaderId)?.core;
    const status = core?.status();
    if (status?.role !== "leader" || !status.membership.voters.includes(forwarder)) return false;
    this.sim.memberById(leaderId)?.withCore((leading) => {
      if (leading.status().role === "leader") leading.transferLeadership(forwarder);
    });
    this.forwarderToDepose = forwarder;
    this.sim.faultsHeldUntilMs = this.sim.queue.nowMs + answerLossHeldMs;
    this.sim.queue.after(answerLossHeldMs, () => {
      this.forwarderToDepose = noMember;
    });
    this.sim.trace.add(`lose answer ${leaderId} -> ${forwarder}`);
    return true;
  }

  /** Cut off soon after it leads, and back once the others have elected a leader of their own. */
  private deposeForwarder(id: MemberId): void {
    this.forwarderToDepose = noMember;
    const { electionTimeoutMsMax } = timingOf(this.sim.profile);
    const cutInMs = this.sim.answerRandom.between(0, 40);
    this.sim.queue.after(cutInMs, () => this.sim.faultsActive && this.sim.network.isolateAlone(id));
    const healInMs = cutInMs + electionTimeoutMsMax + 300;
    this.sim.queue.after(healInMs, () => this.sim.faultsActive && this.sim.network.heal());
    this.sim.trace.add(`depose ${id} in ${cutInMs}`);
  }

  /** A member's disk is full for a while: its log waits, and must lose nothing it took. */
  private fillDisk(member: SimMember): void {
    if (member.fullness.full) return;
    const durationMs = this.sim.random.between(50, 4000);
    member.fullness.full = true;
    this.sim.trace.add(`disk full ${member.id} ${durationMs}`);
    this.sim.queue.after(durationMs, () => {
      member.fullness.full = false;
    });
  }

  private pause(member: SimMember): void {
    if (!member.running || member.paused) return;
    const durationMs = this.sim.random.between(50, this.sim.profile.pauseMsMax);
    member.pausedUntilMs = this.sim.queue.nowMs + durationMs;
    this.sim.trace.add(`pause ${member.id} ${durationMs}`);
    this.sim.queue.at(member.pausedUntilMs, () => member.resume());
  }

  /** How likely a member's flush is to be cut short by a crash now. */
  crashChance(member: SimMember, compacting: boolean): number {
    if (!this.sim.faultsActive) return 0;
    const { crashes, crashInReadyChance, crashInCompactionChance } = this.sim.profile;
    if (!compacting || !crashes) return crashInReadyChance;
    if (this.imageRace(member)) return 1;
    return Math.max(crashInReadyChance, crashInCompactionChance);
  }

  /**
   * Images of two indexes on one disk: a leader of three voters compacts, and one follower is
   * cut off then; at a later compaction, once that follower is behind the snapshot the log
   * records, the leader crashes in its flush (the new image written, the log not yet recording
   * it), and comes back with the follower only, whose vote makes it leader again. Its first
   * round sends that follower the recorded snapshot, with the image of that index and no other.
   * Returns whether the crash is due.
   */
  private imageRace(leader: SimMember): boolean {
    const status = leader.core?.status();
    const voters = status?.membership.voters ?? [];
    if (status?.role !== "leader" || voters.length !== 3) return false;
    const race = this.laggard;
    if (race === null) {
      if (!this.sim.random.chance(this.sim.profile.imageRaceChance)) return false;
      const follower = this.sim.random.pick(voters.filter((id) => id !== leader.id));
      this.laggard = { leader: leader.id, follower };
      this.sim.network.isolate(follower);
      this.sim.faultsHeldUntilMs = Math.max(
        this.sim.faultsHeldUntilMs,
        this.sim.queue.nowMs + 1500,
      );
      this.sim.trace.add(`image race: ${follower} lags ${leader.id}`);
      return false;
    }
    const lagging = this.sim.memberById(race.follower)?.core?.status().lastIndex ?? 0;
    if (race.leader !== leader.id || lagging >= leader.disk.durable.snapshotIndex()) return false;
    this.laggard = null;
    const pair = [leader.id, race.follower];
    this.sim.network.partition([pair, this.sim.ids().filter((id) => !pair.includes(id))]);
    this.sim.faultsHeldUntilMs = this.sim.queue.nowMs + 2000;
    this.quickRestarts.add(leader.id);
    // A power loss: the state falls back to the recorded snapshot's image, and the commit
    // index written with the compaction is lost too, so nothing is applied before it leads
    // (without one, the restart would compact to the newer image at once).
    leader.nextCrashPowerLoss = true;
    this.sim.trace.add(`image race: ${leader.id} crashes in its compaction`);
    return true;
  }

  crashingInFlush(member: SimMember): void {
    if (this.sim.random.chance(this.sim.profile.powerCutAfterRestartChance))
      this.powerCutAfterRestart(member);
    else this.alsoLoseLeader(member);
  }

  /**
   * A follower about to crash with unflushed writes, while the leader reaches no one else: the
   * follower restarts over what its crashed process left in the page cache, the leader sends the
   * entries again and counts its answer, and the power goes before the follower's next flush
   * (clients are hushed, so no new entry comes to flush). Then the leader is cut off and the
   * others elect a leader without those entries. Only the flush at open, before the restarted
   * process reads its log, keeps it from acknowledging what it then loses.
   */
  private powerCutAfterRestart(member: SimMember): void {
    const leader = this.sim.currentLeader();
    const voters = leader?.core?.status().membership.voters ?? [];
    if (leader === null || leader === member || !voters.includes(member.id)) return;
    // The leader keeps just enough followers to commit with the restarted member's answer, so
    // that without it those entries are on a minority.
    const others = voters.filter((id) => id !== leader.id && id !== member.id);
    const kept = others.slice(0, Math.floor(voters.length / 2) - 1);
    const near = [leader.id, ...kept];
    const far = this.sim.ids().filter((id) => !near.includes(id) && id !== member.id);
    this.sim.network.partition([near, far]);
    this.sim.trace.add(`power cut after restart ${member.id} leader ${leader.id}`);
    const heldMs = this.sim.profile.downMsMax + 1000;
    this.sim.hushedUntilMs = this.sim.queue.nowMs + heldMs;
    this.sim.faultsHeldUntilMs = this.sim.queue.nowMs + heldMs;
    member.nextCrashPowerLoss = false;
    member.onNextStart = () => {
      this.sim.queue.after(this.sim.random.between(20, 150), () => {
        if (!this.sim.faultsActive || !member.running) return;
        member.crash(true);
        this.sim.network.partition([near, [...far, member.id]]);
      });
    };
  }

  /**
   * A follower about to crash with unflushed writes, and the leader cut off at the same time:
   * what it acknowledged must have been on its disk, or a write the leader committed with its
   * acknowledgement is lost with the next leader.
   */
  private alsoLoseLeader(member: SimMember): void {
    const leader = this.sim.currentLeader();
    if (leader === null || leader === member || !this.sim.random.chance(correlatedLossChance))
      return;
    this.sim.trace.add(`lose leader ${leader.id} with ${member.id}`);
    this.sim.queue.after(this.sim.random.between(0, 5), () => {
      if (this.sim.faultsActive) this.sim.network.isolate(leader.id);
    });
  }

  scheduleRestart(member: SimMember): void {
    const quick = this.quickRestarts.delete(member.id);
    const downMs = this.sim.random.between(20, quick ? 100 : this.sim.profile.downMsMax);
    this.sim.queue.after(downMs, () => {
      if (!member.running && !this.sim.wiped.has(member.id)) member.start();
    });
  }

  heal(): void {
    this.sim.faultsActive = false;
    this.sim.hushedUntilMs = 0;
    this.sim.trace.add("heal");
    this.sim.network.healForGood();
    this.sim.network.setFaults(calmNetwork);
    for (const member of this.sim.members) member.fullness.full = false;
    this.sim.churn.removeWiped();
    for (const member of this.sim.members) {
      if (this.sim.wiped.has(member.id)) continue;
      if (!member.running) member.start();
      else if (member.paused) {
        member.pausedUntilMs = this.sim.queue.nowMs;
        member.resume();
      }
    }
    if (this.sim.random.chance(this.sim.profile.lingeringDeafChance)) this.leaveOneDeaf();
    this.sim.churn.scheduleStalledRemoval();
  }

  /**
   * One member's receive path stays broken for a while after the rest heals (a Pi whose Wi-Fi
   * only sends), most often the leader's: it still reaches everyone but hears no one. A majority
   * remains whole, so writes must commit while it lasts; a leader that cannot tell it lost its
   * quorum would hold the others back with its heartbeats.
   */
  private leaveOneDeaf(): void {
    const leader = this.sim.currentLeader();
    const membership = leader?.core?.status().membership;
    if (leader === null || membership === undefined) return;
    const running = this.sim.members.filter(
      (member) => member.running && !this.sim.wiped.has(member.id),
    );
    const deaf = this.sim.random.chance(0.7) ? leader : this.sim.random.pick(running);
    const whole = membership.voters.filter(
      (id) =>
        id !== deaf.id && !this.sim.wiped.has(id) && this.sim.memberById(id)?.running === true,
    );
    if (whole.length < Math.floor(membership.voters.length / 2) + 1) return;
    this.sim.trace.add(`deaf ${deaf.id}`);
    for (const other of this.sim.ids()) this.sim.network.cutOneWay(other, deaf.id);
    const sinceMs = this.sim.queue.nowMs;
    this.sim.workload.probe(sinceMs + livenessBoundMs / 2, deafMs - livenessBoundMs / 2);
    this.sim.queue.after(deafMs, () => {
      checkWritesCommittedSince(this.sim, sinceMs, "while one member was deaf");
      this.sim.network.heal();
    });
  }
}

// The deterministic simulator: 1 to 7 members running the real Raft host (its pipeline and
// client sessions over the real core) on simulated disks, over a faulty network, with crashes,
// power losses, pauses, drifting clocks, membership changes, leadership transfers and a client
// workload that writes and reads through every member, all from one seed. A fault phase is followed by a healing phase; checkers
// watch throughout and at the end.
import { AssertionError } from "../../core/assert.ts";
import { ShoalError } from "../../core/errors.ts";
import type { HostBugs } from "../../raft/host/ports.ts";
import type { RaftCore, RaftTiming } from "../../raft/raft-core.ts";
import { SeededRandom } from "../../raft/seeded-random.ts";
import type {
  Entry,
  MemberId,
  Membership,
  MembershipChange,
  Message,
  RaftBugs,
} from "../../raft/types.ts";
import { noMember } from "../../raft/types.ts";
import { checkAcknowledgedWrite, checkLogMatching, SafetyChecker, Violation } from "./checkers.ts";
import { EventQueue } from "./event-queue.ts";
import { drawProfile, type FaultProfile } from "./fault-profile.ts";
import type { KvResult } from "./kv-machine.ts";
import { checkHistory, type KvOperation, verdictFailure } from "./linearizability.ts";
import type { ClientKind, ClientOperation, MemberEnvironment } from "./sim-member.ts";
import { SimMember } from "./sim-member.ts";
import { calmNetwork, SimNetwork } from "./sim-network.ts";
import { TraceHash } from "./trace-hash.ts";

function timingOf(profile: FaultProfile): RaftTiming {
  return {
    heartbeatMs: 100,
    electionTimeoutMsMin: 500,
    electionTimeoutMsMax: 500 + profile.electionJitterMs,
    clockDriftMax: profile.clockDriftMax,
  };
}

/** A client gives up on an answer after this long: the outcome is then unknown. */
const operationTimeoutMs = 2000;
/** A client whose call has not returned after this long is replaced by a new one. */
const clientPatienceMs = 1000;
/** How often a membership change is followed at once by another (before the first commits). */
const secondChangeChance = 0.3;
/** How often a membership change is followed at once by a cut between old and new voters. */
const splitOnChangeChance = 0.2;
/** Long enough for a lost answer's hand-over, the cut and the heal to play out undisturbed. */
const answerLossHeldMs = 2500;
/** Keeps the lost answer's draws apart from every other stream of the seed. */
const answerSeedOffset = 0x5eed_a115;
/** How often a leader that just appended a demotion loses its data dir (in runs with wipes). */
const wipeAfterDemotionChance = 0.3;
/** How often a crash in a flush comes with the leader cut off (a power cut hitting both). */
const correlatedLossChance = 0.5;
/** How often the liveness checks send a probe write to the leader while they watch. */
const probeEveryMs = 300;
/** After healing, a leader must exist and writes must commit within this bound. */
const livenessBoundMs = 3000;
/** How long a member stays deaf after healing (leaveOneDeaf); well past an election. */
const deafMs = 3000;

export interface SimulationOptions {
  readonly seed: number;
  readonly bugs?: RaftBugs;
  /** Deliberate defects of the host pipeline and sessions (mutant campaigns only). */
  readonly hostBugs?: HostBugs;
  /** Only outcomes count as violations, not the checks of mechanisms (mutant campaigns). */
  readonly outcomesOnly?: boolean;
  /** False switches fencing off in the state machine, to show the checkers catch that. */
  readonly fencing?: boolean;
  /** Overrides of the profile drawn from the seed. */
  readonly profile?: Partial<FaultProfile>;
}

export interface SimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violation: string | null;
  readonly traceHash: string;
  readonly members: number;
  readonly events: number;
  readonly committed: number;
  readonly operations: { readonly ok: number; readonly failed: number; readonly unknown: number };
  /** Members whose data dir was wiped (they rejoined under new ids). */
  readonly wiped: number;
  /** Fenced writes the state machine refused because their key changed after the read. */
  readonly fencedRefused: number;
  /** Times a member's full disk held its log (profile `diskFull`). */
  readonly logHolds: number;
  /** Client writes refused with E_NO_SPACE (profile `diskFull`). */
  readonly refusedNoSpace: number;
  readonly simulatedMs: number;
}

export class Simulation {
  readonly random: SeededRandom;
  readonly queue = new EventQueue();
  readonly trace = new TraceHash();
  readonly checker = new SafetyChecker();
  readonly profile: FaultProfile;
  readonly members: SimMember[] = [];
  readonly network: SimNetwork;
  private readonly operations: ClientOperation[] = [];
  private nextOperationId = 1;
  /** Identities retired with their data dir; they never run again. */
  private readonly wiped = new Set<MemberId>();
  /** A leader that was picked for demotion handed over; the next leader demotes it. */
  private leaderToDemote: MemberId = noMember;
  private memberEnvironment: MemberEnvironment | null = null;
  private readonly clockRandom: SeededRandom;
  private faultsActive = true;
  private events = 0;
  private logHolds = 0;
  private refusedNoSpace = 0;
  /** Clients send nothing new until then (an aimed fault wants logs to stay equal). */
  private hushedUntilMs = 0;
  /** No new fault until then: an aimed fault plays out undisturbed. */
  private faultsHeldUntilMs = 0;
  /** A leader that handed over and hears no one: clients that knew it read from it until then. */
  private deafOldLeader = { id: noMember, untilMs: 0 };
  /** Members an aimed fault wants back soon after their crash. */
  private readonly quickRestarts = new Set<MemberId>();
  /** A forwarder whose answer was lost as its leader handed over to it: cut off once it leads. */
  private forwarderToDepose: MemberId = noMember;
  /**
   * Draws for the lost answer and for how the driver demotes a leader, apart from the main
   * stream, so that the lost answer's draws leave the rest of a seed's faults where they were.
   */
  private readonly answerRandom: SeededRandom;
  /** A follower cut off at a leader's compaction, to lag behind its next snapshot. */
  private laggard: { leader: MemberId; follower: MemberId } | null = null;
  /** Async work in flight (client calls, peer routes): its promises settle between events. */
  private pendingAsync = 0;
  private asyncFailure: unknown = null;
  /** Where and when each write was first applied (a resent forwarded write applies once). */
  private readonly appliedAt = new Map<number, { index: number; timeMs: number }>();

  constructor(private readonly options: SimulationOptions) {
    this.random = new SeededRandom(options.seed);
    this.profile = { ...drawProfile(this.random.fork()), ...options.profile };
    this.clockRandom = this.random.fork();
    this.answerRandom = new SeededRandom(options.seed + answerSeedOffset);
    this.checker.checkLeases = this.profile.driftMode !== "beyond";
    this.checker.checkMechanisms = !options.outcomesOnly;
    this.createMembers();
    this.network = new SimNetwork(
      this.queue,
      this.random.fork(),
      this.trace,
      () => this.ids(),
      (message) => this.memberById(message.to)?.receive(message),
      (id, index) => this.memberById(id)?.core?.termAt(index),
    );
    this.network.setFaults(this.profile.network);
  }

  private createMembers(): void {
    const founders = Array.from(
      { length: this.profile.members },
      (_, position) => `m${position + 1}`,
    );
    const spares = Array.from({ length: this.profile.spares }, (_, position) => `s${position + 1}`);
    const bootstrap: Membership = { voters: founders, learners: [] };
    for (const id of [...founders, ...spares]) {
      this.addMember(id, founders.includes(id) ? bootstrap : { voters: [], learners: [] });
    }
  }

  private addMember(id: MemberId, bootstrap: Membership): SimMember {
    this.memberEnvironment ??= this.environment();
    const drift = this.drawDrift(this.clockRandom);
    const offset = this.clockRandom.between(0, 1_000_000);
    const member = new SimMember(id, this.memberEnvironment, offset, drift, bootstrap);
    this.members.push(member);
    return member;
  }

  private drawDrift(random: SeededRandom): number {
    const bound = this.profile.clockDriftMax;
    switch (this.profile.driftMode) {
      case "within":
        return (random.next() * 2 - 1) * bound * 0.999;
      case "bound":
        return random.chance(0.5) ? bound : -bound;
      case "beyond":
        // Just past the bound: leases may overlap, fencing must keep the state correct.
        return (random.chance(0.5) ? 1 : -1) * bound * (1.2 + random.next() * 0.8);
    }
  }

  private environment(): MemberEnvironment {
    return {
      queue: this.queue,
      checker: this.checker,
      trace: this.trace,
      random: this.random.fork(),
      timing: timingOf(this.profile),
      flowControl: {
        appendEntriesMax: this.profile.appendEntriesMax,
        inflightMessagesMax: this.profile.inflightMessagesMax,
      },
      bugs: this.options.bugs ?? {},
      hostBugs: this.options.hostBugs ?? {},
      fencing: this.options.fencing ?? true,
      compactEvery: this.profile.compactEvery,
      crashChance: (member, compacting) => this.crashChance(member, compacting),
      powerLossChance: this.profile.powerLossChance,
      disk: () => (this.faultsActive ? this.profile.disk : calmDisk),
      replyInRequestChance: this.profile.replyInRequestChance,
      send: (message: Message) => this.network.send(message),
      call: (from, to, kind, body, timeoutMs) => this.call(from, to, kind, body, timeoutMs),
      applied: (member, entry, result) => this.onApplied(member.id, entry, result),
      pending: (delta) => {
        this.pendingAsync += delta;
      },
      asyncError: (error) => {
        this.asyncFailure ??= error;
      },
      crashed: (member: SimMember) => this.scheduleRestart(member),
      crashingInFlush: (member: SimMember) => this.crashingInFlush(member),
      refusedNoSpace: () => {
        this.refusedNoSpace++;
      },
      logHeld: (member: SimMember) => {
        this.logHolds++;
        this.trace.add(`log held ${member.id}`);
      },
      becameLeader: (member: SimMember) => this.onBecameLeader(member),
      complete: (operation, outcome) => this.complete(operation, outcome),
      forwardFenced: (operation, version) => this.forwardFenced(operation, version),
    };
  }

  memberById(id: MemberId): SimMember | undefined {
    return this.members.find((member) => member.id === id);
  }

  async run(): Promise<SimulationResult> {
    let violation: string | null = null;
    const endMs = this.profile.faultPhaseMs + this.profile.healPhaseMs;
    try {
      this.schedule(endMs);
      while (this.queue.runNext(endMs)) {
        this.events++;
        // The sessions' continuations run before the next event, as they would on a node.
        if (this.pendingAsync > 0) await settleContinuations();
        if (this.asyncFailure !== null) throw this.asyncFailure;
        this.checkLeases();
      }
      this.finalChecks();
    } catch (error) {
      if (!(error instanceof Violation) && !(error instanceof AssertionError)) throw error;
      violation = error instanceof Violation ? error.message : `assertion: ${error.message}`;
    }
    return this.result(violation);
  }

  private schedule(endMs: number): void {
    for (const member of this.members) member.start();
    this.queue.at(this.random.between(200, 600), () => this.injectFault());
    this.queue.at(1, () => this.issueOperation(endMs));
    if (this.profile.membershipChanges) this.queue.at(1, () => this.churnMembership());
    this.queue.at(this.profile.faultPhaseMs, () => this.heal());
    this.queue.at(this.profile.faultPhaseMs + livenessBoundMs, () => this.checkLeaderExists());
    this.probe(this.profile.faultPhaseMs + livenessBoundMs, livenessBoundMs / 2);
  }

  /** A probe write every few hundred milliseconds from `fromMs`, for `forMs`. */
  private probe(fromMs: number, forMs: number): void {
    for (let atMs = fromMs; atMs < fromMs + forMs; atMs += probeEveryMs) {
      this.queue.at(atMs, () => this.startOperation(true));
    }
  }

  // ---- Faults -----------------------------------------------------------------------------

  private injectFault(): void {
    if (!this.faultsActive) return;
    const profile = this.profile;
    if (this.queue.nowMs < this.faultsHeldUntilMs) {
      this.queue.after(this.faultsHeldUntilMs - this.queue.nowMs, () => this.injectFault());
      return;
    }
    const choices: (() => void)[] = [() => this.network.heal()];
    if (profile.partitions) {
      choices.push(() => this.network.partition(this.randomSplit()));
      choices.push(() => this.network.isolate(this.random.pick(this.ids())));
      choices.push(() => this.isolateLeader());
      choices.push(() => this.cutLeaderFromOne());
      choices.push(() =>
        this.network.cutOneWay(this.random.pick(this.ids()), this.random.pick(this.ids())),
      );
    }
    if (profile.crashes) choices.push(() => this.random.pick(this.members).crash());
    if (profile.crashes && profile.partitions) choices.push(() => this.restartIntoCampaign());
    if (profile.pauses) choices.push(() => this.pause(this.random.pick(this.members)));
    if (profile.membershipChanges) choices.push(() => this.changeMembership());
    if (profile.wipes && this.wiped.size === 0) choices.push(() => this.wipe());
    if (profile.transfers) choices.push(() => this.transferLeadership());
    if (profile.diskFull) choices.push(() => this.fillDisk(this.random.pick(this.members)));
    this.random.pick(choices)();
    this.queue.after(
      this.random.between(profile.faultIntervalMsMin, profile.faultIntervalMsMax),
      () => this.injectFault(),
    );
  }

  private ids(): MemberId[] {
    return this.members.map((member) => member.id);
  }

  private randomSplit(): MemberId[][] {
    const groups: MemberId[][] = [[], []];
    for (const id of this.ids()) groups[this.random.nextInt(2)]?.push(id);
    return groups;
  }

  /**
   * One follower stops hearing the leader and times out while the others still follow it; half
   * the time the link is broken both ways, so it can only campaign through the others.
   */
  private cutLeaderFromOne(): void {
    const leader = this.currentLeader();
    if (leader === null) return;
    const others = this.ids().filter((id) => id !== leader.id && !this.wiped.has(id));
    if (others.length === 0) return;
    const follower = this.random.pick(others);
    this.network.cutOneWay(leader.id, follower);
    if (this.random.chance(0.5)) this.network.cutOneWay(follower, leader.id);
  }

  /**
   * One follower is cut from the leader and will campaign soon; just before, enough others to
   * make a quorum with it restart, while their acknowledgements still hold up the leader's
   * lease. Only their refusal to vote right after a restart keeps them from electing it while
   * that lease holds. Nothing else happens meanwhile, and clients write nothing new, so the
   * candidate's log stays as up-to-date as theirs.
   */
  private restartIntoCampaign(): void {
    const leader = this.currentLeader();
    const voters = leader?.core?.status().membership.voters ?? [];
    const followers = voters.filter((id) => id !== leader?.id && !this.wiped.has(id));
    const needed = Math.floor(voters.length / 2);
    if (leader === null || followers.length < needed + 1) return;
    const candidate = this.random.pick(followers);
    const others = followers.filter((id) => id !== candidate);
    const restarted = others
      .slice(this.random.nextInt(others.length - needed + 1))
      .slice(0, needed);
    this.network.cutOneWay(leader.id, candidate);
    this.network.cutOneWay(candidate, leader.id);
    const { electionTimeoutMsMin } = timingOf(this.profile);
    const crashInMs = this.random.between(electionTimeoutMsMin / 2, electionTimeoutMsMin);
    this.trace.add(`restart into campaign ${candidate} ${restarted.join(",")} ${crashInMs}`);
    const quietMs = crashInMs + electionTimeoutMsMin * 2;
    this.hushedUntilMs = this.queue.nowMs + quietMs;
    this.faultsHeldUntilMs = this.queue.nowMs + quietMs;
    this.queue.after(crashInMs, () => {
      for (const id of restarted) {
        const member = this.memberById(id);
        if (!this.faultsActive || member === undefined || !member.running) continue;
        member.crash();
        // Back at once, before the leader's next heartbeat reaches it.
        this.queue.after(this.random.between(1, 20), () => {
          if (!member.running && !this.wiped.has(member.id)) member.start();
        });
      }
    });
  }

  private isolateLeader(): void {
    const leader = this.currentLeader();
    if (leader !== null) this.network.isolate(leader.id);
  }

  private onBecameLeader(member: SimMember): void {
    this.trace.add(`leader ${member.id} ${member.core?.status().term}`);
    if (member.id === this.forwarderToDepose) this.deposeForwarder(member.id);
    // A voter keeper may act the moment it leads, before its term's first entry has committed.
    const eager = this.profile.membershipChanges && this.faultsActive;
    if (eager && this.random.chance(this.profile.changeOnElectionChance)) {
      this.queue.after(0, () => this.changeMembership());
    }
    if (!this.faultsActive || !this.random.chance(this.profile.isolateNewLeaderChance)) return;
    // The new leader alone is cut off: earlier cuts heal, so the leaders before it come back
    // with their own stray entries (the races of the Raft paper's figure 8).
    const delayMs = this.random.between(0, this.profile.isolateNewLeaderDelayMsMax);
    const cut = () => this.faultsActive && this.cutNewLeader(member.id);
    if (delayMs === 0) cut();
    else this.queue.after(delayMs, cut);
  }

  /**
   * Alone, or with some others on its side: a new leader that still reaches part of the old
   * configuration can commit there while the members cut from it elect someone else.
   */
  private cutNewLeader(id: MemberId): void {
    if (this.random.chance(0.5)) {
      this.network.isolateAlone(id);
      return;
    }
    const [near, far] = this.randomSplit();
    const withLeader = (near ?? []).filter((other) => other !== id);
    this.network.partition([[id, ...withLeader], (far ?? []).filter((other) => other !== id)]);
  }

  /**
   * A forwarded write applied, and its answer lost as the connection drops, while the leader
   * hands over to the forwarder: the forwarder, holding the write, leads next and proposes its
   * own copy, and is cut off before that copy commits. The caller must hear that the write may
   * have been applied, not that it was refused. Returns whether the answer is lost.
   */
  private loseAnswerToForwarder(forwarder: MemberId, leaderId: MemberId, value: unknown): boolean {
    const held = this.queue.nowMs < this.faultsHeldUntilMs;
    if (!this.faultsActive || held || !(value as { ok?: boolean }).ok) return false;
    if (!this.answerRandom.chance(this.profile.loseAnswerToForwarderChance)) return false;
    const core = this.memberById(leaderId)?.core;
    const status = core?.status();
    if (status?.role !== "leader" || !status.membership.voters.includes(forwarder)) return false;
    this.memberById(leaderId)?.withCore((leading) => {
      if (leading.status().role === "leader") leading.transferLeadership(forwarder);
    });
    this.forwarderToDepose = forwarder;
    this.faultsHeldUntilMs = this.queue.nowMs + answerLossHeldMs;
    this.queue.after(answerLossHeldMs, () => {
      this.forwarderToDepose = noMember;
    });
    this.trace.add(`lose answer ${leaderId} -> ${forwarder}`);
    return true;
  }

  /** Cut off soon after it leads, and back once the others have elected a leader of their own. */
  private deposeForwarder(id: MemberId): void {
    this.forwarderToDepose = noMember;
    const { electionTimeoutMsMax } = timingOf(this.profile);
    const cutInMs = this.answerRandom.between(0, 40);
    this.queue.after(cutInMs, () => this.faultsActive && this.network.isolateAlone(id));
    const healInMs = cutInMs + electionTimeoutMsMax + 300;
    this.queue.after(healInMs, () => this.faultsActive && this.network.heal());
    this.trace.add(`depose ${id} in ${cutInMs}`);
  }

  /** A member's disk is full for a while: its log waits, and must lose nothing it took. */
  private fillDisk(member: SimMember): void {
    if (member.fullness.full) return;
    const durationMs = this.random.between(50, 4000);
    member.fullness.full = true;
    this.trace.add(`disk full ${member.id} ${durationMs}`);
    this.queue.after(durationMs, () => {
      member.fullness.full = false;
    });
  }

  private pause(member: SimMember): void {
    if (!member.running || member.paused) return;
    const durationMs = this.random.between(50, this.profile.pauseMsMax);
    member.pausedUntilMs = this.queue.nowMs + durationMs;
    this.trace.add(`pause ${member.id} ${durationMs}`);
    this.queue.at(member.pausedUntilMs, () => member.resume());
  }

  /** How likely a member's flush is to be cut short by a crash now. */
  private crashChance(member: SimMember, compacting: boolean): number {
    if (!this.faultsActive) return 0;
    const { crashes, crashInReadyChance, crashInCompactionChance } = this.profile;
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
      if (!this.random.chance(this.profile.imageRaceChance)) return false;
      const follower = this.random.pick(voters.filter((id) => id !== leader.id));
      this.laggard = { leader: leader.id, follower };
      this.network.isolate(follower);
      this.faultsHeldUntilMs = Math.max(this.faultsHeldUntilMs, this.queue.nowMs + 1500);
      this.trace.add(`image race: ${follower} lags ${leader.id}`);
      return false;
    }
    const lagging = this.memberById(race.follower)?.core?.status().lastIndex ?? 0;
    if (race.leader !== leader.id || lagging >= leader.disk.durable.snapshotIndex()) return false;
    this.laggard = null;
    const pair = [leader.id, race.follower];
    this.network.partition([pair, this.ids().filter((id) => !pair.includes(id))]);
    this.faultsHeldUntilMs = this.queue.nowMs + 2000;
    this.quickRestarts.add(leader.id);
    // A power loss: the state falls back to the recorded snapshot's image, and the commit
    // index written with the compaction is lost too, so nothing is applied before it leads
    // (without one, the restart would compact to the newer image at once).
    leader.nextCrashPowerLoss = true;
    this.trace.add(`image race: ${leader.id} crashes in its compaction`);
    return true;
  }

  private crashingInFlush(member: SimMember): void {
    if (this.random.chance(this.profile.powerCutAfterRestartChance))
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
    const leader = this.currentLeader();
    const voters = leader?.core?.status().membership.voters ?? [];
    if (leader === null || leader === member || !voters.includes(member.id)) return;
    // The leader keeps just enough followers to commit with the restarted member's answer, so
    // that without it those entries are on a minority.
    const others = voters.filter((id) => id !== leader.id && id !== member.id);
    const kept = others.slice(0, Math.floor(voters.length / 2) - 1);
    const near = [leader.id, ...kept];
    const far = this.ids().filter((id) => !near.includes(id) && id !== member.id);
    this.network.partition([near, far]);
    this.trace.add(`power cut after restart ${member.id} leader ${leader.id}`);
    const heldMs = this.profile.downMsMax + 1000;
    this.hushedUntilMs = this.queue.nowMs + heldMs;
    this.faultsHeldUntilMs = this.queue.nowMs + heldMs;
    member.nextCrashPowerLoss = false;
    member.onNextStart = () => {
      this.queue.after(this.random.between(20, 150), () => {
        if (!this.faultsActive || !member.running) return;
        member.crash(true);
        this.network.partition([near, [...far, member.id]]);
      });
    };
  }

  /**
   * A follower about to crash with unflushed writes, and the leader cut off at the same time:
   * what it acknowledged must have been on its disk, or a write the leader committed with its
   * acknowledgement is lost with the next leader.
   */
  private alsoLoseLeader(member: SimMember): void {
    const leader = this.currentLeader();
    if (leader === null || leader === member || !this.random.chance(correlatedLossChance)) return;
    this.trace.add(`lose leader ${leader.id} with ${member.id}`);
    this.queue.after(this.random.between(0, 5), () => {
      if (this.faultsActive) this.network.isolate(leader.id);
    });
  }

  private scheduleRestart(member: SimMember): void {
    const quick = this.quickRestarts.delete(member.id);
    const downMs = this.random.between(20, quick ? 100 : this.profile.downMsMax);
    this.queue.after(downMs, () => {
      if (!member.running && !this.wiped.has(member.id)) member.start();
    });
  }

  /**
   * A member's data dir is wiped: the process stops and its identity is retired for good
   * (restarting it empty would let it vote again in terms it already voted in). It comes back
   * under a new id with an empty log; the leader removes the old id and adds the new one.
   */
  private wipe(): void {
    const leader = this.currentLeader();
    const membership = leader?.core?.status().membership;
    if (membership === undefined) return;
    const candidates = this.members.filter(
      (member) => member.running && membership.voters.includes(member.id),
    );
    if (candidates.length === 0) return;
    this.wipeMember(this.random.pick(candidates));
  }

  private wipeMember(victim: SimMember): void {
    this.wiped.add(victim.id);
    victim.crash();
    const fresh = this.addMember(`${victim.id}w`, { voters: [], learners: [] });
    this.trace.add(`wipe ${victim.id} as ${fresh.id}`);
    fresh.start();
  }

  /**
   * After healing, whoever leads keeps removing retired identities until the run ends: a removal
   * appended by one leader may be lost with its term, and a later leader's configuration can
   * still hold the retired id (seed 67320), so one leader not seeing it is no reason to stop.
   */
  private removeWiped(): void {
    const leader = this.currentLeader();
    if (leader && !leader.paused) {
      leader.withCore((core) => {
        const { voters, learners } = core.status().membership;
        const retired = [...voters, ...learners].find((id) => this.wiped.has(id));
        if (retired !== undefined) core.proposeMembership({ type: "remove", member: retired });
      });
    }
    this.queue.after(200, () => this.removeWiped());
  }

  /** Like the voter keeper, whoever leads keeps changing the membership while the faults last. */
  private churnMembership(): void {
    if (!this.faultsActive) return;
    this.changeMembership();
    const intervalMs = this.profile.membershipChangeIntervalMs;
    this.queue.after(this.random.between(intervalMs / 2, intervalMs), () => this.churnMembership());
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (!leader || leader.paused) return;
    leader.withCore((core) => {
      const before = core.status().membership.voters;
      if (!this.proposeChange(core)) return;
      // A voter keeper that does not wait for its change to commit asks for the next one at once:
      // the core must refuse it until the first has committed.
      if (this.random.chance(secondChangeChance)) this.proposeChange(core);
      if (this.faultsActive && this.random.chance(splitOnChangeChance)) {
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
    this.network.partition([
      [leader.id, demoted],
      this.ids().filter((id) => id !== leader.id && id !== demoted),
    ]);
    this.queue.after(this.random.between(10, 50), () => {
      if (!this.faultsActive) return;
      // One wipe per run: two lost for good could be a majority.
      if (leader.running && this.wiped.size === 0) this.wipeMember(leader);
      this.network.heal();
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
    this.network.partition([side, this.ids().filter((id) => !side.includes(id))]);
  }

  /** Proposes one change on a leader's core; whether it was accepted. */
  private proposeChange(core: RaftCore): boolean {
    if (core.status().role !== "leader") return false;
    const change = this.pickMembershipChange(core.status().membership, core.id);
    if (change === null) return false;
    const leader = this.memberById(core.id);
    const demotesOther = change.type === "demote" && change.member !== core.id;
    const loseLeader = this.profile.wipes && this.faultsActive && this.wiped.size === 0;
    if (leader && demotesOther && loseLeader && this.random.chance(wipeAfterDemotionChance)) {
      this.loseLeaderAfterDemotion(leader, change.member);
    }
    if (change.member === core.id && this.answerRandom.chance(0.5)) {
      // As the voter keeper does: it hands over, and the next leader demotes it.
      this.trace.add(`membership ${core.id} ${change.type} ${change.member} hand over first`);
      this.leaderToDemote = core.id;
      this.handOver(core);
      return false;
    }
    const proposed = core.proposeMembership(change);
    this.trace.add(`membership ${core.id} ${change.type} ${change.member} ${proposed.ok}`);
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
    const retired = [...voters, ...learners].find((id) => this.wiped.has(id));
    if (retired !== undefined) return { type: "remove", member: retired };
    const handedOver = this.leaderToDemote;
    const { votersMin } = this.profile;
    if (handedOver !== leaderId && voters.includes(handedOver) && voters.length > votersMin) {
      this.leaderToDemote = noMember;
      return { type: "demote", member: handedOver };
    }
    const outsiders = this.ids().filter(
      (id) => !voters.includes(id) && !learners.includes(id) && !this.wiped.has(id),
    );
    const options: MembershipChange[] = [];
    const outsider = outsiders[0];
    if (outsider !== undefined) options.push({ type: "addLearner", member: outsider });
    const learner = learners[0];
    if (learner !== undefined) {
      if (voters.length < 5) options.push({ type: "promote", member: learner });
      options.push({ type: "remove", member: learner });
    }
    if (voters.length > votersMin) {
      options.push({ type: "demote", member: this.random.pick(voters) });
    }
    return options.length === 0 ? null : this.random.pick(options);
  }

  private transferLeadership(): void {
    const leader = this.currentLeader();
    if (!leader || leader.paused) return;
    leader.withCore((core) => {
      if (core.status().role === "leader") this.handOver(core);
    });
  }

  private handOver(core: RaftCore): void {
    const others = core.status().membership.voters.filter((id) => id !== core.id);
    if (others.length === 0) return;
    core.transferLeadership(this.random.pick(others));
    this.trace.add(`transfer ${core.id}`);
    const deafen = this.faultsActive && this.random.chance(this.profile.cutAfterTransferChance);
    if (deafen) this.deafenOldLeader(core.id);
  }

  /**
   * The leader that just handed over stops hearing the others (its own messages, the TimeoutNow
   * among them, still leave), so it leads on in its term until CheckQuorum deposes it while the
   * new leader commits; clients that knew it keep reading from it meanwhile. Only its ReadIndex
   * heartbeat round, which no one answers, keeps those reads from being stale.
   */
  private deafenOldLeader(id: MemberId): void {
    for (const other of this.ids()) if (other !== id) this.network.cutOneWay(other, id);
    const { electionTimeoutMsMax } = timingOf(this.profile);
    this.deafOldLeader = { id, untilMs: this.queue.nowMs + electionTimeoutMsMax * 2 };
    this.faultsHeldUntilMs = this.deafOldLeader.untilMs;
    this.trace.add(`deafen old leader ${id}`);
    this.queue.after(electionTimeoutMsMax * 2, () => this.faultsActive && this.network.heal());
  }

  /** A read while an old leader is deaf goes to it half the time. */
  private deafOldLeaderFor(kind: ClientKind): SimMember | null {
    const { id, untilMs } = this.deafOldLeader;
    if (this.queue.nowMs >= untilMs || (kind !== "readIndex" && kind !== "leaseRead")) return null;
    if (!this.random.chance(0.5)) return null;
    return this.memberById(id) ?? null;
  }

  private heal(): void {
    this.faultsActive = false;
    this.hushedUntilMs = 0;
    this.trace.add("heal");
    this.network.healForGood();
    this.network.setFaults(calmNetwork);
    for (const member of this.members) member.fullness.full = false;
    this.removeWiped();
    for (const member of this.members) {
      if (this.wiped.has(member.id)) continue;
      if (!member.running) member.start();
      else if (member.paused) {
        member.pausedUntilMs = this.queue.nowMs;
        member.resume();
      }
    }
    if (this.random.chance(this.profile.lingeringDeafChance)) this.leaveOneDeaf();
  }

  /**
   * One member's receive path stays broken for a while after the rest heals (a Pi whose Wi-Fi
   * only sends), most often the leader's: it still reaches everyone but hears no one. A majority
   * remains whole, so writes must commit while it lasts; a leader that cannot tell it lost its
   * quorum would hold the others back with its heartbeats.
   */
  private leaveOneDeaf(): void {
    const leader = this.currentLeader();
    const membership = leader?.core?.status().membership;
    if (leader === null || membership === undefined) return;
    const running = this.members.filter((member) => member.running && !this.wiped.has(member.id));
    const deaf = this.random.chance(0.7) ? leader : this.random.pick(running);
    const whole = membership.voters.filter(
      (id) => id !== deaf.id && !this.wiped.has(id) && this.memberById(id)?.running === true,
    );
    if (whole.length < Math.floor(membership.voters.length / 2) + 1) return;
    this.trace.add(`deaf ${deaf.id}`);
    for (const other of this.ids()) this.network.cutOneWay(other, deaf.id);
    const sinceMs = this.queue.nowMs;
    this.probe(sinceMs + livenessBoundMs / 2, deafMs - livenessBoundMs / 2);
    this.queue.after(deafMs, () => {
      this.checkWritesCommittedSince(sinceMs, "while one member was deaf");
      this.network.heal();
    });
  }

  private checkWritesCommittedSince(sinceMs: number, why: string): void {
    const committed = this.operations.some(
      (operation) =>
        operation.status === "ok" && isWrite(operation.kind) && operation.returnMs > sinceMs,
    );
    if (!committed) throw new Violation("liveness", `no write committed ${why}`);
  }

  // ---- Workload -----------------------------------------------------------------------------

  private issueOperation(endMs: number): void {
    const stopMs = endMs - operationTimeoutMs - 500;
    if (this.queue.nowMs >= stopMs) return;
    // A call that hangs (a member cut off, one holding a write through an election) keeps its
    // client a while; then another client takes its place, as users of a fleet do.
    // At most twice as many calls in flight as clients, or the history grows too tangled to check.
    const busySinceMs = this.queue.nowMs - clientPatienceMs;
    const pending = this.operations.filter((operation) => operation.status === "pending");
    const waiting = pending.filter((operation) => operation.callMs > busySinceMs).length;
    const { clients } = this.profile;
    const hushed = this.queue.nowMs < this.hushedUntilMs;
    if (!hushed && waiting < clients && pending.length < clients * 2) this.startOperation();
    // Quiet spells, as a small fleet has between heartbeats: logs stay equal, so a member that
    // times out is as up-to-date as the leader, and only the vote refusal protects the lease.
    const quiet = this.faultsActive && this.random.chance(this.profile.quietSpellChance);
    const intervalMs = quiet
      ? this.random.between(300, 1500)
      : this.random.between(1, this.profile.operationIntervalMsMax);
    this.queue.after(intervalMs, () => this.issueOperation(endMs));
  }

  /**
   * A client's operation, to a member it picks; a probe is a plain write to whoever leads now,
   * so that the liveness checks do not hang on what the workload happened to do.
   */
  private startOperation(probe = false): void {
    const kind: ClientKind = probe
      ? "write"
      : this.random.pick<ClientKind>([
          "write",
          "write",
          "cas",
          "readIndex",
          "leaseRead",
          "fencedWrite",
        ]);
    const key = `k${this.random.nextInt(this.profile.keys)}`;
    const id = this.nextOperationId++;
    const operation: ClientOperation = {
      id,
      key,
      kind,
      value: kind === "write" || kind === "cas" || kind === "fencedWrite" ? `v${id}` : null,
      expected: kind === "cas" ? this.expectedValue(key) : null,
      callMs: this.queue.nowMs,
      returnMs: Number.POSITIVE_INFINITY,
      status: "pending",
      ok: null,
      readValue: null,
      index: 0,
    };
    this.operations.push(operation);
    // Clients ask any member (shoal's API forwards writes and reads to the leader), and the
    // leader more often than its share: a deposed one too, while it still believes it leads.
    const leader = this.currentLeader();
    const target =
      this.deafOldLeaderFor(kind) ??
      (leader !== null && (probe || !this.random.chance(this.profile.followerClientShare))
        ? leader
        : this.random.pick(this.members.filter((member) => this.inFleet(member, leader))));
    this.trace.add(`op ${id} ${kind} ${key} ${target?.id}`);
    this.queue.after(1, () => target?.request(operation));
    this.queue.after(operationTimeoutMs, () => {
      if (operation.status === "pending") operation.status = "unknown";
    });
  }

  /**
   * A member clients use: one in the leader's configuration (a deposed leader or a cut-off
   * member too), as a fleet's users know its nodes; any member not retired while none leads.
   */
  private inFleet(member: SimMember, leader: SimMember | null): boolean {
    if (this.wiped.has(member.id)) return false;
    const membership = leader?.core?.status().membership;
    if (membership === undefined) return true;
    return membership.voters.includes(member.id) || membership.learners.includes(member.id);
  }

  /** A compare-and-set mostly expects a value recently written to the key, so some succeed. */
  private expectedValue(key: string): string | null {
    const written = this.operations.filter(
      (operation) => operation.key === key && operation.value !== null,
    );
    if (written.length === 0 || this.random.chance(0.2)) return null;
    return (
      written[written.length - 1 - this.random.nextInt(Math.min(3, written.length))]?.value ?? null
    );
  }

  /**
   * The command of a fenced write leaves its leader, at once or late (the leader paused between
   * reading under its lease and proposing, past the lease), and reaches whoever leads then.
   */
  private forwardFenced(operation: ClientOperation, version: number): void {
    const late = this.faultsActive && this.random.chance(this.profile.lateFencedChance);
    const delayMs = late ? this.random.between(500, 1500) : this.random.between(1, 3);
    this.trace.add(`fenced ${operation.id} ${version} ${delayMs}`);
    this.queue.after(delayMs, () => {
      if (operation.status === "failed" || operation.status === "ok") return;
      const leader = this.currentLeader();
      if (leader === null) this.complete(operation, "failed");
      else leader.proposeFenced(operation, version);
    });
  }

  private complete(operation: ClientOperation, outcome: "ok" | "failed" | "unknown"): void {
    if (operation.status !== "pending") return;
    operation.status = outcome;
    if (outcome !== "unknown") operation.returnMs = this.queue.nowMs;
    if (outcome === "ok" && isWrite(operation.kind)) {
      operation.index = this.appliedAt.get(operation.id)?.index ?? Number.POSITIVE_INFINITY;
    }
    this.trace.add(`done ${operation.id} ${outcome} ${operation.ok} ${operation.readValue}`);
  }

  /**
   * One hop from `from` to `to`'s peer route over the simulated network: the request and the
   * answer each travel as a message would (lost, late, cut). A refused connection is answered
   * at once; a lost request or answer ends at the timeout, as an HTTP call's would.
   */
  private call(
    from: MemberId,
    to: MemberId,
    kind: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    this.pendingAsync++;
    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        this.pendingAsync--;
        outcome();
      };
      const unanswered = (why: string) => () => reject(new ShoalError("E_NOT_READY", why));
      this.queue.after(timeoutMs, () => settle(unanswered(`${to} did not answer in time`)));
      this.network.carry(from, to, () => {
        const answer = this.memberById(to)?.serve(kind, body, from) ?? null;
        if (answer === null) {
          this.network.carry(to, from, () => settle(unanswered(`${to} refused the connection`)));
          return;
        }
        answer.then(
          (value) => {
            const lost = kind === "propose" && this.loseAnswerToForwarder(from, to, value);
            const outcome = lost ? unanswered(`${to} reset the connection`) : () => resolve(value);
            this.network.carry(to, from, () => settle(outcome));
          },
          (error: unknown) => {
            // A violation or a failed assertion in the route is the run's, not the caller's.
            if (!(error instanceof ShoalError)) this.asyncFailure ??= error;
            this.network.carry(to, from, () => settle(() => reject(error)));
          },
        );
      });
    });
  }

  /** An entry applied on a member: the checker's record, and where each write first applied. */
  private onApplied(member: MemberId, entry: Entry, result: KvResult | null): void {
    this.checker.onApply(member, entry, result?.operation ?? null);
    if (result === null || result.duplicate) return;
    const first = this.appliedAt.get(result.operation);
    if (first === undefined) {
      this.appliedAt.set(result.operation, { index: entry.index, timeMs: this.queue.nowMs });
    } else if (first.index !== entry.index) {
      throw new Violation(
        "applied once",
        `operation ${result.operation} applied at ${first.index} and again at ${entry.index}`,
      );
    }
  }

  // ---- Checks -------------------------------------------------------------------------------

  currentLeader(): SimMember | null {
    let best: SimMember | null = null;
    let bestTerm = -1;
    for (const member of this.members) {
      const status = member.core?.status();
      if (status?.role === "leader" && status.term > bestTerm) {
        best = member;
        bestTerm = status.term;
      }
    }
    return best;
  }

  private checkLeases(): void {
    const holders: MemberId[] = [];
    for (const member of this.members) {
      if (member.core?.leaseValid(member.localNow())) holders.push(member.id);
    }
    this.checker.checkLeaseHolders(holders, this.queue.nowMs);
  }

  private checkLeaderExists(): void {
    if (this.currentLeader() === null) {
      throw new Violation("liveness", `no leader ${livenessBoundMs} ms after healing`);
    }
  }

  private finalChecks(): void {
    const leader = this.currentLeader();
    if (leader?.core == null) throw new Violation("liveness", "no leader at the end");
    const status = leader.core.status();
    const { voters, learners } = status.membership;
    const retired = [...voters, ...learners].find((id) => this.wiped.has(id));
    if (retired !== undefined) {
      throw new Violation("liveness", `${retired} was wiped but is still a member at the end`);
    }
    const cores = this.members
      .filter((member) => voters.includes(member.id) || learners.includes(member.id))
      .map((member) => member.core as RaftCore);
    checkLogMatching(cores);
    this.checkConvergence(leader, [...voters, ...learners]);
    this.checkAcknowledgedWrites(leader);
    this.checkLinearizable();
  }

  private checkConvergence(leader: SimMember, members: readonly MemberId[]): void {
    const commit = leader.core?.status().commitIndex ?? 0;
    const hash = leader.machine.stateHash();
    for (const id of members) {
      const member = this.memberById(id);
      if (member === undefined) continue;
      if (member.machine.appliedIndex !== commit) {
        throw new Violation(
          "liveness",
          `${id} applied ${member.machine.appliedIndex}, leader committed ${commit}`,
        );
      }
      if (member.machine.stateHash() !== hash) {
        throw new Violation("state hashes equal", `${id} differs from ${leader.id} at ${commit}`);
      }
    }
    const healedWrites = this.operations.filter(
      (operation) =>
        operation.status === "ok" &&
        isWrite(operation.kind) &&
        operation.callMs >= this.profile.faultPhaseMs + livenessBoundMs,
    );
    if (healedWrites.length === 0)
      throw new Violation("liveness", "no write committed after healing");
  }

  private checkAcknowledgedWrites(leader: SimMember): void {
    for (const operation of this.operations) {
      if (!isWrite(operation.kind)) continue;
      // A refused write was never applied: the client was told so and may try it again.
      if (operation.status === "failed" && this.appliedAt.has(operation.id)) {
        const at = this.appliedAt.get(operation.id)?.index;
        throw new Violation("refused write applied", `operation ${operation.id} at ${at}`);
      }
      if (operation.status !== "ok") continue;
      const record = this.checker.appliedRecord(operation.index);
      const checked = checkAcknowledgedWrite(operation, leader.machine.appliedIndex, record);
      if (!checked.ok) throw new Violation("acknowledged write lost", checked.reason);
    }
  }

  private checkLinearizable(): void {
    const history: KvOperation[] = [];
    for (const operation of this.operations) {
      // A refused operation was never executed; one without an answer may or may not have been.
      if (operation.status === "failed") continue;
      // A write without an answer that no member ever applied had no effect on any read (every
      // member applies one log, and the convergence check saw them agree): it is left out, so
      // the search need not try it at every point of the history.
      const applied = isWrite(operation.kind) ? this.appliedAt.get(operation.id) : undefined;
      if (operation.status !== "ok" && isWrite(operation.kind) && applied === undefined) continue;
      // Past the drift bound leases may overlap, so lease reads may be stale: only fencing
      // keeps the state correct, and that is what the rest of the history shows.
      if (operation.kind === "leaseRead" && this.profile.driftMode === "beyond") continue;
      const known = operation.status === "ok";
      // A write without an answer took effect by the time a member applied it, which it does
      // only once the write committed: any read that starts later must see it (or a later one).
      const returnMs = known ? operation.returnMs : (applied?.timeMs ?? Number.POSITIVE_INFINITY);
      const isRead = operation.kind === "readIndex" || operation.kind === "leaseRead";
      const isCas = operation.kind === "cas" || operation.kind === "fencedWrite";
      history.push({
        id: operation.id,
        key: operation.key,
        kind: isRead ? "read" : isCas ? "cas" : "write",
        value: isRead ? operation.readValue : operation.value,
        expected: operation.expected,
        callMs: operation.callMs,
        returnMs,
        ok: known && isCas ? operation.ok : null,
      });
    }
    // Every key is checked, and a key the search could not decide fails the run as well.
    const failure = verdictFailure(checkHistory(history));
    if (failure !== null) throw new Violation("linearizability", failure);
  }

  private result(violation: string | null): SimulationResult {
    const count = (status: ClientOperation["status"]) =>
      this.operations.filter((operation) => operation.status === status).length;
    const committed = Math.max(0, ...this.members.map((member) => member.machine.appliedIndex));
    return {
      seed: this.options.seed,
      ok: violation === null,
      violation,
      traceHash: this.trace.hex(),
      members: this.profile.members,
      events: this.events,
      committed,
      operations: {
        ok: count("ok"),
        failed: count("failed"),
        unknown: count("unknown") + count("pending"),
      },
      wiped: this.wiped.size,
      fencedRefused: this.operations.filter(
        (operation) =>
          operation.kind === "fencedWrite" && operation.status === "ok" && operation.ok === false,
      ).length,
      logHolds: this.logHolds,
      refusedNoSpace: this.refusedNoSpace,
      simulatedMs: this.queue.nowMs,
    };
  }
}

function isWrite(kind: ClientKind): boolean {
  return kind === "write" || kind === "cas" || kind === "fencedWrite";
}

const calmDisk = { flushMsMax: 1, stallChance: 0, stallMsMax: 0 };

/** Lets every promise continuation that is ready run (they queue no simulated time). */
function settleContinuations(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  return new Simulation(options).run();
}

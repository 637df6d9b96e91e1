// What can go wrong in one simulation run, drawn from its seed: cluster size, network faults,
// crashes, pauses, clock drift, membership churn and the client load.
import type { RaftTiming } from "../../raft/raft-core.ts";
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { DiskTiming } from "./sim-disk.ts";

export interface NetworkFaults {
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  /** Share of messages held back for very long (stale appends and votes arriving late). */
  readonly lateRate: number;
  readonly lateMsMax: number;
  /** Share of appends carrying a no-op (a new leader's first entry) that are lost. */
  readonly noopLossRate: number;
  /** Chance that an append with entries is chased by an older term's append over its indexes. */
  readonly staleReplayRate: number;
}

/** A network that only delays, a little: the calm phase's, and the base of aimed profiles. */
export const calmNetwork: NetworkFaults = {
  lossRate: 0,
  duplicateRate: 0,
  delayMsMin: 1,
  delayMsMax: 5,
  lateRate: 0,
  lateMsMax: 0,
  noopLossRate: 0,
  staleReplayRate: 0,
};

export type DriftMode = "within" | "bound" | "beyond";

export interface FaultProfile {
  readonly members: number;
  /** Members outside the first membership, for membership changes to add. */
  readonly spares: number;
  readonly network: NetworkFaults;
  readonly partitions: boolean;
  readonly crashes: boolean;
  /** Probability that one flush is cut short by a crash (during it, right after, after its batch). */
  readonly crashInReadyChance: number;
  /**
   * Probability that the flush of a member's own compaction is cut short by a crash: the new
   * image is written, the log does not record it yet, and both images are on disk after restart.
   */
  readonly crashInCompactionChance: number;
  /**
   * Chance per leader compaction that the image race starts (see the fault injector's
   * imageRace).
   */
  readonly imageRaceChance: number;
  /**
   * Probability that a crash in a flush is followed by a power cut soon after the restart, while
   * the leader reaches only that member (see the fault injector's powerCutAfterRestart).
   */
  readonly powerCutAfterRestartChance: number;
  /**
   * Chance per forwarded write's answer that it is lost while the leader hands over to the
   * forwarder, which is cut off once it leads (see the fault injector's loseAnswerToForwarder).
   */
  readonly loseAnswerToForwarderChance: number;
  /** Probability that a crash is a power loss: the state machine loses its unsynced writes. */
  readonly powerLossChance: number;
  readonly disk: DiskTiming;
  /** How often a peer's messages are answered in its own request (as shoal's peer route does). */
  readonly replyInRequestChance: number;
  /** Share of client requests sent to a member other than the leader (forwarded writes). */
  readonly followerClientShare: number;
  readonly downMsMax: number;
  readonly pauses: boolean;
  readonly pauseMsMax: number;
  /** Chance that a member is cut off the moment it becomes leader, before its no-op spreads. */
  readonly isolateNewLeaderChance: number;
  /** The cut comes at once or up to this long after the election (mid-replication). */
  readonly isolateNewLeaderDelayMsMax: number;
  readonly membershipChanges: boolean;
  /** Churn keeps at least this many voters: 3, or 1 (down to a sole voter; no wipes then). */
  readonly votersMin: number;
  /** How often the leader proposes a membership change while faults last (about). */
  readonly membershipChangeIntervalMs: number;
  /** Chance that a new leader proposes a membership change at once, as an eager voter keeper would. */
  readonly changeOnElectionChance: number;
  /**
   * A member loses its data dir: its identity is retired (removed from the membership, never
   * restarted) and it rejoins under a new id as a learner, so no vote it cast is reused.
   */
  readonly wipes: boolean;
  readonly transfers: boolean;
  /**
   * A member's disk fills for a while: its log refuses writes, flushes fail (losing what they
   * carried) and applies are refused. Off unless asked for (test/sim/disk-full.test.ts), so the
   * seeds of the other campaigns keep their paths.
   */
  readonly diskFull: boolean;
  /**
   * Chance that a leader handing over stops hearing the others right after, so it believes it
   * leads until CheckQuorum deposes it, while clients that knew it keep reading from it.
   */
  readonly cutAfterTransferChance: number;
  /** "beyond": clocks drift just past the bound, so the lease checker is off and fencing counts. */
  readonly driftMode: DriftMode;
  /** The clock drift bound the cluster is configured for (and the simulator keeps to). */
  readonly clockDriftMax: number;
  /** electionTimeoutMsMax minus electionTimeoutMsMin: narrow windows make tight races. */
  readonly electionJitterMs: number;
  readonly appendEntriesMax: number;
  readonly inflightMessagesMax: number;
  /** Entries applied past the last snapshot before compacting; 0 never compacts. */
  readonly compactEvery: number;
  /** Chance that a fenced write's command reaches the log late, past its leader's lease. */
  readonly lateFencedChance: number;
  readonly clients: number;
  readonly keys: number;
  readonly operationIntervalMsMax: number;
  /** Chance that one member, most often the leader, stays deaf for a while after healing. */
  readonly lingeringDeafChance: number;
  /** Chance that the clients fall silent for a while after an operation. */
  readonly quietSpellChance: number;
  readonly faultIntervalMsMin: number;
  readonly faultIntervalMsMax: number;
  readonly faultPhaseMs: number;
  readonly healPhaseMs: number;
}

export function timingOf(profile: FaultProfile): RaftTiming {
  return {
    heartbeatMs: 100,
    electionTimeoutMsMin: 500,
    electionTimeoutMsMax: 500 + profile.electionJitterMs,
    clockDriftMax: profile.clockDriftMax,
  };
}

const memberCounts = [1, 2, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 6, 7];

/** Share of seeds that focus on elections during membership churn (see electionsUnderChurn). */
const churnFocusShare = 0.15;
/** Share of seeds that focus on the races of the Raft paper's figure 8 (see figureEight). */
const figureEightShare = 0.08;

export function drawProfile(random: SeededRandom): FaultProfile {
  const mixed = drawMixed(random);
  const focus = random.next();
  const focused =
    focus < churnFocusShare
      ? electionsUnderChurn(mixed, random)
      : focus < churnFocusShare + figureEightShare
        ? figureEight(mixed)
        : mixed;
  // Drawn last, so that every draw before it stayed what it was for each seed.
  return { ...focused, loseAnswerToForwarderChance: random.pick([0, 0, 0.05, 0.2]) };
}

/**
 * Three members and nothing but new leaders cut off soon after their election, whose no-ops are
 * lost where they would be accepted while older entries sent one per append get through: a
 * leader then finds an earlier term's entry on a majority, which it must not count as committed
 * before an entry of its own term is (the Raft paper's figure 8).
 */
function figureEight(mixed: FaultProfile): FaultProfile {
  return {
    ...mixed,
    ...figureEightFaults,
    wipes: false,
    lingeringDeafChance: 0,
    // Elections come often here, and writes held through them overlap: a lighter load keeps
    // the history checkable.
    clients: Math.min(mixed.clients, 3),
    keys: Math.max(mixed.keys, 3),
  };
}

/** Three members and no other faults, so that an aimed fault decides what happens. */
export const quietCluster = {
  members: 3,
  loseAnswerToForwarderChance: 0,
  spares: 0,
  partitions: false,
  crashes: false,
  pauses: false,
  membershipChanges: false,
  transfers: false,
  faultIntervalMsMin: 4000,
  faultIntervalMsMax: 5000,
} as const satisfies Partial<FaultProfile>;

/** The faults of the figure-8 focus, also the aimed profile of the bug-detection test. */
export const figureEightFaults = {
  ...quietCluster,
  appendEntriesMax: 1,
  isolateNewLeaderChance: 0.8,
  isolateNewLeaderDelayMsMax: 100,
  network: { ...calmNetwork, noopLossRate: 1 },
} as const satisfies Partial<FaultProfile>;

/**
 * Every new leader proposes a change at once and is cut off at once, alone or with part of the
 * cluster, and little else happens: so configurations of several terms race each other at 3 to
 * 5 voters (Ongaro's single-server-change race needs 4 voters and two such leaders in a row).
 */
function electionsUnderChurn(mixed: FaultProfile, random: SeededRandom): FaultProfile {
  return {
    ...mixed,
    members: random.pick([3, 4, 4, 5]),
    spares: random.between(1, 2),
    ...electionsUnderChurnFaults,
    crashes: random.chance(0.3),
  };
}

/** The faults of the elections-under-churn focus, also an aimed profile of the fast tests. */
export const electionsUnderChurnFaults = {
  membershipChanges: true,
  votersMin: 3,
  lingeringDeafChance: 0,
  changeOnElectionChance: 1,
  membershipChangeIntervalMs: 1000,
  partitions: true,
  isolateNewLeaderChance: 1,
  isolateNewLeaderDelayMsMax: 0,
  pauses: false,
  faultIntervalMsMin: 3000,
  faultIntervalMsMax: 4000,
} as const satisfies Partial<FaultProfile>;

function drawMixed(random: SeededRandom): FaultProfile {
  const members = random.pick(memberCounts);
  const membershipChanges = members >= 3 && random.chance(0.4);
  const calm = random.chance(0.1);
  const votersMin = random.pick([3, 3, 1]);
  return {
    members,
    spares: membershipChanges ? random.between(1, 2) : 0,
    network: drawNetwork(random, calm),
    partitions: !calm && random.chance(0.8),
    crashes: !calm && random.chance(0.7),
    crashInReadyChance: random.pick([0, 0.002, 0.01]),
    downMsMax: random.pick([200, 1000, 3000]),
    pauses: !calm && random.chance(0.5),
    pauseMsMax: random.pick([300, 1000, 2000]),
    isolateNewLeaderChance: calm ? 0 : random.pick([0, 0, 0.1, 0.3]),
    isolateNewLeaderDelayMsMax: random.pick([0, 50]),
    membershipChanges,
    votersMin,
    membershipChangeIntervalMs: random.pick([100, 300, 1000]),
    changeOnElectionChance: random.pick([0, 0.3, 0.8]),
    // A wipe loses a member for good: with fewer than 3 voters that can be a quorum.
    wipes: membershipChanges && votersMin === 3 && random.chance(0.5),
    transfers: members >= 2 && random.chance(0.4),
    diskFull: false,
    driftMode: random.pick([
      "bound",
      "bound",
      "bound",
      "bound",
      "within",
      "within",
      "within",
      "within",
      "beyond",
    ] as const),
    clockDriftMax: random.pick([0.05, 0.05, 0.2]),
    electionJitterMs: random.pick([500, 500, 100, 30]),
    appendEntriesMax: random.pick([1, 4, 64, 256]),
    inflightMessagesMax: random.pick([1, 4, 64]),
    compactEvery: random.pick([0, 5, 20, 100]),
    lateFencedChance: random.pick([0, 0.2, 0.5]),
    clients: random.between(1, 6),
    keys: random.between(1, 5),
    operationIntervalMsMax: random.pick([10, 40, 100]),
    quietSpellChance: random.pick([0, 0, 0.05, 0.2]),
    // Not under membership churn: a member may then count votes in an uncommitted configuration
    // that needs the deaf one (docs/raft.md, what the simulator does not cover).
    lingeringDeafChance: members >= 3 && !membershipChanges ? random.pick([0, 0.5]) : 0,
    faultIntervalMsMin: 100,
    faultIntervalMsMax: random.pick([400, 1000]),
    faultPhaseMs: 5000,
    healPhaseMs: 7000,
    powerLossChance: random.pick([0, 0.3, 1]),
    disk: {
      flushMsMax: random.pick([0, 2, 8]),
      stallChance: random.pick([0, 0, 0.01, 0.05]),
      stallMsMax: random.pick([50, 300]),
    },
    replyInRequestChance: random.pick([0, 0.5, 1]),
    followerClientShare: random.pick([0.2, 0.5, 0.8]),
    cutAfterTransferChance: random.pick([0, 0.5, 1]),
    crashInCompactionChance: random.pick([0, 0.2, 0.5]),
    powerCutAfterRestartChance: random.pick([0, 0.3, 0.6]),
    imageRaceChance: random.pick([0, 0.3, 1]),
    loseAnswerToForwarderChance: 0, // drawn in drawProfile, after the focus
  };
}

function drawNetwork(random: SeededRandom, calm: boolean): NetworkFaults {
  if (calm) return calmNetwork;
  return {
    lossRate: random.pick([0, 0.01, 0.05, 0.2]),
    duplicateRate: random.pick([0, 0.01, 0.05]),
    delayMsMin: 1,
    delayMsMax: random.pick([5, 20, 80]),
    lateRate: random.pick([0, 0.005, 0.02, 0.05]),
    lateMsMax: random.pick([1000, 3000, 6000]),
    noopLossRate: random.pick([0, 0, 0, 0.3]),
    staleReplayRate: random.pick([0, 0, 0, 0.05]),
  };
}

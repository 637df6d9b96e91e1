// The deterministic simulator: 1 to 7 members running the real Raft host (its pipeline and
// client sessions over the real core) on simulated disks, over a faulty network, with crashes,
// power losses, pauses, drifting clocks, membership changes, leadership transfers and a client
// workload that writes and reads through every member, all from one seed. A fault phase is followed by a healing phase; checkers
// watch throughout and at the end.
import { AssertionError } from "../../core/assert.ts";
import { ShoalError } from "../../core/errors.ts";
import type { HostBugs } from "../../raft/host/ports.ts";
import { SeededRandom } from "../../raft/seeded-random.ts";
import type { MemberId, Membership, Message, RaftBugs } from "../../raft/types.ts";
import { SafetyChecker, Violation } from "./checkers.ts";
import { ClientWorkload } from "./client-workload.ts";
import { EventQueue } from "./event-queue.ts";
import { FaultInjector } from "./fault-injector.ts";
import { drawProfile, type FaultProfile, timingOf } from "./fault-profile.ts";
import { checkLeaderExists, finalChecks, livenessBoundMs } from "./final-checks.ts";
import { MembershipChurn } from "./membership-churn.ts";
import type { ClientOperation, MemberEnvironment } from "./sim-member.ts";
import { SimMember } from "./sim-member.ts";
import { SimNetwork } from "./sim-network.ts";
import { TraceHash } from "./trace-hash.ts";

/** Keeps the lost answer's draws apart from every other stream of the seed. */
const answerSeedOffset = 0x5eed_a115;

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
  /** The run's faults, membership churn and clients; each reaches the others through here. */
  readonly faults = new FaultInjector(this);
  readonly churn = new MembershipChurn(this);
  readonly workload = new ClientWorkload(this);
  /** Identities retired with their data dir; they never run again. */
  readonly wiped = new Set<MemberId>();
  private memberEnvironment: MemberEnvironment | null = null;
  private readonly clockRandom: SeededRandom;
  faultsActive = true;
  private events = 0;
  private logHolds = 0;
  private refusedNoSpace = 0;
  /** Clients send nothing new until then (an aimed fault wants logs to stay equal). */
  hushedUntilMs = 0;
  /** No new fault until then: an aimed fault plays out undisturbed. */
  faultsHeldUntilMs = 0;
  /**
   * Draws for the lost answer and for how the driver demotes a leader, apart from the main
   * stream, so that the lost answer's draws leave the rest of a seed's faults where they were.
   */
  readonly answerRandom: SeededRandom;
  /** Async work in flight (client calls, peer routes): its promises settle between events. */
  private pendingAsync = 0;
  private asyncFailure: unknown = null;

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

  addMember(id: MemberId, bootstrap: Membership): SimMember {
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
      crashChance: (member, compacting) => this.faults.crashChance(member, compacting),
      powerLossChance: this.profile.powerLossChance,
      disk: () => (this.faultsActive ? this.profile.disk : calmDisk),
      replyInRequestChance: this.profile.replyInRequestChance,
      send: (message: Message) => this.network.send(message),
      call: (from, to, kind, body, timeoutMs) => this.call(from, to, kind, body, timeoutMs),
      applied: (member, entry, result) => this.workload.onApplied(member.id, entry, result),
      pending: (delta) => {
        this.pendingAsync += delta;
      },
      asyncError: (error) => {
        this.asyncFailure ??= error;
      },
      crashed: (member: SimMember) => this.faults.scheduleRestart(member),
      crashingInFlush: (member: SimMember) => this.faults.crashingInFlush(member),
      refusedNoSpace: () => {
        this.refusedNoSpace++;
      },
      logHeld: (member: SimMember) => {
        this.logHolds++;
        this.trace.add(`log held ${member.id}`);
      },
      becameLeader: (member: SimMember) => this.faults.onBecameLeader(member),
      complete: (operation, outcome) => this.workload.complete(operation, outcome),
      forwardFenced: (operation, version) => this.workload.forwardFenced(operation, version),
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
      finalChecks(this);
    } catch (error) {
      if (!(error instanceof Violation) && !(error instanceof AssertionError)) throw error;
      violation = error instanceof Violation ? error.message : `assertion: ${error.message}`;
    }
    return this.result(violation);
  }

  private schedule(endMs: number): void {
    for (const member of this.members) member.start();
    this.queue.at(this.random.between(200, 600), () => this.faults.injectFault());
    this.queue.at(1, () => this.workload.issueOperation(endMs));
    if (this.profile.membershipChanges) this.queue.at(1, () => this.churn.churnMembership());
    this.queue.at(this.profile.faultPhaseMs, () => this.faults.heal());
    this.queue.at(this.profile.faultPhaseMs + livenessBoundMs, () => checkLeaderExists(this));
    this.workload.probe(this.profile.faultPhaseMs + livenessBoundMs, livenessBoundMs / 2);
  }

  ids(): MemberId[] {
    return this.members.map((member) => member.id);
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
            const lost = kind === "propose" && this.faults.loseAnswerToForwarder(from, to, value);
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

  private result(violation: string | null): SimulationResult {
    const count = (status: ClientOperation["status"]) =>
      this.workload.operations.filter((operation) => operation.status === status).length;
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
      fencedRefused: this.workload.operations.filter(
        (operation) =>
          operation.kind === "fencedWrite" && operation.status === "ok" && operation.ok === false,
      ).length,
      logHolds: this.logHolds,
      refusedNoSpace: this.refusedNoSpace,
      simulatedMs: this.queue.nowMs,
    };
  }
}

const calmDisk = { flushMsMax: 1, stallChance: 0, stallMsMax: 0 };

/** Lets every promise continuation that is ready run (they queue no simulated time). */
function settleContinuations(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  return new Simulation(options).run();
}

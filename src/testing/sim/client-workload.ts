// The clients of a simulation run: writes, compare-and-sets, fenced writes and reads through
// every member, and the history they leave (when each operation was called and answered, and
// where each write first applied), which the final checks judge.
import type { Entry, MemberId } from "../../raft/types.ts";
import { Violation } from "./checkers.ts";
import type { KvResult } from "./kv-machine.ts";
import type { ClientKind, ClientOperation, SimMember } from "./sim-member.ts";
import type { Simulation } from "./simulation.ts";

/** A client gives up on an answer after this long: the outcome is then unknown. */
const operationTimeoutMs = 2000;
/** A client whose call has not returned after this long is replaced by a new one. */
const clientPatienceMs = 1000;
/** How often the liveness checks send a probe write to the leader while they watch. */
const probeEveryMs = 300;

export class ClientWorkload {
  readonly operations: ClientOperation[] = [];
  private nextOperationId = 1;
  /** Where and when each write was first applied (a resent forwarded write applies once). */
  readonly appliedAt = new Map<number, { index: number; timeMs: number }>();

  constructor(private readonly sim: Simulation) {}

  /** A probe write every few hundred milliseconds from `fromMs`, for `forMs`. */
  probe(fromMs: number, forMs: number): void {
    for (let atMs = fromMs; atMs < fromMs + forMs; atMs += probeEveryMs) {
      this.sim.queue.at(atMs, () => this.startOperation(true));
    }
  }

  issueOperation(endMs: number): void {
    const stopMs = endMs - operationTimeoutMs - 500;
    if (this.sim.queue.nowMs >= stopMs) return;
    // A call that hangs (a member cut off, one holding a write through an election) keeps its
    // client a while; then another client takes its place, as users of a fleet do.
    // At most twice as many calls in flight as clients, or the history grows too tangled to check.
    const busySinceMs = this.sim.queue.nowMs - clientPatienceMs;
    const pending = this.operations.filter((operation) => operation.status === "pending");
    const waiting = pending.filter((operation) => operation.callMs > busySinceMs).length;
    const { clients } = this.sim.profile;
    const hushed = this.sim.queue.nowMs < this.sim.hushedUntilMs;
    if (!hushed && waiting < clients && pending.length < clients * 2) this.startOperation();
    // Quiet spells, as a small fleet has between heartbeats: logs stay equal, so a member that
    // times out is as up-to-date as the leader, and only the vote refusal protects the lease.
    const quiet =
      this.sim.faultsActive && this.sim.random.chance(this.sim.profile.quietSpellChance);
    const intervalMs = quiet
      ? this.sim.random.between(300, 1500)
      : this.sim.random.between(1, this.sim.profile.operationIntervalMsMax);
    this.sim.queue.after(intervalMs, () => this.issueOperation(endMs));
  }

  /**
   * A client's operation, to a member it picks; a probe is a plain write to whoever leads now,
   * so that the liveness checks do not hang on what the workload happened to do.
   */
  private startOperation(probe = false): void {
    const kind: ClientKind = probe
      ? "write"
      : this.sim.random.pick<ClientKind>([
          "write",
          "write",
          "cas",
          "readIndex",
          "leaseRead",
          "fencedWrite",
        ]);
    const key = `k${this.sim.random.nextInt(this.sim.profile.keys)}`;
    const id = this.nextOperationId++;
    const operation: ClientOperation = {
      id,
      key,
      kind,
      value: kind === "write" || kind === "cas" || kind === "fencedWrite" ? `v${id}` : null,
      expected: kind === "cas" ? this.expectedValue(key) : null,
      callMs: this.sim.queue.nowMs,
      returnMs: Number.POSITIVE_INFINITY,
      status: "pending",
      ok: null,
      readValue: null,
      index: 0,
    };
    this.operations.push(operation);
    // Clients ask any member (shoal's API forwards writes and reads to the leader), and the
    // leader more often than its share: a deposed one too, while it still believes it leads.
    const leader = this.sim.currentLeader();
    const target =
      this.sim.churn.deafOldLeaderFor(kind) ??
      (leader !== null && (probe || !this.sim.random.chance(this.sim.profile.followerClientShare))
        ? leader
        : this.sim.random.pick(this.sim.members.filter((member) => this.inFleet(member, leader))));
    this.sim.trace.add(`op ${id} ${kind} ${key} ${target?.id}`);
    this.sim.queue.after(1, () => target?.request(operation));
    this.sim.queue.after(operationTimeoutMs, () => {
      if (operation.status === "pending") operation.status = "unknown";
    });
  }

  /**
   * A member clients use: one in the leader's configuration (a deposed leader or a cut-off
   * member too), as a fleet's users know its nodes; any member not retired while none leads.
   */
  private inFleet(member: SimMember, leader: SimMember | null): boolean {
    if (this.sim.wiped.has(member.id)) return false;
    const membership = leader?.core?.status().membership;
    if (membership === undefined) return true;
    return membership.voters.includes(member.id) || membership.learners.includes(member.id);
  }

  /** A compare-and-set mostly expects a value recently written to the key, so some succeed. */
  private expectedValue(key: string): string | null {
    const written = this.operations.filter(
      (operation) => operation.key === key && operation.value !== null,
    );
    if (written.length === 0 || this.sim.random.chance(0.2)) return null;
    return (
      written[written.length - 1 - this.sim.random.nextInt(Math.min(3, written.length))]?.value ??
      null
    );
  }

  /**
   * The command of a fenced write leaves its leader, at once or late (the leader paused between
   * reading under its lease and proposing, past the lease), and reaches whoever leads then.
   */
  forwardFenced(operation: ClientOperation, version: number): void {
    const late = this.sim.faultsActive && this.sim.random.chance(this.sim.profile.lateFencedChance);
    const delayMs = late ? this.sim.random.between(500, 1500) : this.sim.random.between(1, 3);
    this.sim.trace.add(`fenced ${operation.id} ${version} ${delayMs}`);
    this.sim.queue.after(delayMs, () => {
      if (operation.status === "failed" || operation.status === "ok") return;
      const leader = this.sim.currentLeader();
      if (leader === null) this.complete(operation, "failed");
      else leader.proposeFenced(operation, version);
    });
  }

  complete(operation: ClientOperation, outcome: "ok" | "failed" | "unknown"): void {
    if (operation.status !== "pending") return;
    operation.status = outcome;
    if (outcome !== "unknown") operation.returnMs = this.sim.queue.nowMs;
    if (outcome === "ok" && isWrite(operation.kind)) {
      operation.index = this.appliedAt.get(operation.id)?.index ?? Number.POSITIVE_INFINITY;
    }
    this.sim.trace.add(`done ${operation.id} ${outcome} ${operation.ok} ${operation.readValue}`);
  }

  /** An entry applied on a member: the checker's record, and where each write first applied. */
  onApplied(member: MemberId, entry: Entry, result: KvResult | null): void {
    this.sim.checker.onApply(member, entry, result?.operation ?? null);
    if (result === null || result.duplicate) return;
    const first = this.appliedAt.get(result.operation);
    if (first === undefined) {
      this.appliedAt.set(result.operation, { index: entry.index, timeMs: this.sim.queue.nowMs });
    } else if (first.index !== entry.index) {
      throw new Violation(
        "applied once",
        `operation ${result.operation} applied at ${first.index} and again at ${entry.index}`,
      );
    }
  }
}

export function isWrite(kind: ClientKind): boolean {
  return kind === "write" || kind === "cas" || kind === "fencedWrite";
}

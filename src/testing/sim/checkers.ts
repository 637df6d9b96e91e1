// Safety checkers that watch a simulation as it runs and again at its end. A broken property
// throws a Violation, which stops the run and is reported with its seed.
import type { RaftCore } from "../../raft/raft-core.ts";
import type { Entry, HardState, MemberId, Message } from "../../raft/types.ts";
import { bytesHash } from "./trace-hash.ts";

export class Violation extends Error {
  override name = "Violation";
  constructor(
    readonly property: string,
    detail: string,
  ) {
    super(`${property}: ${detail}`);
  }
}

export interface AppliedRecord {
  readonly term: number;
  readonly hash: number;
  readonly member: MemberId;
  /** The client operation the entry carried; null for an entry that carries none (no-op). */
  readonly operation: number | null;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, MemberId>();
  private readonly applied = new Map<number, AppliedRecord>();
  /** Per member incarnation: the last commit index seen, so it never goes back. */
  private readonly commitSeen = new Map<MemberId, number>();
  /** Per leader and term: the last index its log had, so a leader only appends. */
  private readonly leaderLastIndex = new Map<string, { index: number; term: number }>();
  private readonly leadersChecked = new Set<string>();
  /** Per member: the latest append it acknowledged, which it must keep while in that term. */
  private readonly acknowledged = new Map<
    MemberId,
    { term: number; index: number; entryTerm: number }
  >();
  /** Whether the lease checker applies (clock drift stays within its bound). */
  checkLeases = true;
  /**
   * Whether the checks of mechanisms run (a vote durable before it is granted, nothing applied
   * past the commit index, a leader's log only grows, a follower keeps what it acknowledged, a
   * new leader holds every committed entry). Off, only outcomes count: two leaders in a term,
   * members that hold or apply different entries at an index, lease holders that overlap, a
   * lost acknowledged write, a stale read, a write applied twice, a cluster that stops. Mutant
   * campaigns run so, so that a planted bug is caught by what it breaks, not by its flag.
   */
  checkMechanisms = true;

  onRestart(member: MemberId): void {
    this.commitSeen.delete(member);
  }

  /** After every input a member handled: leaders, commit and apply marks. */
  afterStep(core: RaftCore): void {
    const status = core.status();
    if (!this.checkMechanisms) {
      this.checkCommittedAgree(core, status.commitIndex);
      if (status.role === "leader") this.checkOneLeader(core.id, status.term);
      return;
    }
    if (status.appliedIndex > status.commitIndex) {
      throw new Violation(
        "applied<=committed",
        `${core.id} applied ${status.appliedIndex} > ${status.commitIndex}`,
      );
    }
    const seen = this.commitSeen.get(core.id) ?? 0;
    if (status.commitIndex < seen) {
      throw new Violation("commit monotonic", `${core.id} commit ${seen} -> ${status.commitIndex}`);
    }
    this.commitSeen.set(core.id, status.commitIndex);
    this.checkCommittedAgree(core, status.commitIndex);
    this.checkAcknowledgedKept(core, status.term);
    if (status.role === "leader") this.checkLeader(core, status.term, status.lastIndex);
  }

  /** The entry a member holds as committed is the one every member applied at that index. */
  private checkCommittedAgree(core: RaftCore, commitIndex: number): void {
    const applied = this.applied.get(commitIndex);
    const held = core.termAt(commitIndex);
    if (applied === undefined || held === undefined || held === applied.term) return;
    throw new Violation(
      "committed entries agree",
      `${core.id} holds ${commitIndex}@${held} as committed, ${applied.member} applied ${commitIndex}@${applied.term}`,
    );
  }

  private checkOneLeader(member: MemberId, term: number): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== member) {
      throw new Violation("one leader per term", `${other} and ${member} lead term ${term}`);
    }
    this.leaderOfTerm.set(term, member);
  }

  private checkLeader(core: RaftCore, term: number, lastIndex: number): void {
    this.checkOneLeader(core.id, term);
    const key = `${core.id}@${term}`;
    const previous = this.leaderLastIndex.get(key);
    if (previous !== undefined && previous.index >= core.status().firstIndex) {
      if (lastIndex < previous.index || core.termAt(previous.index) !== previous.term) {
        throw new Violation("leader append-only", `${key} rewrote its log at ${previous.index}`);
      }
    }
    this.leaderLastIndex.set(key, { index: lastIndex, term: core.termAt(lastIndex) ?? 0 });
    if (!this.leadersChecked.has(key)) {
      this.leadersChecked.add(key);
      this.checkLeaderCompleteness(core, term);
    }
  }

  /** A new leader holds every entry applied anywhere from earlier terms. */
  private checkLeaderCompleteness(core: RaftCore, term: number): void {
    const first = core.status().firstIndex;
    for (const [index, record] of this.applied) {
      if (record.term >= term || index < first) continue;
      const held = core.termAt(index);
      if (held !== record.term) {
        throw new Violation(
          "leader completeness",
          `${core.id} leads term ${term} without committed ${index}@${record.term} (has ${held})`,
        );
      }
    }
  }

  /** A member acknowledges an append: what it matched is the leader's, and stays. */
  onAcknowledge(core: RaftCore, message: Message): void {
    if (message.type !== "appendResponse" || !message.success) return;
    const entryTerm = core.termAt(message.index);
    if (entryTerm === undefined) return;
    this.acknowledged.set(core.id, { term: message.term, index: message.index, entryTerm });
  }

  /**
   * Within one term a member's log changes only by its leader's appends, which agree with what
   * it acknowledged; the leader counted that acknowledgement towards a commit.
   */
  private checkAcknowledgedKept(core: RaftCore, term: number): void {
    const acknowledged = this.acknowledged.get(core.id);
    if (acknowledged === undefined || acknowledged.term !== term) return;
    if (acknowledged.index < core.snapshotMeta.index) return;
    const held = core.termAt(acknowledged.index);
    if (held !== acknowledged.entryTerm) {
      throw new Violation(
        "acknowledged entries kept",
        `${core.id} acknowledged ${acknowledged.index}@${acknowledged.entryTerm} in term ${term}, now holds ${held}`,
      );
    }
  }

  /** Term and vote are durable before any message that depends on them leaves. */
  beforeSend(member: MemberId, message: Message, durable: HardState): void {
    if (!this.checkMechanisms) return;
    if (message.type === "preVote" || message.type === "preVoteResponse") return;
    if (message.term > durable.term) {
      throw new Violation(
        "term durable before reply",
        `${member} sent term ${message.term}, stored ${durable.term}`,
      );
    }
    // A grant needs its vote on disk, unless the disk already holds a later term: the member
    // can never vote in the grant's term again (one batch may carry several terms' answers).
    if (message.type === "voteResponse" && message.granted && durable.term === message.term) {
      if (durable.votedFor !== message.to) {
        throw new Violation(
          "vote durable before reply",
          `${member} granted ${message.to} in term ${message.term}, stored ${durable.votedFor}@${durable.term}`,
        );
      }
    }
  }

  /**
   * Every member applies the same entry at the same index. The host names the client operation
   * the entry carried, so an acknowledged write can be matched to its own entry.
   */
  onApply(member: MemberId, entry: Entry, operation: number | null): void {
    const hash = bytesHash(entry.data);
    const record = this.applied.get(entry.index);
    if (record === undefined) {
      this.applied.set(entry.index, { term: entry.term, hash, member, operation });
      return;
    }
    if (record.term !== entry.term || record.hash !== hash) {
      throw new Violation(
        "state machine safety",
        `${member} applied ${entry.index}@${entry.term}, ${record.member} applied ${entry.index}@${record.term}`,
      );
    }
  }

  appliedRecord(index: number): AppliedRecord | undefined {
    return this.applied.get(index);
  }

  /** At most one member believes it holds a lease at one simulated instant. */
  checkLeaseHolders(holders: readonly MemberId[], nowMs: number): void {
    if (!this.checkLeases || holders.length <= 1) return;
    throw new Violation("lease overlap", `${holders.join(" and ")} hold leases at ${nowMs} ms`);
  }
}

/**
 * An acknowledged write survives: the entry applied at the index it was acknowledged at is that
 * operation's own entry. Some entry at that index is not enough; a write whose entry a later
 * leader replaced (by another client's or a no-op) was lost, however the index got applied.
 */
export function checkAcknowledgedWrite(
  write: { readonly id: number; readonly index: number },
  appliedIndex: number,
  record: AppliedRecord | undefined,
): { ok: true } | { ok: false; reason: string } {
  if (write.index > appliedIndex) {
    return {
      ok: false,
      reason: `operation ${write.id} at ${write.index}, applied ${appliedIndex}`,
    };
  }
  if (record === undefined) {
    return { ok: false, reason: `operation ${write.id} never applied at ${write.index}` };
  }
  if (record.operation !== write.id) {
    const held =
      record.operation === null ? "an entry of no operation" : `operation ${record.operation}`;
    return {
      ok: false,
      reason: `operation ${write.id} acknowledged at ${write.index}, where ${held} was applied`,
    };
  }
  return { ok: true };
}

/** Log matching: where two logs hold an entry of the same term at an index, all before agree. */
export function checkLogMatching(cores: readonly RaftCore[]): void {
  for (let left = 0; left < cores.length; left++) {
    for (let right = left + 1; right < cores.length; right++) {
      checkPair(cores[left] as RaftCore, cores[right] as RaftCore);
    }
  }
}

function checkPair(left: RaftCore, right: RaftCore): void {
  const low = Math.max(left.status().firstIndex, right.status().firstIndex);
  const high = Math.min(left.status().lastIndex, right.status().lastIndex);
  let matchedThrough = 0;
  for (let index = high; index >= low; index--) {
    if (left.termAt(index) === right.termAt(index)) {
      matchedThrough = index;
      break;
    }
  }
  for (let index = low; index <= matchedThrough; index++) {
    const a = left.entryAt(index);
    const b = right.entryAt(index);
    if (a.term !== b.term || bytesHash(a.data) !== bytesHash(b.data)) {
      throw new Violation(
        "log matching",
        `${left.id} and ${right.id} differ at ${index} below ${matchedThrough}`,
      );
    }
  }
}

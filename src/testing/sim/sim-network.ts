// The simulated network: per-message delay, loss, duplication, reordering, very late delivery,
// links cut by partitions (symmetric or one-way) or by isolating a member, and stalled links
// that hold what is sent on them and deliver it all, in order, once they move again. Two aimed
// faults chase known Raft mistakes: a new leader's no-op lost on the way, and an older term's
// append replayed to a member right after it accepted a newer leader's entries at the same
// indexes.
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { AppendMessage, MemberId, Message } from "../../raft/types.ts";
import type { EventQueue } from "./event-queue.ts";
import { calmNetwork, type NetworkFaults } from "./fault-profile.ts";
import type { TraceHash } from "./trace-hash.ts";

const healGraceMs = 100;
/** Appends with entries remembered per receiver, for stale replays. */
const replayableAppendsMax = 32;

export { calmNetwork };

export class SimNetwork {
  private faults: NetworkFaults = calmNetwork;
  /** Cut links, as "from>to". */
  private readonly cut = new Set<string>();
  sent = 0;
  delivered = 0;
  private healedAtMs = Number.NEGATIVE_INFINITY;
  /** Per receiver: appends with entries it was sent, newest last (any may arrive again). */
  private readonly appendsSent = new Map<MemberId, AppendMessage[]>();
  /** Stalled links, as "from>to": what is sent on them waits there, in order. */
  private readonly stalled = new Map<string, Message[]>();

  constructor(
    private readonly queue: EventQueue,
    private readonly random: SeededRandom,
    private readonly trace: TraceHash,
    /** Every member there is now (members with a wiped data dir come back under new ids). */
    private readonly memberIds: () => readonly MemberId[],
    private readonly deliver: (message: Message) => void,
    /** The term of a member's entry at `index` now, so aimed faults hit where they matter. */
    private readonly termAt: (member: MemberId, index: number) => number | undefined,
  ) {}

  setFaults(faults: NetworkFaults): void {
    this.faults = faults;
  }

  send(message: Message): void {
    this.sent++;
    // Even a message sent into a cut link may come out much later (a retransmission after the
    // link heals), so it is remembered for stale replays.
    if (message.type === "append" && message.entries.length > 0) this.remember(message);
    const held = this.stalled.get(`${message.from}>${message.to}`);
    if (held !== undefined) {
      held.push(message);
      return;
    }
    if (this.blocked(message) || this.random.chance(this.faults.lossRate)) return;
    if (this.noopLost(message)) return;
    this.schedule(message);
    if (this.random.chance(this.faults.duplicateRate)) this.schedule(message);
  }

  /**
   * A new leader's no-op is lost on its way to a member that would accept it, while the older
   * entries before it (sent alone when appends carry one entry) get through.
   */
  private noopLost(message: Message): boolean {
    if (this.faults.noopLossRate === 0 || message.type !== "append") return false;
    const noop = message.entries.some(
      (entry) => entry.kind === "noop" && entry.term === message.term,
    );
    if (!noop) return false;
    if (this.termAt(message.to, message.prevIndex) !== message.prevTerm) return false;
    return this.random.chance(this.faults.noopLossRate);
  }

  private remember(message: AppendMessage): void {
    if (this.faults.staleReplayRate === 0) return;
    const sent = this.appendsSent.get(message.to) ?? [];
    sent.push(message);
    if (sent.length > replayableAppendsMax) sent.shift();
    this.appendsSent.set(message.to, sent);
  }

  /** Whether the receiver's log matches the append's start but differs in its entries. */
  private wouldRewrite(append: AppendMessage): boolean {
    const member = append.to;
    if (this.termAt(member, append.prevIndex) !== append.prevTerm) return false;
    return append.entries.some((entry) => this.termAt(member, entry.index) !== entry.term);
  }

  /**
   * Right after a member accepted entries of term T, an append of an older term over the same
   * indexes, sent earlier and held up in the network, arrives: a deposed leader's last words.
   */
  private chaseWithStaleAppend(message: Message): void {
    if (message.type !== "append" || message.entries.length === 0) return;
    if (!this.random.chance(this.faults.staleReplayRate)) return;
    const first = message.prevIndex + 1;
    const last = message.prevIndex + message.entries.length;
    const stale = (this.appendsSent.get(message.to) ?? []).filter(
      (old) =>
        old.term < message.term &&
        old.prevIndex < last &&
        old.prevIndex + old.entries.length >= first &&
        this.wouldRewrite(old),
    );
    if (stale.length === 0) return;
    const replay = this.random.pick(stale);
    this.queue.after(this.random.between(0, 3), () => {
      if (this.faults.staleReplayRate === 0) return;
      this.delivered++;
      this.trace.add(`replay ${replay.type} ${replay.from}>${replay.to} ${replay.term}`);
      this.deliver(replay);
    });
  }

  private schedule(message: Message): void {
    const { delayMsMin, delayMsMax, lateRate, lateMsMax } = this.faults;
    const late = lateRate > 0 && this.random.chance(lateRate);
    const delayMs = late
      ? this.random.between(delayMsMax, Math.max(delayMsMax, lateMsMax))
      : this.random.between(delayMsMin, delayMsMax);
    const sentMs = this.queue.nowMs;
    this.queue.after(delayMs, () => {
      // A link cut while the message travelled loses it too.
      if (this.blocked(message)) return;
      // Healing resets connections: what was still in flight long after is lost.
      if (sentMs < this.healedAtMs && this.queue.nowMs > this.healedAtMs + healGraceMs) return;
      this.delivered++;
      this.trace.add(`${message.type} ${message.from}>${message.to} ${message.term}`);
      this.deliver(message);
      this.chaseWithStaleAppend(message);
    });
  }

  private blocked(message: { from: MemberId; to: MemberId }): boolean {
    return this.cut.size > 0 && this.cut.has(`${message.from}>${message.to}`);
  }

  /**
   * One half of a call between members (a forwarded write, a read's index): delayed, lost or
   * cut like a message, never duplicated (it rides one connection).
   */
  carry(from: MemberId, to: MemberId, run: () => void): void {
    const link = { from, to };
    if (this.blocked(link) || this.random.chance(this.faults.lossRate)) return;
    const { delayMsMin, delayMsMax } = this.faults;
    this.queue.after(this.random.between(delayMsMin, delayMsMax), () => {
      if (this.blocked(link)) return;
      this.trace.add(`call ${from}>${to}`);
      run();
    });
  }

  partition(groups: readonly (readonly MemberId[])[]): void {
    this.cut.clear();
    for (const group of groups) {
      for (const other of groups) {
        if (other === group) continue;
        for (const from of group) for (const to of other) this.cut.add(`${from}>${to}`);
      }
    }
    this.trace.add(`partition ${groups.map((group) => group.join(",")).join("|")}`);
  }

  isolate(member: MemberId): void {
    this.trace.add(`isolate ${member}`);
    for (const other of this.memberIds()) {
      if (other === member) continue;
      this.cut.add(`${member}>${other}`);
      this.cut.add(`${other}>${member}`);
    }
  }

  /** Heals every other cut and isolates `member`. */
  isolateAlone(member: MemberId): void {
    this.cut.clear();
    this.isolate(member);
  }

  /**
   * The link from `from` to `to` stalls, as a stream whose packets stop moving without the
   * connection breaking: what is sent on it is neither lost nor delivered until it moves again.
   */
  stall(from: MemberId, to: MemberId): void {
    this.trace.add(`stall ${from}>${to}`);
    this.stalled.set(`${from}>${to}`, []);
  }

  /** The stalled link moves again: everything it held arrives at once, in the order sent. */
  resume(from: MemberId, to: MemberId): void {
    const held = this.stalled.get(`${from}>${to}`);
    if (held === undefined) return;
    this.stalled.delete(`${from}>${to}`);
    this.trace.add(`resume ${from}>${to} ${held.length}`);
    const delayMs = this.random.between(this.faults.delayMsMin, this.faults.delayMsMax);
    for (const message of held) {
      this.queue.after(delayMs, () => {
        if (this.blocked(message)) return;
        this.delivered++;
        this.trace.add(`${message.type} ${message.from}>${message.to} ${message.term}`);
        this.deliver(message);
      });
    }
  }

  /** The stalled link's connection is reset instead: what it held is lost, and it carries again. */
  reset(from: MemberId, to: MemberId): void {
    const held = this.stalled.get(`${from}>${to}`);
    if (held === undefined) return;
    this.stalled.delete(`${from}>${to}`);
    this.trace.add(`reset ${from}>${to} ${held.length}`);
  }

  cutOneWay(from: MemberId, to: MemberId): void {
    if (from === to) return;
    this.trace.add(`cut ${from}>${to}`);
    this.cut.add(`${from}>${to}`);
  }

  /** Heals the network for good: links come back and stale packets in flight are dropped. */
  healForGood(): void {
    this.healedAtMs = this.queue.nowMs;
    this.heal();
  }

  heal(): void {
    this.cut.clear();
    this.trace.add("network healed");
  }
}

// The simulated network: per-message delay, loss, duplication, reordering, very late delivery,
// and links cut by partitions (symmetric or one-way) or by isolating a member.
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { MemberId, Message } from "../../raft/types.ts";
import type { EventQueue } from "./event-queue.ts";
import type { NetworkFaults } from "./fault-profile.ts";
import type { TraceHash } from "./trace-hash.ts";

const healGraceMs = 100;

export class SimNetwork {
  private faults: NetworkFaults = {
    lossRate: 0,
    duplicateRate: 0,
    delayMsMin: 1,
    delayMsMax: 5,
    lateRate: 0,
    lateMsMax: 0,
  };
  /** Cut links, as "from>to". */
  private readonly cut = new Set<string>();
  sent = 0;
  delivered = 0;
  private healedAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly queue: EventQueue,
    private readonly random: SeededRandom,
    private readonly trace: TraceHash,
    private readonly memberIds: readonly MemberId[],
    private readonly deliver: (message: Message) => void,
  ) {}

  setFaults(faults: NetworkFaults): void {
    this.faults = faults;
  }

  send(message: Message): void {
    this.sent++;
    if (this.blocked(message) || this.random.chance(this.faults.lossRate)) return;
    this.schedule(message);
    if (this.random.chance(this.faults.duplicateRate)) this.schedule(message);
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
    });
  }

  private blocked(message: Message): boolean {
    return this.cut.size > 0 && this.cut.has(`${message.from}>${message.to}`);
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
    for (const other of this.memberIds) {
      if (other === member) continue;
      this.cut.add(`${member}>${other}`);
      this.cut.add(`${other}>${member}`);
    }
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

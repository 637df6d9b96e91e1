// What a leader knows about each follower's log: how far it matches, what to send next, and
// how many append messages are in flight (flow control).
import { assert } from "../core/assert.ts";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = "probe";
  /** In probe state, one append is outstanding until a response or a heartbeat response. */
  probeSent = false;
  /** Last index of each in-flight append, oldest first (replicate state only). */
  inflight: number[] = [];
  /** The latest heartbeat round this follower acknowledged in the current term. */
  acknowledgedRound = 0;
  /** The commit index the latest append to this member carried. */
  commitSent = 0;
  snapshotIndex = 0;
  snapshotSentAtMs = 0;
  /** When the follower last answered; a new leader counts its election as a fresh hearing. */
  lastHeardMs: number;

  constructor(next: number, nowMs: number) {
    assert(next >= 1);
    this.next = next;
    this.lastHeardMs = nowMs;
  }

  becomeProbe(next: number): void {
    this.state = "probe";
    this.next = Math.max(next, this.match + 1);
    this.probeSent = false;
    this.inflight = [];
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight = [];
  }

  becomeSnapshot(snapshotIndex: number, nowMs: number): void {
    this.state = "snapshot";
    this.snapshotIndex = snapshotIndex;
    this.snapshotSentAtMs = nowMs;
    this.inflight = [];
  }

  /** Records an acknowledged match; returns whether it moved forward. */
  acknowledge(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    while (this.inflight.length > 0 && (this.inflight[0] ?? 0) <= index) this.inflight.shift();
    return true;
  }

  sentEntries(lastIndex: number): void {
    assert(this.state === "replicate");
    this.next = lastIndex + 1;
    this.inflight.push(lastIndex);
  }
}

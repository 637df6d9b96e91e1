// The simulator's agenda: events ordered by simulated time, ties broken by insertion order so a
// seed always replays the same way.
import { assert } from "../../core/assert.ts";

interface Scheduled {
  readonly timeMs: number;
  readonly sequence: number;
  readonly run: () => void;
}

export class EventQueue {
  private heap: Scheduled[] = [];
  private sequence = 0;
  nowMs = 0;

  get size(): number {
    return this.heap.length;
  }

  at(timeMs: number, run: () => void): void {
    assert(timeMs >= this.nowMs, "scheduling into the past");
    this.push({ timeMs, sequence: this.sequence++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.nowMs + delayMs, run);
  }

  /** Runs the next event; returns false when none is due by `untilMs`. */
  runNext(untilMs: number): boolean {
    const top = this.heap[0];
    if (top === undefined || top.timeMs > untilMs) return false;
    this.pop();
    this.nowMs = top.timeMs;
    top.run();
    return true;
  }

  private push(item: Scheduled): void {
    const heap = this.heap;
    heap.push(item);
    let position = heap.length - 1;
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!earlier(item, heap[parent] as Scheduled)) break;
      heap[position] = heap[parent] as Scheduled;
      position = parent;
    }
    heap[position] = item;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let position = 0;
    for (;;) {
      const left = position * 2 + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && earlier(heap[right] as Scheduled, heap[left] as Scheduled)
          ? right
          : left;
      if (!earlier(heap[child] as Scheduled, last)) break;
      heap[position] = heap[child] as Scheduled;
      position = child;
    }
    heap[position] = last;
  }
}

function earlier(left: Scheduled, right: Scheduled): boolean {
  return (
    left.timeMs < right.timeMs || (left.timeMs === right.timeMs && left.sequence < right.sequence)
  );
}

// The ready/flush pipeline: it drives the core's tick/step/ready/advance cycle over the host's
// ports. For each batch: send what may leave at once, write, flush when the core says it must
// (off the host's turn), send the rest, apply, answer reads, advance. Until a flush is done the
// core is left alone (it takes no input between handing out a batch and hearing it was
// persisted); whatever arrives meanwhile waits its turn, so the next batch carries all of it.
import { fail, type Result } from "../../core/errors.ts";
import { batchOf, isEmptyBatch, type LogStoreBatch } from "../log-store.ts";
import { RaftCore, type RaftCoreOptions } from "../raft-core.ts";
import type {
  Entry,
  HardState,
  Message,
  PersistentState,
  ReadState,
  Ready,
  SnapshotMessage,
} from "../types.ts";
import type {
  HostBugs,
  HostLogDisk,
  HostNetwork,
  HostObserver,
  HostSnapshotImages,
  HostStateMachine,
  HostTimers,
} from "./ports.ts";

export interface PipelineOptions {
  readonly core: Omit<RaftCoreOptions, "state" | "appliedIndex" | "nowMs">;
  /** What `disk` loaded, after the host put its snapshot images right. */
  readonly state: PersistentState;
  readonly disk: HostLogDisk;
  readonly images: HostSnapshotImages;
  readonly machine: HostStateMachine;
  readonly network: HostNetwork;
  readonly timers: HostTimers;
  readonly tickMs: number;
  /** Work on the core that may wait for a flush; beyond it work is refused (a disk stalls). */
  readonly waitingMax: number;
  /** Applied entries past the last snapshot before a new one is taken (0: never). */
  readonly snapshotEntries: number;
  readonly observer?: HostObserver | undefined;
  readonly bugs?: HostBugs | undefined;
  /** An apply that throws, or a flush that fails: the host cannot go on (it crashes). */
  readonly fatal: (error: unknown) => void;
}

/** A peer's request waiting for this member's answers; `stepped` once the core has seen it. */
interface ReplyWaiter {
  peer: string;
  stepped: boolean;
  resolve: (messages: Message[]) => void;
}

export type AppliedListener = (
  entries: readonly Entry[],
  results: readonly (Result<unknown> | null)[],
) => void;

export class RaftPipeline {
  readonly core: RaftCore;
  private readonly appliedListeners = new Set<AppliedListener>();
  private readonly readListeners = new Set<(read: ReadState) => void>();
  private stopTicker: (() => void) | null = null;
  private drainScheduled = false;
  private closed = false;
  /** The last log index this node knows to be on its disk (entries up to it are flushed). */
  private durableIndex: number;
  /** Peers whose requests wait for this member's answers (see `receiveAndReply`). */
  private readonly replyWaiters: ReplyWaiter[] = [];
  /** True from writing a ready batch until its flush finished and the core advanced. */
  private flushing = false;
  /** A tick fell during the flush under way; it runs once the flush is done. */
  private tickPending = false;
  /** Work on the core that arrived while a batch was flushing, in arrival order. */
  private readonly waiting: { run: () => void; cancel: () => void }[] = [];
  /**
   * A newer commit index that was not written: a batch holding nothing else skips the disk (the
   * core allows a lazy commit index, learned again from the leader after a restart), and the
   * next batch that is written carries it.
   */
  private unwrittenHardState: HardState | null = null;

  constructor(private readonly options: PipelineOptions) {
    const { state } = options;
    this.durableIndex = state.entries.at(-1)?.index ?? state.snapshot?.index ?? 0;
    this.core = new RaftCore({
      ...options.core,
      state,
      appliedIndex: options.machine.appliedIndex(),
      nowMs: options.timers.monotonic(),
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  now(): number {
    return this.options.timers.monotonic();
  }

  start(): void {
    this.drain();
    this.stopTicker = this.options.timers.every(this.options.tickMs, () => {
      if (this.closed) return;
      // A tick during a flush runs right after it (one at most: it reads the clock then). Under
      // a stream of writes a flush is nearly always under way, and a skipped tick would starve
      // the heartbeat rounds that keep the lease.
      if (this.flushing) this.tickPending = true;
      else this.tick();
    });
  }

  /** Entries applied, with their results (a proposal's answer, an event stream). */
  onApplied(listener: AppliedListener): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  /** ReadIndex answers: the read with `context` may be served once `index` is applied. */
  onReadState(listener: (read: ReadState) => void): () => void {
    this.readListeners.add(listener);
    return () => this.readListeners.delete(listener);
  }

  private tick(): void {
    this.tickPending = false;
    this.core.tick(this.now());
    this.observed();
    this.drain();
  }

  /**
   * Runs `work` on the core now, or after the batch being flushed, in arrival order. While a
   * disk stalls, work beyond `waitingMax` is cancelled (a write is refused, a message dropped:
   * Raft sends again).
   */
  withCore(work: () => void, cancel: () => void = () => {}): void {
    if (this.closed || this.waiting.length >= this.options.waitingMax) cancel();
    else if (this.flushing) this.waiting.push({ run: work, cancel });
    else work();
  }

  /**
   * `withCore` for work that answers: resolves with what `work` returned when it ran, or with
   * E_NOT_READY when it was cancelled.
   */
  onCore<T>(work: () => T | Promise<T>): Promise<T | Result<never>> {
    return new Promise<T | Result<never>>((resolve, reject) => {
      const cancelled = () =>
        resolve(
          fail(
            "E_NOT_READY",
            this.closed ? "the node is shutting down" : "the log is busy: try again shortly",
          ),
        );
      this.withCore(() => {
        try {
          resolve(work());
        } catch (error) {
          reject(error);
        }
      }, cancelled);
    });
  }

  /** Hands messages from peers to the core. */
  receive(messages: readonly Message[]): void {
    this.withCore(() => this.step(messages));
  }

  /**
   * Hands a peer's messages to the core and resolves with this member's answers to that peer
   * (an acknowledgement, a vote), once they may leave: they travel back in the peer's own
   * request instead of in a request of their own. Resolves with none when the core had nothing
   * to say, or the host closed.
   */
  receiveAndReply(from: string, messages: readonly Message[]): Promise<Message[]> {
    return new Promise((resolve) => {
      const waiter: ReplyWaiter = { peer: from, stepped: false, resolve };
      this.replyWaiters.push(waiter);
      this.withCore(
        () => {
          this.step(messages);
          waiter.stepped = true;
        },
        () => this.resolveWaiter(waiter, []),
      );
    });
  }

  private step(messages: readonly Message[]): void {
    const now = this.now();
    for (const message of messages) {
      if (message.type === "snapshot" && !this.imageMatches(message)) continue;
      this.core.step(message, now);
    }
    this.observed();
    this.drainSoon();
  }

  /**
   * A snapshot's image must hold exactly the index its metadata names: installed otherwise, the
   * log and the state would disagree (and a restart could find the state ahead of the log). A
   * mismatch is refused unseen by the core; the leader sends again.
   */
  private imageMatches(message: SnapshotMessage): boolean {
    if (this.options.bugs?.anyImage) return message.data !== null;
    const imageIndex = message.data === null ? null : this.options.images.indexOf(message.data);
    if (imageIndex === message.snapshot.index) return true;
    this.options.observer?.warn?.("refused a snapshot whose image does not match its metadata", {
      from: message.from,
      snapshotIndex: message.snapshot.index,
      imageIndex,
    });
    return false;
  }

  /** Sends messages, handing those for a peer that waits for answers to its request. */
  private deliver(messages: readonly Message[]): void {
    const toSend: Message[] = [];
    const answers = new Map<ReplyWaiter, Message[]>();
    for (const message of messages) {
      this.options.observer?.sent?.(message);
      const waiter = this.replyWaiters.find((w) => w.stepped && w.peer === message.to);
      if (!waiter) {
        toSend.push(message);
        continue;
      }
      const list = answers.get(waiter) ?? [];
      list.push(message);
      answers.set(waiter, list);
    }
    for (const [waiter, list] of answers) this.resolveWaiter(waiter, list);
    if (toSend.length > 0) this.options.network.send(toSend);
  }

  /** After a drain sent all it had, a peer still waiting gets an empty answer. */
  private releaseWaiters(): void {
    for (const waiter of this.replyWaiters.filter((w) => w.stepped)) this.resolveWaiter(waiter, []);
  }

  private resolveWaiter(waiter: ReplyWaiter, messages: Message[]): void {
    const at = this.replyWaiters.indexOf(waiter);
    if (at >= 0) this.replyWaiters.splice(at, 1);
    waiter.resolve(messages);
  }

  /**
   * Drains once the current turn is over: proposals and peer messages that arrive together (64
   * concurrent writes, several pipelined appends) then share one flush and one append message
   * per follower, instead of one each.
   */
  drainSoon(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    this.options.timers.soon(() => {
      this.drainScheduled = false;
      if (!this.closed) this.drain();
    });
  }

  /**
   * Runs the pending ready batches: persist, send, apply, answer. A batch that must be synced is
   * finished only once its flush is done; the drain goes on from there.
   */
  drain(): void {
    if (this.flushing || this.closed) return;
    while (this.core.hasReady()) {
      const ready = this.core.ready();
      // A received image is on disk before the log records its snapshot, and is named by its
      // index only after: whatever the moment of a crash, the image of what the log says is on
      // disk.
      if (ready.snapshot) this.options.images.writeReceived(ready.snapshot.data);
      const batch = this.withUnwrittenHardState(batchOf(ready));
      if (!ready.mustSync && onlyHardState(batch)) this.unwrittenHardState = batch.hardState;
      else if (!isEmptyBatch(batch)) this.options.disk.write(batch);
      const mustSync = ready.mustSync && !this.options.bugs?.skipFlush;
      if (!mustSync) {
        this.deliver(ready.sendNow);
        this.finish(ready);
        continue;
      }
      // From here the core is left alone until the flush is done, also by listeners of the
      // entries applied below.
      this.flushing = true;
      // A leader's appends leave before its own flush (Raft thesis §10.2.1): followers write
      // while the leader writes, and the leader counts itself only once it is on disk.
      this.deliver(ready.sendNow);
      if (this.options.bugs?.sendBeforeFlush) this.deliver(this.attachImages(ready.messages));
      // Entries this batch replaces, or a snapshot replaces, are not on disk in their new form:
      // what is on disk at those indexes is what the batch overwrites (seed 1995: a follower
      // applied a new leader's entry early over the old one still on disk, crashed, and came
      // back holding the old entry as committed).
      const replacedFrom = batch.entries[0]?.index ?? (batch.snapshot?.index ?? Infinity) + 1;
      this.durableIndex = Math.min(this.durableIndex, replacedFrom - 1);
      // Committed entries this node already has on disk need not wait for this flush either.
      this.applyEntries(ready.committedEntries.filter((entry) => entry.index <= this.durableIndex));
      this.options.disk.flush(
        () => this.flushed(ready),
        (error) => this.flushFailed(error),
      );
      return;
    }
    this.releaseWaiters();
    this.maybeCompact();
  }

  private withUnwrittenHardState(batch: LogStoreBatch): LogStoreBatch {
    const hardState = batch.hardState ?? this.unwrittenHardState;
    this.unwrittenHardState = null;
    return hardState === batch.hardState ? batch : { ...batch, hardState };
  }

  private flushed(ready: Ready): void {
    if (this.closed) return;
    this.flushing = false;
    this.durableIndex = Math.max(
      this.durableIndex,
      ready.entries.at(-1)?.index ?? 0,
      ready.snapshot?.meta.index ?? 0,
    );
    this.finish(ready, !this.options.bugs?.sendBeforeFlush);
    // Work that waited first (acknowledgements that arrived during the flush count before
    // CheckQuorum judges), then the tick that fell in the flush, then the next drain, so one
    // batch carries all of it. A tick that cannot run now stays pending for the next flush.
    while (!this.flushing && this.waiting.length > 0) this.waiting.shift()?.run();
    if (this.tickPending && !this.flushing) this.tick();
    else this.drain();
  }

  /** A log that cannot reach its disk must not go on: crash, and start again from the log. */
  private flushFailed(error: unknown): void {
    if (this.closed) return;
    this.options.fatal(error);
  }

  /** Everything after a batch is durable: snapshot swap, send, apply, answer reads, advance. */
  private finish(ready: Ready, send = true): void {
    const { images } = this.options;
    if (ready.snapshot) {
      images.installReceived(ready.snapshot.meta.index);
      this.options.machine.restore(ready.snapshot.data);
      // Nothing was applied entry by entry, but the applied index moved: waiters look again.
      for (const listener of this.appliedListeners) listener([], []);
    }
    // Images are attached before older ones go: a snapshot message of this batch may still name
    // the image this batch's compaction replaces.
    if (send) this.deliver(this.attachImages(ready.messages));
    // The log now records this snapshot: older images are no longer needed.
    const recorded = ready.snapshot?.meta.index ?? ready.compaction?.index;
    if (recorded !== undefined) images.keepOnly(recorded);
    this.applyEntries(ready.committedEntries);
    for (const read of ready.readStates) for (const listener of this.readListeners) listener(read);
    this.core.advance(ready);
    this.observed();
  }

  private attachImages(messages: readonly Message[]): Message[] {
    return messages.flatMap((message) => this.withSnapshotData(message));
  }

  /** Applies committed entries, then tells the listeners (one of them answers proposals). */
  private applyEntries(entries: readonly Entry[]): void {
    const { machine } = this.options;
    const fresh = entries.filter((entry) => entry.index > machine.appliedIndex());
    if (fresh.length === 0) return;
    let results: (Result<unknown> | null)[];
    try {
      results = machine.applyAll(fresh);
    } catch (error) {
      // An apply that throws is a bug, and the log cannot go on past an entry it could not
      // apply: a restart replays from the last good index.
      this.options.fatal(error);
      throw error;
    }
    this.options.observer?.applied?.(fresh, results);
    for (const listener of this.appliedListeners) listener(fresh, results);
  }

  /**
   * The core sends snapshot metadata only; the image is the host's image of exactly that index.
   * Without it nothing is sent (never another index's image): the core sends again later.
   */
  private withSnapshotData(message: Message): Message[] {
    if (message.type !== "snapshot" || message.data !== null) return [message];
    const { images } = this.options;
    // The mutant attaches whatever image is newest, as one image slot would.
    const newest = this.options.bugs?.anyImage ? images.newestIndex() : null;
    const data = images.read(newest ?? message.snapshot.index);
    if (data !== null) return [{ ...message, data }];
    this.options.observer?.warn?.("no image of the snapshot to send", {
      snapshotIndex: message.snapshot.index,
    });
    return [];
  }

  /** Takes a snapshot once enough entries were applied past the last one. */
  private maybeCompact(): void {
    const every = this.options.snapshotEntries;
    if (every === 0) return;
    const applied = this.options.machine.appliedIndex();
    if (applied - this.core.snapshotMeta.index < every) return;
    this.takeSnapshot();
  }

  /** Takes a snapshot now (or once the batch being flushed is done). */
  snapshotNow(): void {
    this.withCore(() => this.takeSnapshot());
  }

  private takeSnapshot(): void {
    const applied = this.options.machine.appliedIndex();
    const recorded = this.core.snapshotMeta.index;
    if (applied < recorded) return;
    const { images } = this.options;
    if (applied === recorded && (recorded === 0 || images.has(recorded))) return;
    // The image first, then the compaction (written to the log by the drain); the older image
    // stays until the log records this one (see `finish`). Retaking a missing image of the
    // recorded snapshot compacts nothing.
    images.take(applied);
    this.core.compact(applied);
    this.drain();
  }

  private observed(): void {
    this.options.observer?.stepped?.();
  }

  /** Stops the ticker and cancels every waiting piece of work; the caller closes the ports. */
  close(): void {
    this.closed = true;
    this.stopTicker?.();
    for (const work of this.waiting.splice(0)) work.cancel();
    for (const waiter of [...this.replyWaiters]) this.resolveWaiter(waiter, []);
  }
}

/** A batch whose only news is the hard state (with no sync asked, only the commit index moved). */
function onlyHardState(batch: LogStoreBatch): boolean {
  return (
    batch.hardState !== null &&
    batch.entries.length === 0 &&
    batch.snapshot === null &&
    batch.compaction === null
  );
}

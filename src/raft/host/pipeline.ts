// The ready/flush pipeline: it drives the core's tick/step/ready/advance cycle over the host's
// ports. For each batch: send what may leave at once, write, flush when the core says it must
// (off the host's turn), send the rest, apply, answer reads, advance. Until a flush is done the
// core is left alone (it takes no input between handing out a batch and hearing it was
// persisted); whatever arrives meanwhile waits its turn, so the next batch carries all of it.
// A full disk is no crash: the batch it refused stays held, whole, and is tried again until it
// goes through; meanwhile the core takes no new work and proposals hear E_NO_SPACE.
import { fail, isNoSpaceError, type Result } from "../../core/errors.ts";
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
import { type LeadershipChange, LeaseWatch } from "./lease-watch.ts";
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
  /**
   * A batch (or a snapshot image) that a full disk refused (E_NO_SPACE) is tried again after
   * this long.
   */
  readonly diskFullRetryMs: number;
  /**
   * An apply that throws, or a flush that fails, for any other reason than a full disk: the
   * host cannot go on (it crashes).
   */
  readonly fatal: (error: unknown) => void;
}

/** The steps of a batch that must not run twice when a full disk interrupts it. */
type Step = "persist" | "early" | "flush" | "install" | "restore" | "send";

/** A batch the core handed out and has not heard the end of (advance), and how far it got. */
interface HeldBatch {
  readonly ready: Ready;
  readonly batch: LogStoreBatch;
  /** Nothing that depends on the batch happens before its flush is done. */
  readonly mustSync: boolean;
  /** Steps done: a retry after a full disk takes up the batch where it stopped. */
  readonly done: Set<Step>;
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
  /**
   * The batch that holds the core: from writing a batch that must be synced until its flush is
   * done, and while a full disk refuses it. Null while the core takes work.
   */
  private held: HeldBatch | null = null;
  /** A full disk refused the held batch; it is tried again every `diskFullRetryMs`. */
  private diskFullNow = false;
  private cancelRetry: (() => void) | null = null;
  /** A snapshot image a full disk refused is not tried again before this time. */
  private snapshotRetryAtMs = 0;
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
  /** Tells the cluster room when this member gains and loses the lease. */
  private readonly lease: LeaseWatch;

  constructor(private readonly options: PipelineOptions) {
    const { state } = options;
    this.lease = new LeaseWatch((notice) => options.timers.soon(notice));
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

  /** Whether a full disk holds the log: nothing new is taken until the held batch goes through. */
  get diskFull(): boolean {
    return this.diskFullNow;
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
      if (this.held !== null) this.tickPending = true;
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
   * Raft sends again); while a full disk holds the log, all of it is.
   */
  withCore(work: () => void, cancel: () => void = () => {}): void {
    if (this.closed || this.diskFullNow || this.waiting.length >= this.options.waitingMax) cancel();
    else if (this.held !== null) this.waiting.push({ run: work, cancel });
    else work();
  }

  /** Why work on the core was cancelled. */
  private refusal(): Result<never> {
    if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
    if (this.diskFullNow) {
      return fail(
        "E_NO_SPACE",
        "this node's disk is full: its log takes nothing new until space is freed",
      );
    }
    return fail("E_NOT_READY", "the log is busy: try again shortly");
  }

  /**
   * `withCore` for work that answers: resolves with what `work` returned when it ran, or with
   * E_NOT_READY (E_NO_SPACE while a full disk holds the log) when it was cancelled.
   */
  onCore<T>(work: () => T | Promise<T>): Promise<T | Result<never>> {
    return new Promise<T | Result<never>>((resolve, reject) => {
      const cancelled = () => resolve(this.refusal());
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
      // Another member's message (a request replayed here from its way there) is not ours.
      if (message.to !== this.core.id) continue;
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
    if (this.held !== null || this.closed) return;
    while (this.core.hasReady()) {
      const ready = this.core.ready();
      const mustSync = ready.mustSync && !this.options.bugs?.skipFlush;
      const batch = this.withUnwrittenHardState(batchOf(ready));
      if (!this.carry({ ready, batch, mustSync, done: new Set() })) return;
    }
    this.releaseWaiters();
    this.maybeCompact();
  }

  private withUnwrittenHardState(batch: LogStoreBatch): LogStoreBatch {
    const hardState = batch.hardState ?? this.unwrittenHardState;
    this.unwrittenHardState = null;
    return hardState === batch.hardState ? batch : { ...batch, hardState };
  }

  /**
   * Takes a batch as far as it goes: true once the core advanced past it, false while it waits
   * for its flush or, refused by a full disk, for the next try. Any other failure propagates.
   */
  private carry(held: HeldBatch): boolean {
    try {
      return this.proceed(held);
    } catch (error) {
      if (!isNoSpaceError(error)) throw error;
      this.stall(held, error);
      return false;
    }
  }

  private proceed(held: HeldBatch): boolean {
    this.once(held, "persist", () => this.persist(held));
    if (held.mustSync && !held.done.has("flush")) {
      this.startFlush(held);
      return false;
    }
    this.once(held, "early", () => this.sendEarly(held));
    this.finish(held);
    return true;
  }

  /** Runs a step of `held` unless it ran already; a step that throws counts as not run. */
  private once(held: HeldBatch, step: Step, work: () => void): void {
    if (held.done.has(step)) return;
    work();
    held.done.add(step);
  }

  /** Writes the batch in one transaction: all of it or, when the disk is full, none. */
  private persist(held: HeldBatch): void {
    const { ready, batch } = held;
    // A received image is on disk before the log records its snapshot, and is named by its
    // index only after: whatever the moment of a crash, the image of what the log says is on
    // disk.
    if (ready.snapshot) this.options.images.writeReceived(ready.snapshot.data);
    if (!ready.mustSync && onlyHardState(batch)) this.unwrittenHardState = batch.hardState;
    else if (!isEmptyBatch(batch)) this.options.disk.write(batch);
  }

  /** What may happen before the batch is durable: messages that do not depend on it leave. */
  private sendEarly(held: HeldBatch): void {
    const { ready, batch } = held;
    // A leader's appends leave before its own flush (Raft thesis §10.2.1): followers write
    // while the leader writes, and the leader counts itself only once it is on disk.
    this.deliver(ready.sendNow);
    if (!held.mustSync) return;
    if (this.options.bugs?.sendBeforeFlush) this.deliver(this.attachImages(ready.messages));
    // Entries this batch replaces, or a snapshot replaces, are not on disk in their new form:
    // what is on disk at those indexes is what the batch overwrites (seed 1995: a follower
    // applied a new leader's entry early over the old one still on disk, crashed, and came
    // back holding the old entry as committed).
    const replacedFrom = batch.entries[0]?.index ?? (batch.snapshot?.index ?? Infinity) + 1;
    this.durableIndex = Math.min(this.durableIndex, replacedFrom - 1);
  }

  private startFlush(held: HeldBatch): void {
    // From here the core is left alone until the flush is done, also by listeners of the
    // entries applied below.
    this.held = held;
    this.once(held, "early", () => this.sendEarly(held));
    // Committed entries this node already has on disk need not wait for this flush either.
    const { committedEntries } = held.ready;
    this.applyEntries(committedEntries.filter((entry) => entry.index <= this.durableIndex));
    this.options.disk.flush(
      () => this.flushed(held),
      (error) => this.flushFailed(held, error),
    );
  }

  private flushed(held: HeldBatch): void {
    if (this.closed) return;
    this.held = null;
    held.done.add("flush");
    const { ready } = held;
    this.durableIndex = Math.max(
      this.durableIndex,
      ready.entries.at(-1)?.index ?? 0,
      ready.snapshot?.meta.index ?? 0,
    );
    if (this.carry(held)) this.afterBatch();
  }

  /**
   * Work that waited first (acknowledgements that arrived during the flush count before
   * CheckQuorum judges), then the tick that fell in the flush, then the next drain, so one
   * batch carries all of it. A tick that cannot run now stays pending for the next flush.
   */
  private afterBatch(): void {
    if (this.diskFullNow) this.diskRecovered();
    while (this.held === null && this.waiting.length > 0) this.waiting.shift()?.run();
    if (this.tickPending && this.held === null) this.tick();
    else this.drain();
  }

  /**
   * A log that cannot reach its disk must not go on: crash, and start again from the log. A full
   * disk is the exception: the batch waits and is tried again.
   */
  private flushFailed(held: HeldBatch, error: unknown): void {
    if (this.closed) return;
    if (!isNoSpaceError(error)) {
      this.options.fatal(error);
      return;
    }
    // A failed flush may have lost what the write left in the page cache (Linux marks pages of
    // a failed write-back clean), so a later flush that succeeds would prove nothing of them:
    // the next try writes the batch again, whole, before it flushes.
    if (!this.options.bugs?.flushAgainWithoutWrite) held.done.delete("persist");
    this.stall(held, error);
  }

  /**
   * A full disk refused a step of `held`: the batch keeps the core (nothing new is taken) and is
   * tried again later. Work that waited for it would wait as long as the disk stays full, so it
   * is refused now: proposals hear E_NO_SPACE, peers' messages are dropped (Raft sends again).
   */
  private stall(held: HeldBatch, error: unknown): void {
    this.held = held;
    if (!this.diskFullNow) {
      this.diskFullNow = true;
      this.options.observer?.warn?.("the disk is full: the log takes nothing new and waits", {
        error: error instanceof Error ? error.message : String(error),
        retryMs: this.options.diskFullRetryMs,
      });
      for (const work of this.waiting.splice(0)) work.cancel();
    }
    this.cancelRetry = this.options.timers.after(this.options.diskFullRetryMs, () => {
      this.cancelRetry = null;
      if (this.closed) return;
      this.held = null;
      if (this.carry(held)) this.afterBatch();
    });
  }

  private diskRecovered(): void {
    this.diskFullNow = false;
    this.options.observer?.warn?.("the disk takes writes again: the log goes on", {});
  }

  /** Everything after a batch is durable: snapshot swap, send, apply, answer reads, advance. */
  private finish(held: HeldBatch): void {
    const { images } = this.options;
    const { ready } = held;
    const snapshot = ready.snapshot;
    if (snapshot) {
      this.once(held, "install", () => images.installReceived(snapshot.meta.index));
      this.once(held, "restore", () => {
        this.options.machine.restore(snapshot.data);
        // Nothing was applied entry by entry, but the applied index moved: waiters look again.
        for (const listener of this.appliedListeners) listener([], []);
      });
    }
    // Images are attached before older ones go: a snapshot message of this batch may still name
    // the image this batch's compaction replaces. (The mutant sent them before the flush.)
    if (!(held.mustSync && this.options.bugs?.sendBeforeFlush)) {
      this.once(held, "send", () => this.deliver(this.attachImages(ready.messages)));
    }
    // The log now records this snapshot: older images are no longer needed.
    const recorded = snapshot?.meta.index ?? ready.compaction?.index;
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
      // A full disk refused the one transaction whole: nothing was applied, and the same
      // entries are applied once it takes writes again.
      if (isNoSpaceError(error)) throw error;
      // An apply that throws otherwise is a bug, and the log cannot go on past an entry it
      // could not apply: a restart replays from the last good index.
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
    if (this.now() < this.snapshotRetryAtMs) return;
    // The image first, then the compaction (written to the log by the drain); the older image
    // stays until the log records this one (see `finish`). Retaking a missing image of the
    // recorded snapshot compacts nothing.
    try {
      images.take(applied);
    } catch (error) {
      if (!isNoSpaceError(error)) throw error;
      // No image, no compaction: the log keeps its entries until a later try finds room.
      this.snapshotRetryAtMs = this.now() + this.options.diskFullRetryMs;
      this.options.observer?.warn?.("no room for a snapshot image: the log is compacted later", {
        index: applied,
        error: error.message,
      });
      return;
    }
    this.core.compact(applied);
    this.drain();
  }

  private observed(): void {
    this.options.observer?.stepped?.();
    this.lease.observe(this.core.leaseValid(this.now()), this.core.status().term);
  }

  /** Calls `listener` when this member gains and loses the lease; returns the unsubscribe. */
  onLeadership(listener: (change: LeadershipChange) => void): () => void {
    return this.lease.onChange(listener);
  }

  /** Stops the ticker and cancels every waiting piece of work; the caller closes the ports. */
  close(): void {
    this.closed = true;
    this.stopTicker?.();
    this.lease.close();
    this.cancelRetry?.();
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

// The replicated command log: the Raft core over raft.db, applying committed commands to
// state.db. It drives the core's tick/step/ready/advance cycle: persist durably, then send,
// then apply, then answer the proposals and reads that waited for those entries. The flush to
// disk runs off the event loop; until it is done the core is left alone (it takes no input
// between handing out a batch and hearing it was persisted), and whatever arrives meanwhile
// waits its turn, so the next batch carries all of it.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../core/clock.ts";
import { fail, type Result, ShoalError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { limits } from "../core/limits.ts";
import { batchOf, isEmptyBatch, type LogStoreBatch } from "../raft/log-store.ts";
import { type FollowerProgress, RaftCore, type RaftStatus } from "../raft/raft-core.ts";
import { raftLimits } from "../raft/raft-limits.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import type {
  Entry,
  Membership,
  MembershipChange,
  Message,
  RandomSource,
  Ready,
  SnapshotMessage,
} from "../raft/types.ts";
import type { AppliedEntry, CommandLog } from "../state/command-log.ts";
import { type Command, decodeProposal, encodeProposal } from "../state/commands.ts";
import type { Database } from "../state/db.ts";
import { type ApplyResult, StateMachine } from "../state/machine.ts";
import { StateView } from "../state/views.ts";
import { syncPath, writeDurably } from "./data-dir.ts";
import { openDatabase } from "./libsql.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";

/**
 * An apply that throws is a bug, and the log cannot go on past an entry it could not apply:
 * crash the process (after the caller saw the error), so a restart replays from the last good
 * index rather than answering every later write with an error.
 */
function applyOrCrash<T>(apply: () => T): T {
  try {
    return apply();
  } catch (error) {
    setImmediate(() => {
      throw error;
    });
    throw error;
  }
}

/** A peer's request waiting for this member's answers; `stepped` once the core has seen it. */
interface ReplyWaiter {
  peer: string;
  stepped: boolean;
  resolve: (messages: Message[]) => void;
}

/**
 * A leader's appends and heartbeats, which need nothing of its own disk, and the rest: answers
 * (an acknowledgement or a vote must be on disk before it is sent) and everything else.
 */
function splitLeaderAppends(messages: readonly Message[]): [Message[], Message[]] {
  const early: Message[] = [];
  const late: Message[] = [];
  for (const message of messages) {
    (message.type === "append" || message.type === "heartbeat" ? early : late).push(message);
  }
  return [early, late];
}

/** A listener's failure (an event stream, a reconcile trigger) must not undo an applied write. */
function notify(listener: (entry: AppliedEntry) => void, entry: AppliedEntry): void {
  try {
    listener(entry);
  } catch (error) {
    console.error("shoal: a listener of applied entries failed", error);
  }
}

/** What a crash or a refused image may leave: temporary files and open databases' side files. */
const leftoverImageFile = /^snapshot\..*(\.tmp|-wal|-shm)$/;
const imageFile = /^snapshot\.(\d+)\.db$/;

/** The applied index a state image holds, or null when it is not one (a peer's data is input). */
function imageIndexAt(path: string): number | null {
  try {
    const image = openDatabase(path, "NORMAL");
    try {
      return new StateView(image).appliedIndex();
    } finally {
      image.close();
    }
  } catch (error) {
    console.error(`shoal: ${path} is not a state image`, error);
    return null;
  } finally {
    for (const suffix of ["-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
  }
}

/**
 * The state images of snapshots in the data dir, each named by the index it was taken at
 * (`snapshot.<index>.db`), so an image never stands for another snapshot than its own. raft.db
 * says which snapshot is current: its image is kept, and older ones go only once raft.db records
 * a newer one. A received image waits in `snapshot.db.new` until raft.db records it.
 */
class SnapshotImages {
  constructor(private readonly dir: string) {}

  pathOf(index: number): string {
    return join(this.dir, `snapshot.${index}.db`);
  }

  get receivedPath(): string {
    return join(this.dir, "snapshot.db.new");
  }

  /** The one image of data dirs written before images were named by index. */
  private get legacyPath(): string {
    return join(this.dir, "snapshot.db");
  }

  has(index: number): boolean {
    return existsSync(this.pathOf(index));
  }

  read(index: number): Uint8Array | null {
    return this.has(index) ? new Uint8Array(readFileSync(this.pathOf(index))) : null;
  }

  /** The indexes of the images on disk, newest first. */
  private indexes(): number[] {
    const found = readdirSync(this.dir).map((name) => imageFile.exec(name)?.[1]);
    return found
      .flatMap((index) => (index === undefined ? [] : [Number(index)]))
      .sort((a, b) => b - a);
  }

  /**
   * At start, puts right what a crash (or an older version) left, given the snapshot raft.db
   * records: temporary files go, a received image is kept only if it is that snapshot's, and
   * an old `snapshot.db` is named by the index it holds. Images other than the recorded one
   * stay until `keepOnly`, for `restorable` to use.
   */
  settle(recorded: number): void {
    for (const name of readdirSync(this.dir)) {
      if (leftoverImageFile.test(name)) rmSync(join(this.dir, name), { force: true });
    }
    if (existsSync(this.receivedPath)) {
      if (imageIndexAt(this.receivedPath) === recorded) {
        renameSync(this.receivedPath, this.pathOf(recorded));
      } else {
        rmSync(this.receivedPath, { force: true });
      }
    }
    if (existsSync(this.legacyPath)) {
      const index = imageIndexAt(this.legacyPath);
      if (index !== null && !this.has(index)) renameSync(this.legacyPath, this.pathOf(index));
      else rmSync(this.legacyPath, { force: true });
    }
    syncPath(this.dir);
  }

  /**
   * The image to rebuild a state.db that is behind the recorded snapshot: that snapshot's, or
   * else a newer one of this node's own that raft.db had not recorded when it stopped (its
   * entries were applied, so committed and in the log).
   */
  restorable(recorded: number): Uint8Array {
    const index = this.has(recorded) ? recorded : this.indexes().find((i) => i > recorded);
    const image = index === undefined ? null : this.read(index);
    if (image === null) {
      throw new Error(
        `${this.dir}: state.db is behind the snapshot raft.db records (index ${recorded}) and no image holds it`,
      );
    }
    return image;
  }

  /** Removes every image but `index`'s, once raft.db records the snapshot at `index`. */
  keepOnly(index: number): void {
    const stale = this.indexes().filter((i) => i !== index);
    for (const i of stale) rmSync(this.pathOf(i), { force: true });
    if (stale.length > 0) syncPath(this.dir);
  }

  /** Writes the image of `db` (at `index`) whole and durably, before raft.db records it. */
  take(db: Database, index: number): void {
    const path = this.pathOf(index);
    rmSync(`${path}.tmp`, { force: true });
    db.prepare("VACUUM INTO ?").run(`${path}.tmp`);
    syncPath(`${path}.tmp`);
    renameSync(`${path}.tmp`, path);
    syncPath(this.dir);
  }

  /**
   * The applied index of an image a peer sent, read from a scratch copy; null when it cannot be
   * read (a full disk refuses the image, it does not crash the node).
   */
  indexOfReceived(image: Uint8Array): number | null {
    const scratch = join(this.dir, "snapshot.check.tmp");
    try {
      writeFileSync(scratch, image);
      return imageIndexAt(scratch);
    } catch (error) {
      console.error("shoal: could not check a received snapshot image", error);
      return null;
    } finally {
      rmSync(scratch, { force: true });
    }
  }

  /** A received image on disk before raft.db records its snapshot. */
  writeReceived(image: Uint8Array): void {
    writeDurably(this.receivedPath, image);
  }

  /** raft.db recorded the received snapshot at `index`: its image becomes that index's. */
  installReceived(index: number): void {
    renameSync(this.receivedPath, this.pathOf(index));
    syncPath(this.dir);
  }
}

/** Sends Raft messages to peers; best effort, since Raft tolerates loss and reordering. */
export interface PeerSender {
  send(messages: readonly Message[]): void;
}

export interface RaftCommandLogOptions {
  nodeId: string;
  dataDir: string;
  clock: Clock;
  random: RandomSource;
  sender: PeerSender;
  /**
   * Calls the leader's peer route `kind` when this member is not it (one hop, never further):
   * `propose` for writes, `read-index` and `lease-read` for reads. Absent on a lone node.
   */
  leaderCall?:
    | (<T>(leaderId: string, kind: string, body: unknown, timeoutMs?: number) => Promise<T>)
    | undefined;
  /** The membership of a brand-new cluster; absent for a node that joins one. */
  bootstrap?: Membership | undefined;
  /** Applied entries past the last snapshot before a new one is taken (default: raftLimits). */
  snapshotEntries?: number | undefined;
}

export type ConsistencyLevel = "local" | "leader" | "linearizable";

/** The leader did not answer (refused, reset, timed out) or no longer leads: ask the next. */
function undelivered(error: unknown): boolean {
  return (
    error instanceof ShoalError && (error.code === "E_NOT_READY" || error.code === "E_NOT_LEADER")
  );
}

/** The end of a hold: whether the write may have been applied decides what the caller hears. */
function heldTooLong(maybeDelivered: boolean): ApplyResult {
  if (maybeDelivered) {
    return fail(
      "E_NOT_READY",
      "no leader answered in time; the write may still be applied: read before repeating it",
    );
  }
  return fail("E_NO_QUORUM", "no leader is known: this node may be cut off from the quorum");
}

/** A forwarded proposal's answer carries where the leader applied it. */
export type ForwardedAnswer = ApplyResult & { appliedIndex: number };

function failureOf(error: unknown): ApplyResult {
  if (error instanceof ShoalError) return fail(error.code, error.message);
  return fail("E_NOT_READY", `the leader did not answer: ${(error as Error).message}`);
}

interface Waiter {
  term: number;
  resolve: (result: ApplyResult) => void;
  cancelTimer: () => void;
}

const lostToNewLeader = () => fail("E_NOT_LEADER", "leadership changed before the write committed");

/** Runs `callback` after `ms` unless the returned function is called first. */
export type ScheduleTimer = (callback: () => void, ms: number) => () => void;

const scheduleTimer: ScheduleTimer = (callback, ms) => {
  const timer = setTimeout(callback, ms);
  return () => clearTimeout(timer);
};

/** The proposals waiting for their entry to be applied, by log index. */
export class ProposalWaiters {
  private readonly waiters = new Map<number, Waiter>();

  constructor(
    private readonly timeoutMs: number,
    private readonly schedule: ScheduleTimer = scheduleTimer,
  ) {}

  /**
   * Resolves once the entry proposed at `index` in `term` is applied, or after the timeout. A
   * waiter already at `index` proposed an entry this node's log has since replaced (an earlier
   * term's): it is answered at once.
   */
  wait(index: number, term: number): Promise<ApplyResult> {
    const replaced = this.waiters.get(index);
    if (replaced) this.remove(index, replaced, lostToNewLeader());
    return new Promise<ApplyResult>((resolve) => {
      const waiter: Waiter = { term, resolve, cancelTimer: () => {} };
      waiter.cancelTimer = this.schedule(() => {
        // Only its own waiter: a newer one at the same index waits for its own entry.
        if (this.waiters.get(index) !== waiter) return;
        this.waiters.delete(index);
        resolve(fail("E_NO_QUORUM", `not committed within ${this.timeoutMs} ms; it may still be`));
      }, this.timeoutMs);
      this.waiters.set(index, waiter);
    });
  }

  /** A waiter whose index now holds an entry of another term lost its proposal to a new leader. */
  settle(entry: { index: number; term: number }, result: ApplyResult): void {
    const waiter = this.waiters.get(entry.index);
    if (!waiter) return;
    this.remove(entry.index, waiter, waiter.term === entry.term ? result : lostToNewLeader());
  }

  private remove(index: number, waiter: Waiter, result: ApplyResult): void {
    this.waiters.delete(index);
    waiter.cancelTimer();
    waiter.resolve(result);
  }

  /** Answers every waiter with `result` (the log closes). */
  settleAll(result: ApplyResult): void {
    for (const waiter of this.waiters.values()) {
      waiter.cancelTimer();
      waiter.resolve(result);
    }
    this.waiters.clear();
  }
}

export class RaftCommandLog implements CommandLog {
  private machine: StateMachine;
  private stateDb: Database;
  private readonly core: RaftCore;
  private readonly store: LibsqlRaftLogStore;
  private readonly listeners = new Set<(entry: AppliedEntry) => void>();
  private readonly proposals = new ProposalWaiters(limits.proposeTimeoutMs);
  /** Pending ReadIndex reads; called with null when the log closes first. */
  private readonly reads = new Map<string, (index: number | null) => void>();
  private ticker: NodeJS.Timeout | null = null;
  private readonly images: SnapshotImages;
  /** raft.db records a snapshot whose image is gone (a crash of an older version): retake it. */
  private readonly imageMissing: boolean;
  private readSeq = 0;
  private drainScheduled = false;
  private closed = false;
  /** The last log index this node knows to be on its disk (entries up to it are flushed). */
  private durableIndex: number;
  /** Peers whose requests wait for this member's answers (see `receiveAndReply`). */
  private readonly replyWaiters: ReplyWaiter[] = [];
  /** The messages of the batch being flushed that wait for the flush (see `drain`). */
  private pendingMessages: Message[] | null = null;
  /** The term and vote last written; the flush that follows a write makes them durable. */
  private writtenVote = { term: 0, votedFor: "" };
  /** True from writing a ready batch until its flush finished and the core advanced. */
  private flushing = false;
  /** A tick fell during the flush under way; it runs once the flush is done. */
  private tickPending = false;
  /** Work on the core that arrived while a batch was flushing, in arrival order. */
  private readonly waiting: { run: () => void; cancel: () => void }[] = [];

  constructor(private readonly options: RaftCommandLogOptions) {
    this.store = new LibsqlRaftLogStore(join(options.dataDir, "raft.db"));
    if (options.bootstrap) this.store.saveBootstrap(options.bootstrap);
    const state = this.store.load();
    const recorded = state.snapshot?.index ?? 0;
    this.images = new SnapshotImages(options.dataDir);
    this.images.settle(recorded);
    this.stateDb = openDatabase(this.statePath, "NORMAL");
    this.machine = new StateMachine(this.stateDb);
    // state.db is written without fsync; after a power loss it may be behind a compaction, whose
    // entries are gone from the log. The snapshot image, synced before compacting, holds them.
    if (state.snapshot && this.machine.appliedIndex() < recorded) {
      this.replaceState(this.images.restorable(recorded));
    }
    this.images.keepOnly(recorded);
    this.imageMissing = recorded > 0 && !this.images.has(recorded);
    this.writtenVote = { term: state.hardState.term, votedFor: state.hardState.votedFor };
    this.durableIndex = state.entries.at(-1)?.index ?? state.snapshot?.index ?? 0;
    this.core = new RaftCore({
      id: options.nodeId,
      state,
      bootstrap: options.bootstrap,
      appliedIndex: this.machine.appliedIndex(),
      nowMs: options.clock.monotonic(),
      random: options.random,
    });
  }

  /**
   * A one-member cluster's log in `dataDir`, leading once it resolves, with its own term's first
   * entry applied (a sole voter elects itself on its first tick). For tests, benchmarks and tools
   * that need the real store without peers.
   */
  static async openLone(dataDir: string, nodeId: string, clock: Clock): Promise<RaftCommandLog> {
    const fresh = !existsSync(join(dataDir, "raft.db"));
    const log = new RaftCommandLog({
      nodeId,
      dataDir,
      clock,
      random: new SeededRandom(1),
      sender: { send() {} },
      bootstrap: fresh ? { voters: [nodeId], learners: [] } : undefined,
    });
    log.start();
    const deadline = clock.monotonic() + limits.proposeTimeoutMs;
    while (!log.isLeader() || !log.appliedOwnTerm()) {
      if (clock.monotonic() > deadline) {
        log.close();
        throw new Error(
          `the lone log in ${dataDir} did not lead within ${limits.proposeTimeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, limits.raftTickMs));
    }
    return log;
  }

  /** Whether this node has applied an entry of its current term (a new leader's no-op). */
  private appliedOwnTerm(): boolean {
    const applied = this.machine.appliedIndex();
    return this.core.termAt(applied) === this.core.status().term;
  }

  private get statePath(): string {
    return join(this.options.dataDir, "state.db");
  }

  start(): void {
    this.drain();
    if (this.imageMissing) this.snapshotNow();
    this.ticker = setInterval(() => {
      if (this.closed) return;
      // A tick during a flush runs right after it (one at most: it reads the clock then). Under
      // a stream of writes a flush is nearly always under way, and a skipped tick would starve
      // the heartbeat rounds that keep the lease.
      if (this.flushing) this.tickPending = true;
      else this.tick();
    }, limits.raftTickMs);
  }

  private tick(): void {
    this.tickPending = false;
    this.core.tick(this.options.clock.monotonic());
    this.drain();
  }

  /**
   * Runs `work` on the core now, or after the batch being flushed, in arrival order. While a
   * disk stalls, work beyond `logWaitingMax` is cancelled (a write is refused, a message dropped:
   * Raft sends again).
   */
  private withCore(work: () => void, cancel: () => void = () => {}): void {
    if (this.closed || this.waiting.length >= limits.logWaitingMax) cancel();
    else if (this.flushing) this.waiting.push({ run: work, cancel });
    else work();
  }

  /**
   * `withCore` for work that answers: resolves with what `work` returned when it ran, or with
   * E_NOT_READY when it was cancelled.
   */
  private onCore<T>(work: () => T | Promise<T>): Promise<T | Result<never>> {
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
   * to say, or the log closed.
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
    const now = this.options.clock.monotonic();
    for (const message of messages) {
      if (message.type === "snapshot" && !this.imageMatches(message)) continue;
      this.core.step(message, now);
    }
    this.drainSoon();
  }

  /**
   * A snapshot's image must hold exactly the index its metadata names: installed otherwise, the
   * log and the state would disagree (and a restart could find state.db ahead of the log). A
   * mismatch is refused unseen by the core; the leader sends again.
   */
  private imageMatches(message: SnapshotMessage): boolean {
    const imageIndex = message.data === null ? null : this.images.indexOfReceived(message.data);
    if (imageIndex === message.snapshot.index) return true;
    console.error(
      "shoal: refused a snapshot whose image does not match its metadata",
      JSON.stringify({
        node: this.options.nodeId,
        from: message.from,
        snapshotIndex: message.snapshot.index,
        imageIndex,
      }),
    );
    return false;
  }

  /** Sends messages, handing those for a peer that waits for answers to its request. */
  private deliver(messages: readonly Message[]): void {
    const toSend: Message[] = [];
    const answers = new Map<ReplyWaiter, Message[]>();
    for (const message of messages) {
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
    if (toSend.length > 0) this.options.sender.send(toSend);
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

  view(): StateView {
    return this.machine.view;
  }

  status(): RaftStatus {
    return this.core.status();
  }

  /** The leader's view of each other member's log (empty unless this node leads). */
  followers(): FollowerProgress[] {
    return this.core.followers();
  }

  /** The index of this node's latest snapshot (0 before the first). */
  snapshotIndex(): number {
    return this.core.snapshotMeta.index;
  }

  /** This node's monotonic clock, which `followers()` and the lease are measured on. */
  monotonicNow(): number {
    return this.options.clock.monotonic();
  }

  /** Hands leadership to `target`; resolves once another member leads, or fails after `waitMs`. */
  async transferLeadership(target: string, waitMs: number): Promise<Result<void>> {
    const asked = await this.onCore(() => {
      const result = this.core.transferLeadership(target);
      this.drain();
      return result;
    });
    if (!asked.ok) return asked;
    const deadline = this.options.clock.monotonic() + waitMs;
    while (this.options.clock.monotonic() < deadline) {
      const { role, leader } = this.core.status();
      if (role !== "leader" && leader !== "" && leader !== this.options.nodeId) {
        return { ok: true, value: undefined };
      }
      await new Promise((resolve) => setTimeout(resolve, limits.raftTickMs));
    }
    return fail("E_NOT_READY", `no other member took over within ${waitMs} ms`);
  }

  isLeader(): boolean {
    return this.core.leaseValid(this.options.clock.monotonic());
  }

  leaseRemainingMs(): number {
    const status = this.core.status();
    return this.isLeader() ? Math.max(0, status.leaseExpiryMs - this.options.clock.monotonic()) : 0;
  }

  /**
   * Proposes here when this node leads, else forwards to the leader (one hop). During an
   * election the write is held, as Consul holds RPCs, until a leader is known or `leaderHoldMs`
   * passed: a write through any node during a failover waits a moment instead of failing. A
   * forwarded write carries a request id, so resending it after a lost answer is safe: the state
   * machine answers a second copy with the first one's result.
   */
  async propose(command: Command): Promise<ApplyResult> {
    const leaderCall = this.options.leaderCall;
    if (!leaderCall) return this.proposeHere(command);
    const deadline = this.options.clock.monotonic() + limits.leaderHoldMs;
    const forwarded = { request: `${newId()}${newId()}`, command };
    // Once a copy may have reached a leader, every later copy carries the same request id, also
    // the one this node proposes itself should it win the election.
    let maybeDelivered = false;
    // A leader that answered it does not lead is asked again only in a later term.
    let refusedBy = { leader: "", term: -1 };
    for (;;) {
      if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
      const { role, leader, term } = this.core.status();
      if (role === "leader") {
        return this.proposeHere(command, maybeDelivered ? forwarded.request : null);
      }
      if (leader && !(leader === refusedBy.leader && term === refusedBy.term)) {
        maybeDelivered = true;
        try {
          const answer = await leaderCall<ForwardedAnswer>(
            leader,
            "propose",
            forwarded,
            limits.forwardTimeoutMs,
          );
          const stale = !answer.ok && answer.code === "E_NOT_LEADER";
          if (!stale || this.options.clock.monotonic() > deadline) {
            return this.answeredByLeader(answer);
          }
          refusedBy = { leader, term };
        } catch (error) {
          if (!undelivered(error)) return failureOf(error);
        }
      }
      if (this.options.clock.monotonic() > deadline) return heldTooLong(maybeDelivered);
      await new Promise((resolve) => setTimeout(resolve, limits.raftTickMs * 2));
    }
  }

  private async answeredByLeader(answer: ForwardedAnswer): Promise<ApplyResult> {
    // The caller reads its answer from this node's replica next: wait until it holds the write.
    if (answer.ok && !(await this.waitApplied(answer.appliedIndex)).ok) {
      return fail(
        "E_NOT_READY",
        `the write is committed (index ${answer.appliedIndex}) but this node has not applied it yet; read it again shortly, do not repeat it`,
      );
    }
    const { appliedIndex: _, ...result } = answer;
    return result as ApplyResult;
  }

  /** The leader's side of a forwarded proposal: the result and the index it is applied at. */
  async proposeForPeer(command: Command, requestId: string): Promise<ForwardedAnswer> {
    const result = await this.proposeHere(command, requestId);
    return { ...result, appliedIndex: this.machine.appliedIndex() };
  }

  /**
   * Waits until this node's replica is fresh enough for a read: `local` as it is; `leader` holds
   * everything the leader committed while its lease held (no quorum round trip); `linearizable`
   * everything committed when the read was asked, confirmed by a quorum (ReadIndex).
   */
  async readAt(consistency: ConsistencyLevel): Promise<Result<void>> {
    if (consistency === "local") return { ok: true, value: undefined };
    const { role, leader } = this.core.status();
    if (role === "leader") {
      // Without a valid lease (a new leader before its first commit) ReadIndex still answers.
      if (consistency === "linearizable" || !this.isLeader()) return this.readBarrier();
      // Under the lease the commit index holds every acknowledged write, but this replica may
      // not have applied all of it yet (a new leader commits its predecessor's entries at once).
      return this.waitApplied(this.core.status().commitIndex);
    }
    if (!leader || !this.options.leaderCall) return fail("E_NO_QUORUM", "no leader is known");
    const kind = consistency === "leader" ? "lease-read" : "read-index";
    try {
      const { index } = await this.options.leaderCall<{ index: number }>(leader, kind, {});
      return this.waitApplied(index);
    } catch (error) {
      const failed = failureOf(error);
      return failed.ok ? { ok: true, value: undefined } : failed;
    }
  }

  /** The leader's side of a follower's read: its commit index, under the lease or ReadIndex. */
  async readIndexForPeer(kind: "lease-read" | "read-index"): Promise<Result<{ index: number }>> {
    if (kind === "read-index") {
      const barrier = await this.readBarrier();
      if (!barrier.ok) return barrier;
    } else if (!this.isLeader()) {
      return fail("E_NOT_LEADER", "this member does not hold the lease");
    }
    return { ok: true, value: { index: this.core.status().commitIndex } };
  }

  /** Proposes on this member only: E_NOT_LEADER unless it leads. */
  async proposeHere(command: Command, requestId: string | null = null): Promise<ApplyResult> {
    const data = encodeProposal(command, requestId);
    // Proposing and waiting happen in one turn: the answer cannot come before the waiter.
    return await this.onCore(() => {
      const proposed = this.core.propose(data);
      if (!proposed.ok) return Promise.resolve<ApplyResult>(proposed);
      this.drainSoon();
      return this.proposals.wait(proposed.value.index, proposed.value.term);
    });
  }

  /** Proposes one membership change (one at a time) and waits until this node applied it. */
  async changeMembership(change: MembershipChange): Promise<Result<void>> {
    const proposed = await this.onCore(() => {
      const result = this.core.proposeMembership(change);
      if (result.ok) this.drain();
      return result;
    });
    if (!proposed.ok) return proposed;
    const { index, term } = proposed.value;
    const applied = await this.waitApplied(index);
    if (!applied.ok) return applied;
    // A new leader may have put another entry at that index: then the change was lost.
    if (this.core.termAt(index) !== undefined && this.core.termAt(index) !== term) {
      return fail("E_NOT_LEADER", "leadership changed before the membership change committed");
    }
    return applied;
  }

  /** Resolves once this node has applied everything committed when the read was asked. */
  async readBarrier(): Promise<Result<void>> {
    const context = `read-${++this.readSeq}`;
    const answered = new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        this.reads.delete(context);
        resolve(null);
      }, limits.proposeTimeoutMs);
      this.reads.set(context, (readIndex) => {
        this.reads.delete(context);
        clearTimeout(timer);
        resolve(readIndex);
      });
    });
    // The reader is registered before the core is asked: a lone voter may answer at once.
    const asked = await this.onCore(() => {
      const result = this.core.readIndex(context);
      if (result.ok) this.drain();
      else this.reads.get(context)?.(null);
      return result;
    });
    if (!asked.ok) return asked;
    const index = await answered;
    if (index === null) return fail("E_NO_QUORUM", "no quorum confirmed the read");
    return this.waitApplied(index);
  }

  private async waitApplied(index: number): Promise<Result<void>> {
    const deadline = this.options.clock.monotonic() + limits.proposeTimeoutMs;
    while (this.machine.appliedIndex() < index) {
      if (this.closed) return fail("E_NOT_READY", "the node is shutting down");
      if (this.options.clock.monotonic() > deadline)
        return fail("E_NO_QUORUM", "apply fell behind");
      await new Promise((resolve) => setTimeout(resolve, limits.raftTickMs));
    }
    return { ok: true, value: undefined };
  }

  onApplied(listener: (entry: AppliedEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Drains once the current turn of the event loop is over: proposals and peer messages that
   * arrive together (64 concurrent writes, several pipelined appends) then share one fsync and
   * one append message per follower, instead of one each.
   */
  private drainSoon(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      if (!this.closed) this.drain();
    });
  }

  /**
   * Runs the pending ready batches: persist, send, apply, answer. A batch that wrote to raft.db
   * is finished only once its flush is done; the drain goes on from there.
   */
  private drain(): void {
    if (this.flushing || this.closed) return;
    while (this.core.hasReady()) {
      const ready = this.core.ready();
      // A leader's image is on disk before raft.db records it, and is named by its index only
      // after: whatever the moment of a crash, the image of what raft.db says is on disk.
      if (ready.snapshot) this.images.writeReceived(ready.snapshot.data);
      const batch = batchOf(ready);
      if (isEmptyBatch(batch)) {
        this.finish(ready);
        continue;
      }
      this.store.write(batch);
      if (!this.needsFlush(batch)) {
        this.finish(ready);
        continue;
      }
      // From here the core is left alone until the flush is done, also by listeners of the
      // entries applied below.
      this.flushing = true;
      // A leader's appends may leave before its own flush (Raft thesis §10.2.1): followers
      // write while the leader writes, and the leader counts itself only once it is on disk.
      const [early, late] = splitLeaderAppends(ready.messages);
      this.deliver(early);
      this.pendingMessages = late;
      // Committed entries this node already has on disk need not wait for this flush either.
      this.applyEntries(ready.committedEntries.filter((entry) => entry.index <= this.durableIndex));
      // Entries this batch replaces, or a snapshot replaces, are not on disk in their new form.
      const replacedFrom = batch.entries[0]?.index ?? (batch.snapshot?.index ?? Infinity) + 1;
      this.durableIndex = Math.min(this.durableIndex, replacedFrom - 1);
      this.store.flush().then(
        () => this.flushed(ready),
        (error: unknown) => this.flushFailed(error),
      );
      return;
    }
    this.releaseWaiters();
    this.maybeCompact();
  }

  /**
   * A batch that moves only the commit index is finished without a flush of its own: the index
   * is not needed for safety (the core takes what was applied as committed after a restart), and
   * waiting for it would put a third disk flush into every round of a write.
   */
  private needsFlush(batch: LogStoreBatch): boolean {
    const { hardState } = batch;
    const voteChanged =
      hardState !== null &&
      (hardState.term !== this.writtenVote.term ||
        hardState.votedFor !== this.writtenVote.votedFor);
    if (hardState !== null)
      this.writtenVote = { term: hardState.term, votedFor: hardState.votedFor };
    return (
      voteChanged ||
      batch.entries.length > 0 ||
      batch.snapshot !== null ||
      batch.compaction !== null
    );
  }

  private flushed(ready: Ready): void {
    if (this.closed) return;
    this.flushing = false;
    this.durableIndex = Math.max(
      this.durableIndex,
      ready.entries.at(-1)?.index ?? 0,
      ready.snapshot?.meta.index ?? 0,
    );
    this.finish(ready);
    // Work that waited first (acknowledgements that arrived during the flush count before
    // CheckQuorum judges), then the tick that fell in the flush, then the next drain, so one
    // batch carries all of it. A tick that cannot run now stays pending for the next flush.
    while (!this.flushing && this.waiting.length > 0) this.waiting.shift()?.run();
    if (this.tickPending && !this.flushing) this.tick();
    else this.drain();
  }

  /** A log that cannot reach its disk must not go on: crash, and start again from raft.db. */
  private flushFailed(error: unknown): void {
    if (this.closed) return;
    setImmediate(() => {
      throw error;
    });
  }

  /** Everything after a batch is durable: snapshot swap, send, apply, answer reads, advance. */
  private finish(ready: Ready): void {
    if (ready.snapshot) {
      this.images.installReceived(ready.snapshot.meta.index);
      this.replaceState(ready.snapshot.data);
    }
    const messages = this.pendingMessages ?? ready.messages;
    this.pendingMessages = null;
    // Images are attached before older ones go: a snapshot message of this batch may still name
    // the image this batch's compaction replaces.
    this.deliver(messages.flatMap((message) => this.withSnapshotData(message)));
    // raft.db now records this snapshot: older images are no longer needed.
    const recorded = ready.snapshot?.meta.index ?? ready.compaction?.index;
    if (recorded !== undefined) this.images.keepOnly(recorded);
    this.applyEntries(ready.committedEntries);
    for (const read of ready.readStates) this.reads.get(read.context)?.(read.index);
    this.core.advance(ready);
  }

  /** Applies committed entries in one state transaction, then answers and notifies for each. */
  private applyEntries(entries: readonly Entry[]): void {
    const fresh = entries.filter((entry) => entry.index > this.machine.appliedIndex());
    if (fresh.length === 0) return;
    const batch = fresh.map((entry) => {
      if (entry.kind !== "command") return { index: entry.index, command: null, requestId: null };
      return { index: entry.index, ...decodeProposal(entry.data) };
    });
    const results = applyOrCrash(() => this.machine.applyAll(batch));
    batch.forEach(({ index, command }, i) => {
      const entry = fresh[i] as Entry;
      if (command === null) {
        this.proposals.settle(entry, fail("E_NOT_LEADER", "the entry was not a command"));
        return;
      }
      const result = results[i] as ApplyResult;
      this.proposals.settle(entry, result);
      for (const listener of this.listeners) notify(listener, { index, command, result });
    });
  }

  /**
   * The core sends snapshot metadata only; the image is the host's image of exactly that index.
   * Without it nothing is sent (never another index's image): the core sends again later.
   */
  private withSnapshotData(message: Message): Message[] {
    if (message.type !== "snapshot" || message.data !== null) return [message];
    const data = this.images.read(message.snapshot.index);
    if (data === null) {
      console.error(
        "shoal: no image of the snapshot to send",
        JSON.stringify({ node: this.options.nodeId, snapshotIndex: message.snapshot.index }),
      );
      return [];
    }
    return [{ ...message, data }];
  }

  /** Replaces state.db with the leader's image, taken at the snapshot's index. */
  private replaceState(image: Uint8Array): void {
    this.stateDb.close();
    for (const suffix of ["-wal", "-shm"]) rmSync(`${this.statePath}${suffix}`, { force: true });
    writeDurably(this.statePath, image);
    this.stateDb = openDatabase(this.statePath, "NORMAL");
    this.machine = new StateMachine(this.stateDb);
  }

  /** Takes a snapshot of state.db at the applied index and compacts the log behind it. */
  private maybeCompact(): void {
    const applied = this.machine.appliedIndex();
    const every = this.options.snapshotEntries ?? raftLimits.snapshotEntriesThreshold;
    if (applied - this.core.snapshotMeta.index < every) return;
    this.takeSnapshot();
  }

  /** Takes a snapshot now (or once the batch being flushed is done). */
  snapshotNow(): void {
    this.withCore(() => this.takeSnapshot());
  }

  private takeSnapshot(): void {
    const applied = this.machine.appliedIndex();
    const recorded = this.core.snapshotMeta.index;
    if (applied < recorded) return;
    if (applied === recorded && (recorded === 0 || this.images.has(recorded))) return;
    // The image first, then the compaction (written to raft.db by the drain); the older image
    // stays until raft.db records this one (see `finish`). Retaking a missing image of the
    // recorded snapshot compacts nothing.
    this.images.take(this.stateDb, applied);
    this.core.compact(applied);
    this.drain();
  }

  close(): void {
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    this.proposals.settleAll(fail("E_NOT_READY", "the node is shutting down"));
    for (const work of this.waiting.splice(0)) work.cancel();
    for (const waiter of [...this.replyWaiters]) this.resolveWaiter(waiter, []);
    for (const cancel of [...this.reads.values()]) cancel(null);
    this.store.close();
    this.stateDb.close();
  }
}

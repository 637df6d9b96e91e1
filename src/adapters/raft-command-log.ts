// The replicated command log of a node: the Raft host (src/raft/host: the ready/flush pipeline
// and the client sessions) over raft.db, snapshot images beside it, and state.db as the state
// machine. This file holds only what is libSQL's and the file system's; the host decides what
// is persisted, flushed, sent and applied when.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { LeadershipChange, MemberLog } from "../cluster/ports.ts";
import type { Clock } from "../core/clock.ts";
import { noSpaceError, type Result } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { limits } from "../core/limits.ts";
import type { Consistency, DiskStatus } from "../core/types.ts";
import { RaftPipeline } from "../raft/host/pipeline.ts";
import type {
  HostNetwork,
  HostSnapshotImages,
  HostStateMachine,
  LeaderCall,
} from "../raft/host/ports.ts";
import { ClientSessions, type ForwardedAnswer } from "../raft/host/sessions.ts";
import type { FollowerProgress, RaftStatus } from "../raft/raft-core.ts";
import { raftLimits } from "../raft/raft-limits.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import type { Entry, Membership, MembershipChange, Message, RandomSource } from "../raft/types.ts";
import type { AppliedEntry } from "../state/command-log.ts";
import { type Command, decodeProposal, encodeProposal } from "../state/commands.ts";
import type { Database } from "../state/db.ts";
import { type ApplyResult, StateMachine } from "../state/machine.ts";
import { StateView } from "../state/views.ts";
import { syncPath, writeDurably, writeWhole } from "./data-dir.ts";
import { DiskSpace, diskStatus, isDiskFullError, orNoSpace } from "./disk-space.ts";
import { openDatabase } from "./libsql.ts";
import { nodeTimers } from "./node-timers.ts";
import { LibsqlRaftLogStore } from "./raft-log-store-libsql.ts";

export type { ForwardedAnswer };
/** Sends Raft messages to peers; best effort, since Raft tolerates loss and reordering. */
export type PeerSender = HostNetwork;

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
class SnapshotImages implements HostSnapshotImages {
  constructor(
    private readonly dir: string,
    /** The state database whose image `take` writes. */
    private readonly state: () => Database,
  ) {}

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

  newestIndex(): number | null {
    return this.indexes()[0] ?? null;
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

  /**
   * Writes the image of state.db (at `index`) whole and durably, before raft.db records it. On a
   * full disk, what was written of it goes again, and the host tries later.
   */
  take(index: number): void {
    const path = this.pathOf(index);
    const temporary = `${path}.tmp`;
    rmSync(temporary, { force: true });
    try {
      orNoSpace(`taking snapshot image ${index}`, () => {
        this.state().prepare("VACUUM INTO ?").run(temporary);
        syncPath(temporary);
      });
    } catch (error) {
      rmSync(temporary, { force: true });
      throw error;
    }
    renameSync(temporary, path);
    syncPath(this.dir);
  }

  /**
   * The applied index of an image a peer sent, read from a scratch copy; null when it cannot be
   * read (a full disk refuses the image, it does not crash the node).
   */
  indexOf(image: Uint8Array): number | null {
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
    orNoSpace("writing a received snapshot image", () => writeDurably(this.receivedPath, image));
  }

  /** raft.db recorded the received snapshot at `index`: its image becomes that index's. */
  installReceived(index: number): void {
    orNoSpace("installing a received snapshot image", () => {
      renameSync(this.receivedPath, this.pathOf(index));
      syncPath(this.dir);
    });
  }
}

export interface RaftCommandLogOptions {
  nodeId: string;
  dataDir: string;
  clock: Clock;
  random: RandomSource;
  sender: HostNetwork;
  /**
   * Calls the leader's peer route `kind` when this member is not it (one hop, never further):
   * `propose` for writes, `read-index` and `lease-read` for reads. Absent on a lone node.
   */
  leaderCall?: LeaderCall | undefined;
  /** The membership of a brand-new cluster; absent for a node that joins one. */
  bootstrap?: Membership | undefined;
  /** Applied entries past the last snapshot before a new one is taken (default: raftLimits). */
  snapshotEntries?: number | undefined;
  /** Free space in the data dir; by default measured there (tests give their own figures). */
  diskSpace?: DiskSpace | undefined;
}

/** A failure the host cannot go on from: crash, and start again from raft.db. */
function crash(error: unknown): void {
  setImmediate(() => {
    throw error;
  });
}

/**
 * state.db as the host's state machine: entries decoded into commands and applied in one
 * transaction, and the whole database replaced by a snapshot's image.
 */
class StateDbMachine implements HostStateMachine {
  db: Database;
  machine: StateMachine;

  constructor(
    private readonly path: string,
    private readonly notify: (entries: AppliedEntry[]) => void,
  ) {
    this.db = openDatabase(path, "NORMAL");
    this.machine = new StateMachine(this.db);
  }

  appliedIndex(): number {
    return this.machine.appliedIndex();
  }

  applyAll(entries: readonly Entry[]): (Result<unknown> | null)[] {
    const batch = entries.map((entry) => {
      if (entry.kind !== "command") return { index: entry.index, command: null, requestId: null };
      return { index: entry.index, ...decodeProposal(entry.data) };
    });
    // One transaction: a full disk refuses all of it, and the host applies the batch later.
    const results = orNoSpace("applying to state.db", () => this.machine.applyAll(batch));
    const applied: AppliedEntry[] = [];
    batch.forEach(({ index, command }, i) => {
      if (command !== null) applied.push({ index, command, result: results[i] as ApplyResult });
    });
    this.notify(applied);
    return batch.map(({ command }, i) => (command === null ? null : (results[i] ?? null)));
  }

  /**
   * Replaces state.db with the leader's image, taken at the snapshot's index. The image is on
   * disk before the old state closes: a full disk refuses it with the old state still open.
   */
  restore(image: Uint8Array): void {
    const incoming = `${this.path}.tmp`;
    orNoSpace("writing a snapshot image over state.db", () => writeWhole(incoming, image));
    this.db.close();
    for (const suffix of ["-wal", "-shm"]) rmSync(`${this.path}${suffix}`, { force: true });
    renameSync(incoming, this.path);
    syncPath(dirname(this.path));
    this.db = openDatabase(this.path, "NORMAL");
    this.machine = new StateMachine(this.db);
  }

  close(): void {
    this.db.close();
  }
}
export class RaftCommandLog implements MemberLog {
  private readonly state: StateDbMachine;
  private readonly store: LibsqlRaftLogStore;
  private readonly pipeline: RaftPipeline;
  private readonly sessions: ClientSessions<Command>;
  private readonly listeners = new Set<(entry: AppliedEntry) => void>();
  private readonly images: SnapshotImages;
  /** raft.db records a snapshot whose image is gone (a crash of an older version): retake it. */
  private readonly imageMissing: boolean;
  private readonly space: DiskSpace;

  constructor(private readonly options: RaftCommandLogOptions) {
    this.store = new LibsqlRaftLogStore(join(options.dataDir, "raft.db"));
    if (options.bootstrap) this.store.saveBootstrap(options.bootstrap);
    const state = this.store.load();
    const recorded = state.snapshot?.index ?? 0;
    this.state = new StateDbMachine(join(options.dataDir, "state.db"), (entries) => {
      this.space.wrote();
      for (const entry of entries) {
        for (const listener of this.listeners) notify(listener, entry);
      }
    });
    this.images = new SnapshotImages(options.dataDir, () => this.state.db);
    this.images.settle(recorded);
    // state.db is written without fsync; after a power loss it may be behind a compaction, whose
    // entries are gone from the log. The snapshot image, synced before compacting, holds them.
    if (state.snapshot && this.state.appliedIndex() < recorded) {
      this.state.restore(this.images.restorable(recorded));
    }
    this.images.keepOnly(recorded);
    this.imageMissing = recorded > 0 && !this.images.has(recorded);
    const timers = nodeTimers(options.clock);
    const node = options.nodeId;
    this.space = options.diskSpace ?? new DiskSpace(options.dataDir, () => timers.monotonic());
    this.pipeline = new RaftPipeline({
      core: { id: node, bootstrap: options.bootstrap, random: options.random },
      state,
      disk: {
        load: () => this.store.load(),
        write: (batch) => {
          orNoSpace("writing raft.db", () => this.store.write(batch));
          this.space.wrote();
        },
        flush: (done, failed) => {
          this.store.flush().then(done, (error) => {
            failed(isDiskFullError(error) ? noSpaceError("flushing raft.db", error) : error);
          });
        },
        close: () => this.store.close(),
      },
      images: this.images,
      machine: this.state,
      network: options.sender,
      timers,
      tickMs: limits.raftTickMs,
      waitingMax: limits.logWaitingMax,
      snapshotEntries: options.snapshotEntries ?? raftLimits.snapshotEntriesThreshold,
      observer: {
        warn: (what, detail) =>
          console.error(`shoal: ${what}`, JSON.stringify({ node, ...detail })),
      },
      diskFullRetryMs: limits.diskFullRetryMs,
      fatal: crash,
    });
    this.sessions = new ClientSessions<Command>({
      pipeline: this.pipeline,
      machine: this.state,
      timers,
      encode: encodeProposal,
      newRequestId: () => `${newId()}${newId()}`,
      leaderCall: options.leaderCall,
      tickMs: limits.raftTickMs,
      proposeTimeoutMs: limits.proposeTimeoutMs,
      leaderHoldMs: limits.leaderHoldMs,
      forwardTimeoutMs: limits.forwardTimeoutMs,
      space: this.space,
      // The node's report of its own disk is let through the reserve, which is kept for it.
      mayUseReserve: (command) => command.type === "node.disk",
    });
  }

  /**
   * A one-member cluster's log in `dataDir`, leading once it resolves, with its own term's first
   * entry applied (a sole voter elects itself on its first tick). For tests, benchmarks and tools
   * that need the real store without peers.
   */
  static async openLone(
    dataDir: string,
    nodeId: string,
    clock: Clock,
    diskSpace?: DiskSpace,
  ): Promise<RaftCommandLog> {
    const fresh = !existsSync(join(dataDir, "raft.db"));
    const log = new RaftCommandLog({
      nodeId,
      dataDir,
      clock,
      random: new SeededRandom(1),
      sender: { send() {} },
      bootstrap: fresh ? { voters: [nodeId], learners: [] } : undefined,
      diskSpace,
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

  private get core() {
    return this.pipeline.core;
  }

  /** Whether this node has applied an entry of its current term (a new leader's no-op). */
  private appliedOwnTerm(): boolean {
    return this.core.termAt(this.state.appliedIndex()) === this.core.status().term;
  }

  start(): void {
    this.pipeline.start();
    if (this.imageMissing) this.pipeline.snapshotNow();
  }

  /** Hands messages from peers to the core. */
  receive(messages: readonly Message[]): void {
    this.pipeline.receive(messages);
  }

  /** A peer's messages, answered in that peer's own request once the answers may leave. */
  receiveAndReply(from: string, messages: readonly Message[]): Promise<Message[]> {
    return this.pipeline.receiveAndReply(from, messages);
  }

  view(): StateView {
    return this.state.machine.view;
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
  transferLeadership(target: string, waitMs: number): Promise<Result<void>> {
    return this.sessions.transferLeadership(target, waitMs);
  }

  isLeader(): boolean {
    return this.sessions.isLeader();
  }

  /** This node's disk, as it sees it now: read locally, never from the store. */
  disk(): DiskStatus {
    return diskStatus(this.space, this.pipeline.diskFull);
  }

  leaseRemainingMs(): number {
    const status = this.core.status();
    return this.isLeader() ? Math.max(0, status.leaseExpiryMs - this.options.clock.monotonic()) : 0;
  }

  /** Proposes here when leading, else forwards to the leader, held through an election. */
  propose(command: Command): Promise<ApplyResult> {
    return this.sessions.propose(command);
  }

  /** The leader's side of a forwarded proposal: the result and the index it is applied at. */
  proposeForPeer(command: Command, requestId: string, from?: string): Promise<ForwardedAnswer> {
    return this.sessions.proposeForPeer(command, requestId, from);
  }

  /** Waits until this node's replica is fresh enough for a read at `consistency`. */
  readAt(consistency: Consistency): Promise<Result<void>> {
    return this.sessions.readAt(consistency);
  }

  /** The leader's side of a follower's read: its commit index, under the lease or ReadIndex. */
  readIndexForPeer(
    kind: "lease-read" | "read-index",
    from?: string,
  ): Promise<Result<{ index: number }>> {
    return this.sessions.readIndexForPeer(kind, from);
  }

  /** Proposes on this member only: E_NOT_LEADER unless it leads. */
  proposeHere(command: Command, requestId: string | null = null): Promise<ApplyResult> {
    return this.sessions.proposeHere(command, requestId);
  }

  /** Proposes one membership change (one at a time) and waits until this node applied it. */
  changeMembership(change: MembershipChange): Promise<Result<void>> {
    return this.sessions.changeMembership(change);
  }

  /** Resolves once this node has applied everything committed when the read was asked. */
  readBarrier(): Promise<Result<void>> {
    return this.sessions.readBarrier();
  }

  onLeadership(listener: (change: LeadershipChange) => void): () => void {
    return this.pipeline.onLeadership(listener);
  }

  onApplied(listener: (entry: AppliedEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Takes a snapshot now (or once the batch being flushed is done). */
  snapshotNow(): void {
    this.pipeline.snapshotNow();
  }

  close(): void {
    this.pipeline.close();
    this.sessions.close();
    this.store.close();
    this.state.close();
  }
}

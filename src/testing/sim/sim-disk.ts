// A simulated member's disk: the Raft log with writing and flushing apart, snapshot images
// named by index, and the state machine (state.db, written without a flush of its own). A crash
// keeps what was flushed, and of what was written after it only a prefix of whole batches (a
// torn last batch is discarded, as a database discards a half-written transaction). A power
// loss also sets the state machine back to the image of the snapshot the log records.
import { assert } from "../../core/assert.ts";
import { noSpaceError, type Result } from "../../core/errors.ts";
import type { HostLogDisk, HostSnapshotImages, HostStateMachine } from "../../raft/host/ports.ts";
import type { LogStoreBatch } from "../../raft/log-store.ts";
import { MemoryLogStore } from "../../raft/memory-log-store.ts";
import type { SeededRandom } from "../../raft/seeded-random.ts";
import type { Entry, PersistentState } from "../../raft/types.ts";
import type { EventQueue } from "./event-queue.ts";
import { KvMachine, type KvResult } from "./kv-machine.ts";

export interface DiskTiming {
  /** A flush takes between 0 and this many milliseconds... */
  readonly flushMsMax: number;
  /** ...except, this often, a stall of up to `stallMsMax`. */
  readonly stallChance: number;
  readonly stallMsMax: number;
}

/** Whether a member's disk is full now: every write to it (log, images, state) is refused. */
export interface Fullness {
  full: boolean;
}

const enospc = () => Object.assign(new Error("no space left on device"), { code: "ENOSPC" });

/** Throws what an adapter throws on a full disk, when the disk is full. */
function refuseWhenFull(fullness: Fullness, what: string): void {
  if (fullness.full) throw noSpaceError(what, enospc());
}

export class SimDisk implements HostLogDisk {
  /** What survives any crash. */
  readonly durable = new MemoryLogStore();
  /** Written since the last flush began, oldest first: a crash keeps a prefix at most. */
  private written: LogStoreBatch[] = [];
  /** Written by a process that crashed before flushing it: readable, lost to a power cut. */
  private cached: LogStoreBatch[] = [];
  /** Being flushed: until the flush is done, as exposed to a crash as any later write. */
  private inFlight: LogStoreBatch[] = [];
  /** Bumped by a crash: a flush under way when the process died never calls back. */
  private generation = 0;
  flushes = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly random: SeededRandom,
    private readonly timing: () => DiskTiming,
    /** The mutant `skipSyncAtOpen`: what a crashed process left cached passes for durable. */
    private readonly skipSyncAtOpen = false,
    readonly fullness: Fullness = { full: false },
  ) {}

  /** Flushes what a crashed process left in the cache (unless the mutant), then reads. */
  load(): PersistentState {
    assert(this.written.length === 0, "loading a disk with unflushed writes");
    if (!this.skipSyncAtOpen) this.syncCached();
    return this.readable().load();
  }

  /** The disk as a reader sees it: durable, plus what is only in the cache. */
  private readable(): MemoryLogStore {
    if (this.cached.length === 0) return this.durable;
    const view = new MemoryLogStore();
    const { hardState, snapshot, entries } = this.durable.load();
    view.save({ snapshot, compaction: null, entries, hardState });
    for (const batch of this.cached) view.save(batch);
    return view;
  }

  private syncCached(): void {
    for (const batch of this.cached.splice(0)) this.durable.save(batch);
  }

  write(batch: LogStoreBatch): void {
    refuseWhenFull(this.fullness, "writing the log");
    this.written.push(batch);
  }

  /**
   * On a full disk the flush fails and what it carried is lost (a failed write-back drops its
   * pages): only a batch written again after it can become durable.
   */
  flush(done: () => void, failed: (error: unknown) => void = () => {}): void {
    const batches = this.written;
    this.written = [];
    const generation = this.generation;
    const { flushMsMax, stallChance, stallMsMax } = this.timing();
    const stalled = stallChance > 0 && this.random.chance(stallChance);
    const delayMs = this.random.between(0, stalled ? stallMsMax : flushMsMax);
    this.flushes++;
    this.inFlight = batches;
    this.queue.after(delayMs, () => {
      if (generation !== this.generation) return;
      if (this.fullness.full) {
        this.inFlight = [];
        failed(noSpaceError("flushing the log", enospc()));
        return;
      }
      // A flush syncs everything written before it, what an earlier process left cached too.
      this.syncCached();
      for (const batch of batches) this.durable.save(batch);
      this.inFlight = [];
      done();
    });
  }

  /**
   * The process died: a prefix of what was written but not flushed stays in the page cache,
   * readable but not durable; a power loss takes what is only cached.
   */
  crash(powerLoss: boolean): void {
    this.generation++;
    const pending = [...this.inFlight, ...this.written];
    const kept = this.random.nextInt(pending.length + 1);
    this.cached.push(...pending.slice(0, kept));
    if (powerLoss) this.cached = [];
    this.inFlight = [];
    this.written = [];
  }

  close(): void {}
}

/** Images by index, durable as soon as written (each is written whole, then renamed). */
export class SimImages implements HostSnapshotImages {
  private readonly images = new Map<number, Uint8Array>();
  private received: Uint8Array | null = null;

  constructor(
    private readonly state: SimStateMachine,
    /** The mutant `anyImage`: one image slot, whatever index the image holds (the old design). */
    private readonly oneSlot = false,
    private readonly fullness: Fullness = { full: false },
  ) {}

  has(index: number): boolean {
    return this.images.has(index);
  }

  read(index: number): Uint8Array | null {
    const newest = this.oneSlot ? this.newestIndex() : null;
    return this.images.get(newest ?? index) ?? null;
  }

  newestIndex(): number | null {
    const indexes = [...this.images.keys()];
    return indexes.length === 0 ? null : Math.max(...indexes);
  }

  take(index: number): void {
    refuseWhenFull(this.fullness, "taking a snapshot image");
    assert(this.state.appliedIndex() === index, "an image taken at another index than applied");
    this.images.set(index, this.state.kv.snapshot());
  }

  indexOf(image: Uint8Array): number | null {
    try {
      return KvMachine.restore(image).appliedIndex;
    } catch {
      return null;
    }
  }

  writeReceived(image: Uint8Array): void {
    refuseWhenFull(this.fullness, "writing a received snapshot image");
    this.received = image;
  }

  installReceived(index: number): void {
    assert(this.received !== null, "installing a snapshot that was not received");
    this.images.set(index, this.received);
    this.received = null;
  }

  keepOnly(index: number): void {
    const kept = this.oneSlot ? (this.newestIndex() ?? index) : index;
    for (const other of [...this.images.keys()]) if (other !== kept) this.images.delete(other);
  }

  /**
   * At start, what a crash left is put right, given the snapshot the log records: a received
   * image is kept only if it is that snapshot's.
   */
  settle(recorded: number): void {
    const received = this.received;
    this.received = null;
    if (received !== null && this.indexOf(received) === recorded)
      this.images.set(recorded, received);
  }

  /** The image to rebuild a state that is behind the recorded snapshot (see the adapter's). */
  restorable(recorded: number): Uint8Array {
    const newer = [...this.images.keys()].filter((i) => i > recorded).sort((a, b) => a - b);
    const index = this.images.has(recorded) ? recorded : newer[0];
    const image = index === undefined ? undefined : this.images.get(index);
    assert(image !== undefined, `state behind the recorded snapshot ${recorded} and no image`);
    return image;
  }
}

/** The key-value machine as the host's state machine. */
export class SimStateMachine implements HostStateMachine {
  kv: KvMachine;

  constructor(
    private readonly fencing: boolean,
    private readonly applied: (entry: Entry, result: KvResult | null) => void,
    private readonly fullness: Fullness = { full: false },
  ) {
    this.kv = new KvMachine(fencing);
  }

  appliedIndex(): number {
    return this.kv.appliedIndex;
  }

  /** One transaction, as state.db's: a full disk refuses all of it. */
  applyAll(entries: readonly Entry[]): (Result<unknown> | null)[] {
    refuseWhenFull(this.fullness, "applying entries");
    return entries.map((entry) => {
      const result = this.kv.apply(entry);
      this.applied(entry, result);
      return result === null ? null : { ok: true, value: result };
    });
  }

  restore(image: Uint8Array): void {
    this.kv = KvMachine.restore(image, this.fencing);
  }

  /** A power loss: the state falls back to the recorded snapshot's image, or to nothing. */
  loseUnsyncedState(image: Uint8Array | null): void {
    this.kv = image === null ? new KvMachine(this.fencing) : KvMachine.restore(image, this.fencing);
  }
}

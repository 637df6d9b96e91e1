// The ports of the Raft host: what the pipeline and the client sessions need of the world. The
// release binary implements them over libSQL files, Node's timers and HTTP between peers
// (adapters/raft-command-log.ts); the simulator over a simulated disk, its event queue and its
// network. The host itself stays pure: time, timers, disks and peers come in through here.
import type { Result } from "../../core/errors.ts";
import type { Timers } from "../../core/timers.ts";
import type { LogStoreBatch } from "../log-store.ts";
import type { Entry, Message, PersistentState } from "../types.ts";

/** Timers on the host's own clock (the core's and the lease's time). */
export type HostTimers = Timers;

/**
 * The Raft log on disk, with writing and flushing apart: `write` is in the page cache at once,
 * `flush` makes everything written so far durable, off the host's turn, then calls back (in a
 * later turn, never from within `flush`). A full disk is reported as E_NO_SPACE (see
 * `noSpaceError`): a `write` so refused wrote nothing of its batch.
 */
export interface HostLogDisk {
  /**
   * What is on disk, flushed first: a process that crashed may have written what it never
   * flushed, which must not pass for durable (it would be acknowledged without a flush).
   */
  load(): PersistentState;
  write(batch: LogStoreBatch): void;
  flush(done: () => void, failed: (error: unknown) => void): void;
  close(): void;
}

/**
 * The replicated state machine. It applies committed entries in order, each once; a command
 * entry's result goes to the proposal that waits for it (null for no-ops and membership). An
 * `applyAll` or `restore` that a full disk refuses throws E_NO_SPACE and changed nothing.
 */
export interface HostStateMachine {
  appliedIndex(): number;
  applyAll(entries: readonly Entry[]): (Result<unknown> | null)[];
  /** Replaces the whole state with a snapshot's image, taken at the snapshot's index. */
  restore(image: Uint8Array): void;
}

/**
 * State images of snapshots, each named by the index it was taken at, so an image never stands
 * for another snapshot than its own. The log on disk says which snapshot is current; an image
 * received from the leader waits apart until the log records it. A write that a full disk
 * refuses throws E_NO_SPACE and leaves no part of an image behind.
 */
export interface HostSnapshotImages {
  has(index: number): boolean;
  read(index: number): Uint8Array | null;
  /** The index of the newest image on disk (null when there is none). */
  newestIndex(): number | null;
  /** Writes the image of the state machine (at `index`, its applied index) whole and durably. */
  take(index: number): void;
  /** The applied index a peer's image holds, or null when it is not an image. */
  indexOf(image: Uint8Array): number | null;
  /** A received image, durable before the log records its snapshot. */
  writeReceived(image: Uint8Array): void;
  /** The log recorded the received snapshot at `index`: its image becomes that index's. */
  installReceived(index: number): void;
  /** Removes every image but `index`'s, once the log records the snapshot at `index`. */
  keepOnly(index: number): void;
}

/**
 * Free space on the disk of the data dir, against a reserve kept for what the log has taken
 * already. Read cheaply: the adapter measures it at most every so often, never per call.
 */
export interface HostDiskSpace {
  /** Whether free space is below the reserve: this node then refuses proposals as leader. */
  short(): boolean;
  readonly reserveBytes: number;
}

/** Sends Raft messages to peers; best effort, since Raft tolerates loss and reordering. */
export interface HostNetwork {
  send(messages: readonly Message[]): void;
}

/**
 * Calls the leader's peer route `kind` (one hop, never further): `propose` for writes,
 * `read-index` and `lease-read` for reads. It rejects with a ShoalError when the leader could
 * not be asked or did not answer.
 */
export type LeaderCall = <T>(
  leaderId: string,
  kind: string,
  body: unknown,
  timeoutMs?: number,
) => Promise<T>;

/** What the host's observers see: the simulator's checkers, a node's metrics. */
export interface HostObserver {
  /** A message leaves this member (after whatever it depends on is durable, unless a bug). */
  sent?(message: Message): void;
  /** The core took input or a batch finished (invariants hold between such steps). */
  stepped?(): void;
  /** Something went wrong that the host survives (a refused image, an image missing to send). */
  warn?(what: string, detail: Record<string, unknown>): void;
  /** Entries were applied, with their results. */
  applied?(entries: readonly Entry[], results: readonly (Result<unknown> | null)[]): void;
}

/**
 * Deliberate defects of the host, switched on only by the simulator's mutant campaigns to
 * prove that its checkers notice the mechanism's absence.
 */
export interface HostBugs {
  /** Messages that must wait for the persist leave before the flush is done. */
  readonly sendBeforeFlush?: boolean;
  /** A batch that must be synced is only written: acknowledged before it is durable. */
  readonly skipFlush?: boolean;
  /** A proposal is answered by whatever entry lands at its index, of any term. */
  readonly answerAnyTerm?: boolean;
  /** A resent forwarded write gets a fresh request id, so a second copy applies again. */
  readonly freshRequestIdOnResend?: boolean;
  /** A forwarded write is reported refused although an earlier copy's fate is unknown. */
  readonly refuseAfterUnknownCopy?: boolean;
  /** The log disk reads what a crashed process wrote as durable, without flushing it first. */
  readonly skipSyncAtOpen?: boolean;
  /** A snapshot goes with the newest image, whatever index it holds, and is installed unchecked. */
  readonly anyImage?: boolean;
  /** After a flush the full disk failed, the batch is flushed again without being rewritten. */
  readonly flushAgainWithoutWrite?: boolean;
  /** A proposal held by a full disk is told E_NO_SPACE (refused) at its timeout. */
  readonly refuseHeldProposals?: boolean;
}

export type HostBugName = keyof HostBugs;

export const hostBugNames: readonly HostBugName[] = [
  "sendBeforeFlush",
  "skipFlush",
  "answerAnyTerm",
  "freshRequestIdOnResend",
  "anyImage",
  "skipSyncAtOpen",
  "refuseAfterUnknownCopy",
  // Caught on the diskFull profile only (test/sim/disk-full.test.ts), not on the default mix.
  "flushAgainWithoutWrite",
  "refuseHeldProposals",
];

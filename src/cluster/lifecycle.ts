// A node's life as a member: open its store, join (or create) the cluster, start its membership
// duties, wait until the cluster's row is known and its registration applied, run, and at the
// end hand over (a leader spares the fleet an election timeout) or leave (`--leave`), then stop
// in reverse. The composition root (main.ts) gives the parts; this module gives the order.
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import { departAsLeader, transferToBestVoter } from "./handover.ts";
import type { ClusterMember } from "./member.ts";
import type { MemberLog } from "./ports.ts";

/** A node's replicated store once open: whether it must still be admitted, and how. */
export interface OpenedStore {
  log: MemberLog;
  /** Whether the node must still be admitted by a member (`join` does it). */
  needsJoin: boolean;
  /** Asks members until one admits this node; throws when every member refuses the token. */
  join(signal: AbortSignal): Promise<void>;
}

export interface LifecycleParts<S extends OpenedStore> {
  nodeId: string;
  /** Opens the store: resumes from the data dir, or bootstraps a new cluster. */
  open(): Promise<S>;
  /** Called as soon as the store is open (peers may talk to it while it joins). */
  opened(store: S): void;
  /** The node's membership duties over the open store. */
  member(store: S): ClusterMember;
  /** Starts the node's own work once it belongs (the agent's loops); returns what stops it. */
  run(store: S, member: ClusterMember): { stop(): Promise<void> };
  /** Closes what the parts opened (servers, discovery, the store); `store` is null if none. */
  close(store: S | null): Promise<void>;
  /** `--leave`: on stopping, ask to be taken out of the cluster. */
  leave: boolean;
  timers: Timers;
  /** Wall-clock time for commands. */
  now(): number;
  logger: Logger;
}

export interface RunningMember<S extends OpenedStore> {
  store: S;
  member: ClusterMember;
  stop(): Promise<void>;
}

/** Opens, joins and starts the member; everything opened is closed again if that fails. */
export async function startMember<S extends OpenedStore>(
  parts: LifecycleParts<S>,
  signal: AbortSignal,
): Promise<RunningMember<S>> {
  let store: S | null = null;
  let member: ClusterMember | null = null;
  try {
    store = await parts.open();
    parts.opened(store);
    if (store.needsJoin) await store.join(signal);
    member = parts.member(store);
    member.start();
    await untilClusterKnown(store.log, parts.timers, signal);
    await untilRegistered(member, parts.timers, signal);
  } catch (error) {
    // A node that cannot open its store or join must exit (and be restarted), not serve 503.
    member?.stop();
    await parts.close(store);
    throw error;
  }
  member.startHeartbeats();
  const running = parts.run(store, member);
  const [opened, joined] = [store, member];
  return { store: opened, member: joined, stop: () => stopMember(parts, opened, joined, running) };
}

async function stopMember<S extends OpenedStore>(
  parts: LifecycleParts<S>,
  store: S,
  member: ClusterMember,
  running: { stop(): Promise<void> },
): Promise<void> {
  member.stop();
  await handOver(parts, store.log);
  await running.stop();
  await parts.close(store);
  parts.logger.info({}, "node stopped");
}

/**
 * Before stopping: a leader hands leadership to the most caught-up voter, so the fleet does not
 * wait an election timeout; a node told to `--leave` asks the leader to take it out.
 */
async function handOver<S extends OpenedStore>(parts: LifecycleParts<S>, log: MemberLog) {
  const { logger } = parts;
  if (!parts.leave) {
    await transferToBestVoter(log, logger, "leadership transfer on shutdown");
    return;
  }
  const left = await log.propose({ type: "node.leave", at: parts.now(), nodeId: parts.nodeId });
  logger.info({ ok: left.ok, ...(left.ok ? {} : { error: left.message }) }, "left the cluster");
  // The leader takes itself out only after handing over, promoting a successor if it must.
  if (left.ok) await departAsLeader(log, logger, parts.timers, limits.transferWaitMs);
}

/** Waits until the cluster's row is in this node's replica (a joiner receives it from the leader). */
async function untilClusterKnown(log: MemberLog, timers: Timers, signal: AbortSignal) {
  while (!log.view().cluster()) {
    if (signal.aborted) throw new Error("the node stopped before it knew its cluster");
    await pause(timers, limits.raftTickMs * 5);
  }
}

/**
 * Gives this start's registration a moment to commit, so a node answers health with its row
 * current; a node cut off from the leader still starts after the wait (its containers run on).
 */
async function untilRegistered(member: ClusterMember, timers: Timers, signal: AbortSignal) {
  const deadline = timers.monotonic() + limits.registerWaitMs;
  while (!member.registration.isRegistered && timers.monotonic() < deadline && !signal.aborted) {
    await member.registration.round();
    await pause(timers, limits.raftTickMs * 5);
  }
}

function pause(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.after(ms, resolve));
}

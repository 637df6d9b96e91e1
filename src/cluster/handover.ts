// Handing leadership on: to the most caught-up reachable voter when a leader stops or its own
// node left, promoting a caught-up learner first when this node is the only voter.
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { MemberLog } from "./ports.ts";

export type HandoverLog = Pick<
  MemberLog,
  "status" | "followers" | "monotonicNow" | "transferLeadership" | "changeMembership"
>;

/** Followers heard within `memberSilentAfterMs`, by id. */
export function reachableMembers(
  log: Pick<HandoverLog, "followers" | "monotonicNow">,
): Set<string> {
  const now = log.monotonicNow();
  return new Set(
    log
      .followers()
      .filter((f) => now - f.lastHeardMs <= limits.memberSilentAfterMs)
      .map((f) => f.id),
  );
}

/** Reachable followers, the most caught-up first. */
function reachableByMatch(log: HandoverLog) {
  const reachable = reachableMembers(log);
  return log
    .followers()
    .filter((f) => reachable.has(f.id))
    .sort((a, b) => b.match - a.match);
}

/**
 * Hands leadership to the most caught-up reachable voter (a stopping leader spares the fleet an
 * election timeout). False when this node does not lead or no such voter exists.
 */
export async function transferToBestVoter(
  log: HandoverLog,
  logger: Logger,
  why: string,
): Promise<boolean> {
  const status = log.status();
  if (status.role !== "leader") return false;
  const { voters } = status.membership;
  const voter = reachableByMatch(log).find((f) => voters.includes(f.id) && f.id !== status.id);
  if (!voter) return false;
  const moved = await log.transferLeadership(voter.id, limits.transferWaitMs);
  logger.info({ to: voter.id, ok: moved.ok }, why);
  return true;
}

/**
 * A leader whose own node left gives the lead to the most caught-up voter, which removes it.
 * The only voter first promotes a caught-up learner, or the cluster would be left headless.
 */
export async function handOverLeadership(log: HandoverLog, logger: Logger): Promise<void> {
  if (await transferToBestVoter(log, logger, "a departing leader hands over")) return;
  const { learners } = log.status().membership;
  const lastIndex = log.status().lastIndex;
  const learner = reachableByMatch(log).find(
    (f) => learners.includes(f.id) && lastIndex - f.match <= limits.caughtUpEntriesMax,
  );
  if (!learner) return;
  const promoted = await log.changeMembership({ type: "promote", member: learner.id });
  logger.info({ learner: learner.id, ok: promoted.ok }, "promoted a successor");
}

/** For `--leave` on shutdown: hand leadership over (promoting a successor if needed) in time. */
export async function departAsLeader(
  log: HandoverLog,
  logger: Logger,
  timers: Timers,
  waitMs: number,
): Promise<void> {
  const deadline = timers.monotonic() + waitMs;
  while (log.status().role === "leader" && timers.monotonic() < deadline) {
    await handOverLeadership(log, logger);
    await new Promise<void>((resolve) => timers.after(limits.memberDutyIntervalMs / 5, resolve));
  }
}

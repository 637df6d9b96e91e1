// What a simulation run must show once its faults heal: a leader, and writes that commit, within
// a bound; and at the end one log and one state on every member, no acknowledged write lost, no
// refused write applied, and a linearizable history of the clients' operations.
import type { RaftCore } from "../../raft/raft-core.ts";
import type { MemberId } from "../../raft/types.ts";
import { checkAcknowledgedWrite, checkLogMatching, Violation } from "./checkers.ts";
import { isWrite } from "./client-workload.ts";
import { checkHistory, type KvOperation, verdictFailure } from "./linearizability.ts";
import type { SimMember } from "./sim-member.ts";
import type { Simulation } from "./simulation.ts";

/** After healing, a leader must exist and writes must commit within this bound. */
export const livenessBoundMs = 3000;

export function checkWritesCommittedSince(sim: Simulation, sinceMs: number, why: string): void {
  const committed = sim.workload.operations.some(
    (operation) =>
      operation.status === "ok" && isWrite(operation.kind) && operation.returnMs > sinceMs,
  );
  if (!committed) throw new Violation("liveness", `no write committed ${why}`);
}

export function checkLeaderExists(sim: Simulation): void {
  if (sim.currentLeader() === null) {
    throw new Violation("liveness", `no leader ${livenessBoundMs} ms after healing`);
  }
}

export function finalChecks(sim: Simulation): void {
  const leader = sim.currentLeader();
  if (leader?.core == null) throw new Violation("liveness", "no leader at the end");
  const status = leader.core.status();
  const { voters, learners } = status.membership;
  const retired = [...voters, ...learners].find((id) => sim.wiped.has(id));
  if (retired !== undefined) {
    throw new Violation("liveness", `${retired} was wiped but is still a member at the end`);
  }
  const cores = sim.members
    .filter((member) => voters.includes(member.id) || learners.includes(member.id))
    .map((member) => member.core as RaftCore);
  checkLogMatching(cores);
  checkConvergence(sim, leader, [...voters, ...learners]);
  checkAcknowledgedWrites(sim, leader);
  checkLinearizable(sim);
}

function checkConvergence(sim: Simulation, leader: SimMember, members: readonly MemberId[]): void {
  const commit = leader.core?.status().commitIndex ?? 0;
  const hash = leader.machine.stateHash();
  for (const id of members) {
    const member = sim.memberById(id);
    if (member === undefined) continue;
    if (member.machine.appliedIndex !== commit) {
      throw new Violation(
        "liveness",
        `${id} applied ${member.machine.appliedIndex}, leader committed ${commit}`,
      );
    }
    if (member.machine.stateHash() !== hash) {
      throw new Violation("state hashes equal", `${id} differs from ${leader.id} at ${commit}`);
    }
  }
  const healedWrites = sim.workload.operations.filter(
    (operation) =>
      operation.status === "ok" &&
      isWrite(operation.kind) &&
      operation.callMs >= sim.profile.faultPhaseMs + livenessBoundMs,
  );
  if (healedWrites.length === 0)
    throw new Violation("liveness", "no write committed after healing");
}

function checkAcknowledgedWrites(sim: Simulation, leader: SimMember): void {
  for (const operation of sim.workload.operations) {
    if (!isWrite(operation.kind)) continue;
    // A refused write was never applied: the client was told so and may try it again.
    if (operation.status === "failed" && sim.workload.appliedAt.has(operation.id)) {
      const at = sim.workload.appliedAt.get(operation.id)?.index;
      throw new Violation("refused write applied", `operation ${operation.id} at ${at}`);
    }
    if (operation.status !== "ok") continue;
    const record = sim.checker.appliedRecord(operation.index);
    const checked = checkAcknowledgedWrite(operation, leader.machine.appliedIndex, record);
    if (!checked.ok) throw new Violation("acknowledged write lost", checked.reason);
  }
}

function checkLinearizable(sim: Simulation): void {
  const history: KvOperation[] = [];
  for (const operation of sim.workload.operations) {
    // A refused operation was never executed; one without an answer may or may not have been.
    if (operation.status === "failed") continue;
    // A write without an answer that no member ever applied had no effect on any read (every
    // member applies one log, and the convergence check saw them agree): it is left out, so
    // the search need not try it at every point of the history.
    const applied = isWrite(operation.kind) ? sim.workload.appliedAt.get(operation.id) : undefined;
    if (operation.status !== "ok" && isWrite(operation.kind) && applied === undefined) continue;
    // Past the drift bound leases may overlap, so lease reads may be stale: only fencing
    // keeps the state correct, and that is what the rest of the history shows.
    if (operation.kind === "leaseRead" && sim.profile.driftMode === "beyond") continue;
    const known = operation.status === "ok";
    // A write without an answer took effect by the time a member applied it, which it does
    // only once the write committed: any read that starts later must see it (or a later one).
    const returnMs = known ? operation.returnMs : (applied?.timeMs ?? Number.POSITIVE_INFINITY);
    const isRead = operation.kind === "readIndex" || operation.kind === "leaseRead";
    const isCas = operation.kind === "cas" || operation.kind === "fencedWrite";
    history.push({
      id: operation.id,
      key: operation.key,
      kind: isRead ? "read" : isCas ? "cas" : "write",
      value: isRead ? operation.readValue : operation.value,
      expected: operation.expected,
      callMs: operation.callMs,
      returnMs,
      ok: known && isCas ? operation.ok : null,
    });
  }
  // Every key is checked, and a key the search could not decide fails the run as well.
  const failure = verdictFailure(checkHistory(history));
  if (failure !== null) throw new Violation("linearizability", failure);
}

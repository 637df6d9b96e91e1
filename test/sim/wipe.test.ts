// A member whose data dir is wiped never comes back under its old id (it would forget the votes
// it cast); it rejoins under a new id as a learner while the leader removes the old one.
import assert from "node:assert/strict";
import { it } from "node:test";
import type { FaultProfile } from "../../src/testing/sim/fault-profile.ts";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

const wipes: Partial<FaultProfile> = {
  members: 3,
  spares: 1,
  membershipChanges: true,
  // At 3 voters or more one wipe leaves a quorum.
  votersMin: 3,
  // As in the mix under churn: a deaf member may be the one a two-voter quorum needs.
  lingeringDeafChance: 0,
  wipes: true,
};
const seeds = 40;

it(`members rejoin under new ids after their data dir is wiped (${seeds} seeds)`, async () => {
  let wiped = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const result = await runSimulation({ seed, profile: wipes });
    assert.ok(result.ok, `SEED=${seed}: ${result.violation}`);
    wiped += result.wiped;
  }
  assert.ok(wiped >= seeds / 4, `only ${wiped} wipes in ${seeds} seeds`);
});

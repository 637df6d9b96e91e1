// The checkers bite: with a deliberate defect switched on in the core, the simulator finds a
// violation within a bounded number of seeds, and the failing seed passes without the defect.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RaftBugName } from "../../src/raft/types.ts";
import type { FaultProfile } from "../../src/testing/sim/fault-profile.ts";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

interface Hunt {
  readonly bug: RaftBugName;
  readonly seedsMax: number;
  readonly profile?: Partial<FaultProfile>;
}

/** Leases overlap only in a narrow race; clocks at a wide drift bound make it likelier. */
const leaseRace: Partial<FaultProfile> = {
  members: 3,
  spares: 0,
  partitions: true,
  crashes: false,
  pauses: false,
  membershipChanges: false,
  transfers: false,
  driftMode: "bound",
  clockDriftMax: 0.2,
  electionJitterMs: 30,
  isolateNewLeaderChance: 0,
  network: {
    lossRate: 0,
    duplicateRate: 0,
    delayMsMin: 1,
    delayMsMax: 3,
    lateRate: 0,
    lateMsMax: 0,
  },
  faultIntervalMsMin: 100,
  faultIntervalMsMax: 600,
};

const hunts: Hunt[] = [
  { bug: "voteTwiceInTerm", seedsMax: 100 },
  { bug: "skipPersistVote", seedsMax: 20 },
  { bug: "applyBeforeCommit", seedsMax: 20 },
  { bug: "leaseIgnoresDrift", seedsMax: 100, profile: leaseRace },
];

describe("the simulator finds every deliberate defect", () => {
  for (const hunt of hunts) {
    it(`finds ${hunt.bug} within ${hunt.seedsMax} seeds`, () => {
      let found: { seed: number; violation: string } | null = null;
      for (let seed = 1; seed <= hunt.seedsMax && found === null; seed++) {
        const result = runSimulation({ seed, bugs: { [hunt.bug]: true }, profile: hunt.profile });
        if (!result.ok) found = { seed, violation: result.violation ?? "" };
      }
      assert.ok(found !== null, `${hunt.bug} went unnoticed for ${hunt.seedsMax} seeds`);
      const clean = runSimulation({ seed: found.seed, profile: hunt.profile });
      assert.ok(clean.ok, `seed ${found.seed} fails without the defect: ${clean.violation}`);
    });
  }

  it("the lease race profile holds with the correct lease", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const result = runSimulation({ seed, profile: leaseRace });
      assert.ok(result.ok, `SEED=${seed}: ${result.violation}`);
    }
  });
});

// Fencing: with clocks drifting just past the bound, leases may overlap and lease-derived
// commands may reach the log late (a leader paused past its lease), yet the state stays correct
// because every fenced write carries the version it read. Without fencing the checkers object.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FaultProfile } from "../../src/testing/sim/fault-profile.ts";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

/** Drift past its bound, many clients on few keys, and half the fenced commands arrive late. */
const pastTheBound: Partial<FaultProfile> = {
  members: 3,
  driftMode: "beyond",
  clockDriftMax: 0.2,
  lateFencedChance: 0.5,
  clients: 6,
  keys: 2,
  operationIntervalMsMax: 10,
};

const seeds = 30;

describe("fencing keeps the state correct past the drift bound", () => {
  it(`holds on ${seeds} seeds, and late fenced writes are refused`, async () => {
    let refused = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const result = await runSimulation({ seed, profile: pastTheBound });
      assert.ok(result.ok, `SEED=${seed}: ${result.violation}`);
      refused += result.fencedRefused;
    }
    assert.ok(refused > 0, "no fenced write was ever refused: the fault does not reach fencing");
  });

  it("without fencing, stale fenced writes break the history", async () => {
    let found = false;
    for (let seed = 1; seed <= seeds && !found; seed++) {
      found = !(await runSimulation({ seed, profile: pastTheBound, fencing: false })).ok;
    }
    assert.ok(found, `fencing switched off went unnoticed for ${seeds} seeds`);
  });
});

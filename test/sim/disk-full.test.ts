// Disks that fill under the simulator: a member's disk refuses its log's writes, fails its
// flushes (losing what they carried) and refuses applies, for up to 4 s at a time, amid the other
// faults. Every safety and liveness check must hold, writes refused with E_NO_SPACE must never
// apply (the linearizability checker counts them as refused), and the fault must bite: without
// the rewrite after a failed flush, or with held proposals told they were refused, runs fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HostBugName } from "../../src/raft/host/ports.ts";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

const seeds = 40;
const profile = { diskFull: true };

describe("full disks under the simulator", () => {
  it(`hold every property on ${seeds} seeds, with logs held and writes refused`, async () => {
    let holds = 0;
    let refused = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const result = await runSimulation({ seed, profile });
      assert.equal(result.violation, null, `seed ${seed}`);
      holds += result.logHolds;
      refused += result.refusedNoSpace;
    }
    assert.ok(holds > 0, "some member's full disk held its log");
    assert.ok(refused > 0, "some write was refused with E_NO_SPACE");
  });

  const mutants: { bug: HostBugName; seedsMax: number }[] = [
    // First caught at seed 454 since learners replicate on ticks (100 before), in about 30 s.
    { bug: "flushAgainWithoutWrite", seedsMax: 500 },
    { bug: "refuseHeldProposals", seedsMax: 50 },
  ];
  for (const { bug, seedsMax } of mutants) {
    it(`finds the host's ${bug} by its outcome within ${seedsMax} seeds`, async () => {
      for (let seed = 1; seed <= seedsMax; seed++) {
        const options = { seed, profile, hostBugs: { [bug]: true }, outcomesOnly: true };
        if (!(await runSimulation(options)).ok) return;
      }
      assert.fail(`${bug} went unnoticed for ${seedsMax} seeds`);
    });
  }
});

// Runs a range of simulator seeds inside node:test; several test files share the sweep so
// node:test runs them in parallel processes.
import assert from "node:assert/strict";
import { it } from "node:test";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

export function sweepSeeds(seedStart: number, count: number): void {
  it(`seeds ${seedStart}..${seedStart + count - 1} hold every safety and liveness property`, async () => {
    const failures: string[] = [];
    const sizes = new Set<number>();
    for (let seed = seedStart; seed < seedStart + count; seed++) {
      const result = await runSimulation({ seed });
      sizes.add(result.members);
      if (!result.ok) failures.push(`SEED=${seed} npm run sim  # ${result.violation}`);
    }
    assert.deepEqual(failures, []);
    assert.ok(sizes.size >= 3, "the sweep mixes cluster sizes");
  });
}

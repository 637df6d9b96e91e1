// One seed always yields the same trace; different seeds yield different ones.
import assert from "node:assert/strict";
import { it } from "node:test";
import { runSimulation } from "../../src/testing/sim/simulation.ts";

it("replays a seed to the same trace hash", async () => {
  for (const seed of [7, 123, 4242]) {
    const first = await runSimulation({ seed });
    const second = await runSimulation({ seed });
    assert.equal(second.traceHash, first.traceHash);
    assert.equal(second.events, first.events);
  }
});

it("different seeds take different paths", async () => {
  const results = await Promise.all([1, 2, 3, 4, 5].map((seed) => runSimulation({ seed })));
  const hashes = new Set(results.map((result) => result.traceHash));
  assert.equal(hashes.size, 5);
});

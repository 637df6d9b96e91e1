// Seeded randomness and ids for tests and benchmarks, so that they replay exactly from a seed.
// One generator in shoal: raft/seeded-random.ts (the simulator's and the scheduler's tie-breaks).
import { SeededRandom } from "../raft/seeded-random.ts";

/** Returns a generator of numbers in [0, 1) that depends only on `seed`. */
export function seededRandom(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.next();
}

/** Returns an id generator that yields `prefix-1`, `prefix-2`, ... in order. */
export function sequentialIds(prefix = "id"): () => string {
  let next = 0;
  return () => {
    next += 1;
    return `${prefix}-${next}`;
  };
}

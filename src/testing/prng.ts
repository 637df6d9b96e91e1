// A tiny seeded pseudo-random generator (mulberry32) so that tests and simulations replay
// exactly from a seed. Not for secrets: it only stands in for the randomness port.

/** Returns a generator of numbers in [0, 1) that depends only on `seed`. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Returns an id generator that yields `prefix-1`, `prefix-2`, ... in order. */
export function sequentialIds(prefix = "id"): () => string {
  let next = 0;
  return () => {
    next += 1;
    return `${prefix}-${next}`;
  };
}

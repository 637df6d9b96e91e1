// A small seeded pseudo-random generator (sfc32, seeded through splitmix32), so elections and
// simulations are reproducible from one number. Not for secrets.
import { assert } from "../core/assert.ts";
import type { RandomSource } from "./types.ts";

export class SeededRandom implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), "seed must be a safe integer");
    let state = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
    const nextSeed = () => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = nextSeed();
    this.b = nextSeed();
    this.c = nextSeed();
    this.d = nextSeed();
    for (let round = 0; round < 12; round++) this.nextUint32();
  }

  nextUint32(): number {
    const result = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + result) >>> 0;
    return result;
  }

  next(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** An integer in [0, boundExclusive). */
  nextInt(boundExclusive: number): number {
    assert(boundExclusive > 0 && Number.isSafeInteger(boundExclusive));
    return Math.floor(this.next() * boundExclusive);
  }

  /** An integer in [low, high], both inclusive. */
  between(low: number, high: number): number {
    assert(low <= high);
    return low + this.nextInt(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, "pick from an empty list");
    return items[this.nextInt(items.length)] as T;
  }

  /** A new independent generator, so one stream's use does not shift another's. */
  fork(): SeededRandom {
    return new SeededRandom(this.nextUint32() * 2 ** 21 + (this.nextUint32() >>> 11));
  }
}

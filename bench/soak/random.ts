import { randomBytes } from 'node:crypto';

/** A seeded generator (mulberry32), so that a soak's mix of scenarios can be run again. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/**
 * Random bytes made once: every payload is a slice of it at a random offset, so a transfer's
 * bytes are unpredictable to the relay but cost nothing to produce. A slice is named by its
 * offset and length, so either end can rebuild what the other should have.
 */
export const POOL_BYTES = 8 * 1024 * 1024;
export const pool: Buffer = randomBytes(POOL_BYTES);

export interface Slice {
  readonly offset: number;
  readonly length: number;
}

export function bytesOf(slice: Slice): Buffer {
  if (slice.offset < 0 || slice.length < 0 || slice.offset + slice.length > POOL_BYTES) {
    throw new Error(`slice ${slice.offset}+${slice.length} is outside the pool`);
  }
  return pool.subarray(slice.offset, slice.offset + slice.length);
}

export function randomSlice(rng: Rng, length: number): Slice {
  return { offset: rng.int(0, POOL_BYTES - length), length };
}

/** Transfer sizes: mostly small, some medium, a few of a megabyte. */
export function transferSize(rng: Rng): number {
  const roll = rng.next();
  if (roll < 0.1) return rng.int(0, 64);
  if (roll < 0.7) return rng.int(65, 16 * 1024);
  if (roll < 0.95) return rng.int(16 * 1024 + 1, 256 * 1024);
  return rng.int(256 * 1024 + 1, 1024 * 1024);
}

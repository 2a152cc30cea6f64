import { randomBytes } from 'node:crypto';

/**
 * A set of domain names, each an exact name (itself only) or a suffix (itself and every name
 * under it), sized for lists of millions. Names are kept as ASCII bytes in one buffer and found
 * through an open-addressing hash table: an entry costs some 40 bytes, the garbage collector has
 * no object to trace per entry, and a lookup allocates nothing. The target's hash is built once,
 * from its last character to its first, and each dot it passes marks a parent domain, looked up
 * with the hash built so far.
 *
 * A lookup's cost is its cache misses, so what a probe reads sits together: a slot holds the
 * name's full hash beside where its bytes are, and those bytes follow their length and kind. A
 * filter of a byte a name (two bits set for each), small enough to stay in cache, turns most
 * misses away before they reach the slots.
 *
 * Classes rather than closures: optimised code then depends on the tables' shape, not on each
 * table's own functions, so a reload does not throw it away.
 */

export const EXACT = 1;
export const SUFFIX = 2;
export type EntryKind = typeof EXACT | typeof SUFFIX;

const FNV_PRIME = 0x01000193;
// FNV's offset basis, seeded per process: a list cannot be crafted to pile its names into one
// run of slots and make building it quadratic.
const FNV_OFFSET = 0x811c9dc5 ^ randomBytes(4).readInt32LE(0);
const DOT = 0x2e;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
/** Bytes copied, or Int32Array elements first written, in one step of a build. */
const COPY_STEP = 1 << 22;
const TOUCH_STEP = 1 << 18;

/** One character into an FNV-1a hash; names are hashed from their end. */
function step(hash: number, char: number): number {
  return Math.imul(hash ^ char, FNV_PRIME);
}

/** FNV's low bits are weak and the slots are picked by them: murmur3's finaliser spreads them. */
function mix(hash: number): number {
  let h = hash ^ (hash >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The filter word of a mixed hash, from a second multiply so that it does not follow the slot. */
function filterWord(mixed: number, filterMask: number): number {
  return (Math.imul(mixed, 0x9e3779b1) >>> 8) & filterMask;
}

/** Two bits of a filter word, from the mixed hash's top bits. */
function filterBits(mixed: number): number {
  return (1 << (mixed >>> 27)) | (1 << ((mixed >>> 22) & 31));
}

interface Storage {
  /** Each entry: its length, its kinds, then its bytes. */
  readonly chars: Uint8Array;
  /** Pairs: the name's hash, and 1 + where its entry starts in `chars` (0: an empty slot). */
  readonly slots: Int32Array;
  readonly filter: Int32Array;
  readonly count: number;
}

export class DomainTable {
  readonly #chars: Uint8Array;
  readonly #slots: Int32Array;
  readonly #slotMask: number;
  readonly #pairMask: number;
  readonly #filter: Int32Array;
  readonly #filterMask: number;
  /** Distinct names; a name listed as both exact and suffix counts once. */
  readonly size: number;

  constructor(storage: Storage) {
    this.#chars = storage.chars;
    this.#slots = storage.slots;
    this.#pairMask = storage.slots.length - 1;
    this.#slotMask = storage.slots.length / 2 - 1;
    this.#filter = storage.filter;
    this.#filterMask = storage.filter.length - 1;
    this.size = storage.count;
  }

  /** `name` is lower-case without a trailing dot, as targets are normalised. */
  matches(name: string): boolean {
    const end = name.length;
    let hash = FNV_OFFSET;
    for (let i = end - 1; i >= 0; i--) {
      const char = name.charCodeAt(i);
      if (char === DOT) {
        const parent = this.#find(hash, name, i + 1, end);
        if (parent >= 0 && ((this.#chars[parent + 1] ?? 0) & SUFFIX) !== 0) return true;
      }
      hash = step(hash, char);
    }
    return this.#find(hash, name, 0, end) >= 0;
  }

  /** Where the entry equal to `text[start, end)` under `hash` starts in `chars`, or -1. */
  #find(hash: number, text: string, start: number, end: number): number {
    const mixed = mix(hash);
    const bits = filterBits(mixed);
    if (((this.#filter[filterWord(mixed, this.#filterMask)] ?? 0) & bits) !== bits) return -1;
    const chars = this.#chars;
    const slots = this.#slots;
    const length = end - start;
    for (let slot = 2 * (mixed & this.#slotMask); ; slot = (slot + 2) & this.#pairMask) {
      const at = (slots[slot + 1] ?? 0) - 1;
      if (at < 0) return -1;
      if (slots[slot] !== hash || chars[at] !== length) continue;
      const offset = at + 2 - start;
      let i = start;
      while (i < end && text.charCodeAt(i) === chars[offset + i]) i++;
      if (i === end) return at;
    }
  }
}

/** Fills a table whose slots stay at most half full, for `maxEntries` names of `maxChars`. */
export class DomainTableBuilder {
  readonly #chars: Uint8Array;
  readonly #slots: Int32Array;
  readonly #slotMask: number;
  readonly #pairMask: number;
  readonly #filter: Int32Array;
  readonly #filterMask: number;
  #count = 0;
  #used = 0;

  constructor(maxEntries: number, maxChars: number) {
    this.#chars = new Uint8Array(maxChars + 2 * maxEntries);
    let slotCount = 2;
    while (slotCount < maxEntries * 2) slotCount *= 2;
    this.#slots = new Int32Array(2 * slotCount);
    this.#slotMask = slotCount - 1;
    this.#pairMask = 2 * slotCount - 1;
    // Eight bits a name.
    let filterCount = 1;
    while (filterCount * 4 < maxEntries) filterCount *= 2;
    this.#filter = new Int32Array(filterCount);
    this.#filterMask = filterCount - 1;
  }

  /**
   * Touches the table's memory in steps. The first write to a page costs a fault, and names
   * land at random: the first thousand would fault a thousand pages in one go.
   */
  *prepare(): Generator<void, void> {
    for (const array of [this.#slots, this.#filter]) {
      for (let at = 0; at < array.length; at += TOUCH_STEP) {
        array.fill(0, at, at + TOUCH_STEP);
        yield;
      }
    }
  }

  /**
   * Adds the name in `source[start, end)`, lower-casing it; the caller has checked it is a
   * domain name of at most 255 characters.
   */
  add(source: Uint8Array, start: number, end: number, kind: EntryKind): void {
    const chars = this.#chars;
    const used = this.#used;
    const length = end - start;
    let hash = FNV_OFFSET;
    for (let i = length - 1; i >= 0; i--) {
      let char = source[start + i] ?? 0;
      if (char >= UPPER_A && char <= UPPER_Z) char += 0x20;
      chars[used + 2 + i] = char;
      hash = step(hash, char);
    }
    const mixed = mix(hash);
    const slots = this.#slots;
    let slot = 2 * (mixed & this.#slotMask);
    for (; ; slot = (slot + 2) & this.#pairMask) {
      const at = (slots[slot + 1] ?? 0) - 1;
      if (at < 0) break;
      if (slots[slot] !== hash || chars[at] !== length) continue;
      let i = 0;
      while (i < length && chars[at + 2 + i] === chars[used + 2 + i]) i++;
      if (i === length) {
        // Listed twice (or as both kinds): one entry, both meanings.
        chars[at + 1] = (chars[at + 1] ?? 0) | kind;
        return;
      }
    }
    chars[used] = length;
    chars[used + 1] = kind;
    slots[slot] = hash;
    slots[slot + 1] = used + 1;
    const word = filterWord(mixed, this.#filterMask);
    this.#filter[word] = (this.#filter[word] ?? 0) | filterBits(mixed);
    this.#used = used + 2 + length;
    this.#count++;
  }

  /**
   * Gives back the room no entry took (it was reserved for every line) in steps, then returns
   * the table; the builder is not to be used after.
   */
  *finish(): Generator<void, DomainTable> {
    const used = this.#used;
    const compact = new Uint8Array(used);
    for (let at = 0; at < used; at += COPY_STEP) {
      compact.set(this.#chars.subarray(at, Math.min(at + COPY_STEP, used)), at);
      yield;
    }
    return new DomainTable({
      chars: compact,
      slots: this.#slots,
      filter: this.#filter,
      count: this.#count,
    });
  }
}

/** A table of a few names given in the configuration (`domain_suffix`). */
export function domainTableOf(names: readonly string[], kind: EntryKind): DomainTable {
  const bytes = Buffer.from(names.join('\n'), 'latin1');
  const builder = new DomainTableBuilder(names.length, bytes.length);
  let start = 0;
  for (const name of names) {
    builder.add(bytes, start, start + name.length, kind);
    start += name.length + 1;
  }
  const finish = builder.finish();
  for (;;) {
    const next = finish.next();
    if (next.done) return next.value;
  }
}

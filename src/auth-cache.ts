import { createHmac, randomBytes } from 'node:crypto';

/**
 * Recent successful password checks, so a client that opens connection after connection does
 * not pay a scrypt each time. An entry is an HMAC of user and password under a key made for
 * this cache: the password itself is never kept, and the key never leaves the process.
 */
export interface VerifiedCache {
  /** The entry key of a user and password. */
  keyOf(username: string, password: string): string;
  /** True when `key` was added less than the lifetime ago. */
  has(key: string): boolean;
  add(key: string): void;
}

export interface VerifiedCacheOptions {
  readonly lifetimeMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

export function createVerifiedCache(options: VerifiedCacheOptions): VerifiedCache {
  const secret = randomBytes(32);
  /** Key → when it was added; a Map keeps insertion order, so the oldest comes first. */
  const added = new Map<string, number>();
  return {
    keyOf(username, password) {
      // The user's length first, so no user and password pair reads as another.
      return createHmac('sha256', secret)
        .update(`${Buffer.byteLength(username)}:${username}`)
        .update(password)
        .digest('base64');
    },
    has(key) {
      const at = added.get(key);
      if (at === undefined) return false;
      if (options.now() - at < options.lifetimeMs) return true;
      added.delete(key);
      return false;
    },
    add(key) {
      added.delete(key);
      added.set(key, options.now());
      while (added.size > options.maxEntries) {
        const oldest = added.keys().next().value;
        if (oldest === undefined) break;
        added.delete(oldest);
      }
    },
  };
}

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createVerifiedCache } from './auth-cache.js';
import { createConcurrencyLimit, type ConcurrencyLimit } from './concurrency.js';
import type { UserConfig } from './config/schema.js';
import { decoyHash, parseHash, scryptKey, type ScryptParams } from './password-hash.js';

export { hashPassword } from './password-hash.js';

/** Checks a username and password. */
export interface Authenticator {
  verify(username: string, password: string): Promise<boolean>;
}

/** A successful scrypt check is trusted again for this long, for this many user/password pairs. */
const VERIFIED_LIFETIME_MS = 60_000;
const VERIFIED_MAX_ENTRIES = 1024;

/**
 * scrypt runs on libuv's thread pool (4 threads), which DNS lookups and file reads share: at
 * most 2 derivations run at once, so a flood of logins cannot starve name resolution. 64 more
 * wait (about 1.5 s of work at ~40 ms each); past that a check fails at once.
 */
const SCRYPT_CONCURRENCY = 2;
const SCRYPT_MAX_QUEUED = 64;
const scryptLimit = createConcurrencyLimit(SCRYPT_CONCURRENCY, SCRYPT_MAX_QUEUED);

export interface AuthOptions {
  /** The scrypt derivation (tests count calls). */
  readonly derive?: (password: string, params: ScryptParams) => Promise<Buffer>;
  /** Where derivations queue; default: one limit for the whole process. */
  readonly limit?: ConcurrencyLimit;
  readonly now?: () => number;
}

type Credential = { kind: 'plain'; digest: Buffer } | { kind: 'scrypt'; hash: ScryptParams };

/** Plain passwords are compared as SHA-256 digests so the comparison is constant-time and length-blind. */
const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Every check of a user costs the same work whether the user exists or not: an unknown user is
 * checked against a decoy with the configured hashes' parameters (an scrypt when any user has
 * a password_hash), and fails.
 */
export function createAuthenticator(
  users: readonly UserConfig[],
  options: AuthOptions = {},
): Authenticator {
  const derive = options.derive ?? scryptKey;
  const limit = options.limit ?? scryptLimit;
  const credentials = new Map<string, Credential>();
  for (const user of users) {
    if ('password' in user) {
      credentials.set(user.username, { kind: 'plain', digest: digest(user.password) });
    } else {
      const hash = parseHash(user.password_hash);
      if (!hash)
        throw new Error(`user "${user.username}": password_hash is not a valid scrypt hash`);
      credentials.set(user.username, { kind: 'scrypt', hash });
    }
  }
  const decoy = decoyFor([...credentials.values()]);
  const verified = createVerifiedCache({
    lifetimeMs: VERIFIED_LIFETIME_MS,
    maxEntries: VERIFIED_MAX_ENTRIES,
    now: options.now ?? Date.now,
  });
  /** Derivations under way, by cache key: simultaneous logins of one client share one. */
  const pending = new Map<string, Promise<boolean>>();

  const checkScrypt = (key: string, password: string, hash: ScryptParams): Promise<boolean> => {
    const running = pending.get(key);
    if (running) return running;
    const started = limit.tryRun(() => derive(password, hash));
    if (!started) return Promise.resolve(false);
    const check = started
      .then(
        (derived) => timingSafeEqual(derived, hash.key),
        // scrypt fails only for want of memory: a check that cannot be made does not pass.
        () => false,
      )
      .finally(() => pending.delete(key));
    pending.set(key, check);
    return check;
  };

  return {
    async verify(username, password) {
      const known = credentials.get(username);
      const credential = known ?? decoy;
      if (credential.kind === 'plain') {
        return timingSafeEqual(digest(password), credential.digest) && known !== undefined;
      }
      const key = verified.keyOf(username, password);
      if (known && verified.has(key)) return true;
      const ok = (await checkScrypt(key, password, credential.hash)) && known !== undefined;
      if (ok) verified.add(key);
      return ok;
    },
  };
}

function decoyFor(credentials: readonly Credential[]): Credential {
  for (const credential of credentials) {
    if (credential.kind === 'scrypt') return { kind: 'scrypt', hash: decoyHash(credential.hash) };
  }
  return { kind: 'plain', digest: digest(randomBytes(16).toString('hex')) };
}

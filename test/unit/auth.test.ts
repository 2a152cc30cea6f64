import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAuthenticator, hashPassword, type AuthOptions } from '../../src/auth.js';
import { createVerifiedCache } from '../../src/auth-cache.js';
import { createConcurrencyLimit } from '../../src/concurrency.js';
import { parseHash, scryptKey, type ScryptParams } from '../../src/password-hash.js';

/**
 * Password checks: an unknown user costs what a known one does, a recent success is
 * remembered (by a keyed hash, never the password), and scrypt work is capped process-wide.
 */

const ALICE_PW = 'alice-secret';
const aliceHash = await hashPassword(ALICE_PW);
const bobHash = await hashPassword('bob-secret');

interface Counted {
  readonly options: AuthOptions;
  /** The scrypt derivations asked for, with the parameters each used. */
  readonly calls: ScryptParams[];
  now: number;
}

function counted(extra: Partial<AuthOptions> = {}): Counted {
  const state: Counted = {
    calls: [],
    now: 1_000_000,
    options: {
      derive: (password, params) => {
        state.calls.push(params);
        return scryptKey(password, params);
      },
      now: () => state.now,
      ...extra,
    },
  };
  return state;
}

const users = [
  { username: 'alice', password_hash: aliceHash },
  { username: 'bob', password_hash: bobHash },
];

test('an unknown user costs one scrypt with the parameters of the configured hashes', async () => {
  const c = counted();
  const auth = createAuthenticator(users, c.options);
  assert.equal(await auth.verify('alice', 'wrong'), false);
  assert.equal(await auth.verify('mallory', 'wrong'), false);
  assert.equal(c.calls.length, 2, 'known and unknown user: one scrypt each');
  const configured = parseHash(aliceHash);
  assert.ok(configured);
  for (const params of c.calls) {
    assert.deepEqual(
      { N: params.N, r: params.r, p: params.p, keylen: params.key.length },
      { N: configured.N, r: configured.r, p: configured.p, keylen: configured.key.length },
    );
  }
});

test('a success is remembered for a bounded time, and only for that password', async () => {
  const c = counted();
  const auth = createAuthenticator(users, c.options);
  assert.equal(await auth.verify('alice', ALICE_PW), true);
  assert.equal(c.calls.length, 1);
  assert.equal(await auth.verify('alice', ALICE_PW), true);
  assert.equal(c.calls.length, 1, 'a cache hit does not call scrypt');
  assert.equal(await auth.verify('alice', `${ALICE_PW}x`), false);
  assert.equal(c.calls.length, 2, 'another password is checked again');
  assert.equal(await auth.verify('bob', ALICE_PW), false, "alice's password is not bob's");
  c.now += 60_000;
  assert.equal(await auth.verify('alice', ALICE_PW), true);
  assert.equal(c.calls.length, 4, 'an expired entry is checked again');
});

test('a changed password_hash is not answered from the old one', async () => {
  const c = counted();
  assert.equal(await createAuthenticator(users, c.options).verify('alice', ALICE_PW), true);
  const changed = [{ username: 'alice', password_hash: await hashPassword('new-secret') }];
  const auth = createAuthenticator(changed, c.options);
  assert.equal(await auth.verify('alice', ALICE_PW), false);
  assert.equal(await auth.verify('alice', 'new-secret'), true);
});

test('the cache is keyed on an HMAC under a key of its own, never on the password', () => {
  const options = { lifetimeMs: 60_000, maxEntries: 2, now: () => 0 };
  const one = createVerifiedCache(options);
  const other = createVerifiedCache(options);
  const key = one.keyOf('alice', ALICE_PW);
  assert.match(key, /^[A-Za-z0-9+/]{43}=$/, 'a SHA-256 digest');
  assert.notEqual(key, other.keyOf('alice', ALICE_PW), 'each cache has its own HMAC key');
  assert.notEqual(one.keyOf('a', 'bc'), one.keyOf('ab', 'c'));
  one.add(key);
  one.add(one.keyOf('bob', '1'));
  one.add(one.keyOf('bob', '2'));
  assert.equal(one.has(key), false, 'the oldest entry made room');
  assert.equal(one.has(one.keyOf('bob', '2')), true);
});

test('scrypt checks in flight are capped; past the queue a check fails at once', async () => {
  const limit = createConcurrencyLimit(2, 20);
  let inFlight = 0;
  let most = 0;
  let derived = 0;
  const auth = createAuthenticator(users, {
    limit,
    derive: async (password, params) => {
      derived++;
      inFlight++;
      most = Math.max(most, inFlight);
      try {
        return await scryptKey(password, params);
      } finally {
        inFlight--;
      }
    },
  });
  // Different passwords, so no two checks share one derivation.
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => auth.verify(i % 2 ? 'alice' : 'nobody', `wrong-${i}`)),
  );
  assert.equal(most, 2, 'never more than 2 derivations at once');
  assert.equal(derived, 22, '2 ran at once and 20 waited; the other 28 were refused at once');
  assert.ok(results.every((ok) => !ok));
  assert.equal(limit.running, 0);
  assert.equal(limit.queued, 0);
  // Once the burst is over, checks run again.
  assert.equal(await auth.verify('alice', ALICE_PW), true);
});

test('concurrent checks of one user and password share one derivation', async () => {
  const c = counted();
  const auth = createAuthenticator(users, c.options);
  const results = await Promise.all(
    Array.from({ length: 10 }, () => auth.verify('alice', ALICE_PW)),
  );
  assert.deepEqual(results, Array(10).fill(true));
  assert.equal(c.calls.length, 1);
});

test('plain passwords still work, and an unknown user then costs a digest only', async () => {
  const c = counted();
  const auth = createAuthenticator([{ username: 'carol', password: 'pw' }], c.options);
  assert.equal(await auth.verify('carol', 'pw'), true);
  assert.equal(await auth.verify('carol', 'px'), false);
  assert.equal(await auth.verify('dave', 'pw'), false);
  assert.equal(c.calls.length, 0);
});

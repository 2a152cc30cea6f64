import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProxyError } from '../../src/errors.js';
import type { RelayRate } from '../../src/relay.js';
import { createSessionLimiter, type Admission, type RatePlan } from '../../src/session-limits.js';

const plan = (over: Partial<RatePlan> = {}): RatePlan => ({
  inbounds: new Map(),
  users: new Map(),
  maxSessionsPerUser: undefined,
  ...over,
});

function admitted(result: Admission | ProxyError): Admission {
  assert.ok(!(result instanceof ProxyError), 'refused');
  return result;
}

function limited(result: Admission | ProxyError): RelayRate {
  const { rate } = admitted(result);
  assert.ok(rate, 'no rate');
  return rate;
}

test('past max_sessions_per_user a session is refused with USER_LIMIT; a release makes room', () => {
  const limiter = createSessionLimiter();
  const capped = plan({ maxSessionsPerUser: 2 });
  const first = admitted(limiter.admit('a', 'alice', capped));
  // Counted by name, over inbounds.
  admitted(limiter.admit('b', 'alice', capped));
  const third = limiter.admit('a', 'alice', capped);
  assert.ok(third instanceof ProxyError);
  assert.equal(third.code, 'USER_LIMIT');
  // Another user and anonymous sessions are not affected.
  admitted(limiter.admit('a', 'bob', capped));
  admitted(limiter.admit('a', undefined, capped));
  first.release();
  first.release();
  assert.equal(limiter.sessionsOf('alice'), 1);
  admitted(limiter.admit('a', 'alice', capped));
  assert.ok(limiter.admit('a', 'alice', capped) instanceof ProxyError);
});

test('no rate, no user: no buckets, and nothing is counted', () => {
  const limiter = createSessionLimiter();
  const session = admitted(limiter.admit('a', undefined, plan()));
  assert.equal(session.rate, undefined);
  assert.equal(admitted(limiter.admit('a', 'alice', plan())).rate, undefined);
});

test("a session is charged to its inbound's and its user's buckets, each shared by name", () => {
  const limiter = createSessionLimiter(() => 0);
  const rates = plan({
    inbounds: new Map([['a', { down: 1000 }]]),
    users: new Map([['alice', { up: 2000, down: 5000 }]]),
  });
  const one = limited(limiter.admit('a', 'alice', rates));
  const two = limited(limiter.admit('a', 'alice', rates));
  assert.equal(one.up.length, 1);
  assert.equal(one.down.length, 2);
  // The same inbound bucket: what one takes, the other waits for.
  assert.equal(one.down[0]?.take(1000), 0);
  assert.equal(two.down[0]?.take(1000), 1000);
  // A session of another inbound has only the user's bucket down, shared with the others.
  const other = limited(limiter.admit('b', 'alice', rates));
  assert.equal(other.down.length, 1);
  assert.equal(other.down[0], one.down[1]);
});

test('a reload moves the buckets in use to the new rates at once; an unused bucket is dropped', () => {
  const limiter = createSessionLimiter(() => 0);
  const before = plan({ inbounds: new Map([['a', { down: 1000 }]]) });
  const session = admitted(limiter.admit('a', undefined, before));
  const bucket = session.rate?.down[0];
  assert.equal(bucket?.rate, 1000);
  limiter.retune(plan({ inbounds: new Map([['a', { down: 4000 }]]) }));
  assert.equal(bucket.rate, 4000);
  limiter.retune(plan());
  assert.equal(bucket.rate, Infinity);
  session.release();
  // Released: a new session starts a fresh bucket at the plan's rate.
  const next = admitted(limiter.admit('a', undefined, before));
  assert.notEqual(next.rate?.down[0], bucket);
  assert.equal(next.rate?.down[0]?.rate, 1000);
});

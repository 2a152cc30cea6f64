import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTokenBucket, takeFromAll } from '../../src/token-bucket.js';

/** A clock that moves only when told. */
function fakeClock() {
  let ms = 0;
  return {
    now: () => ms,
    advance(by: number) {
      ms += by;
    },
  };
}

test('a full bucket lets one second of the rate through at once (the burst)', () => {
  const clock = fakeClock();
  const bucket = createTokenBucket(1000, clock.now);
  assert.equal(bucket.take(600), 0);
  assert.equal(bucket.take(400), 0);
  // One byte more is a debt of one byte: 1 ms at 1000 B/s.
  assert.equal(bucket.take(1), 1);
});

test('a chunk larger than the bucket passes whole and the wait pays the debt back', () => {
  const clock = fakeClock();
  const bucket = createTokenBucket(1000, clock.now);
  // 1000 tokens, 3000 taken: 2000 owed, two seconds.
  assert.equal(bucket.take(3000), 2000);
  clock.advance(2000);
  assert.equal(bucket.take(0), 0);
  assert.equal(bucket.take(500), 500);
});

test('tokens refill at the rate and never beyond one second of it', () => {
  const clock = fakeClock();
  const bucket = createTokenBucket(1000, clock.now);
  assert.equal(bucket.take(1000), 0);
  clock.advance(250);
  assert.equal(bucket.take(250), 0);
  assert.equal(bucket.take(100), 100);
  clock.advance(60_000);
  assert.equal(bucket.take(1000), 0);
  assert.equal(bucket.take(1000), 1000);
});

test('takers sharing a bucket each wait for the debt as it stands after their own take', () => {
  const clock = fakeClock();
  const bucket = createTokenBucket(1000, clock.now);
  assert.equal(bucket.take(1000), 0);
  assert.equal(bucket.take(500), 500);
  assert.equal(bucket.take(500), 1000);
  // Together they got 2000 bytes in 1000 ms past the burst: the rate.
  clock.advance(1000);
  assert.equal(bucket.take(0), 0);
});

test('a new rate applies from now on; Infinity lifts the limit', () => {
  const clock = fakeClock();
  const bucket = createTokenBucket(1000, clock.now);
  assert.equal(bucket.take(2000), 1000);
  bucket.setRate(500);
  // 1000 owed at 500 B/s.
  assert.equal(bucket.take(0), 2000);
  bucket.setRate(Infinity);
  assert.equal(bucket.take(1_000_000), 0);
  bucket.setRate(100);
  // Back to a limit: a full bucket of the new size.
  assert.equal(bucket.take(100), 0);
  assert.equal(bucket.take(100), 1000);
});

test('several buckets: the longest wait of them all', () => {
  const clock = fakeClock();
  const fast = createTokenBucket(10_000, clock.now);
  const slow = createTokenBucket(1000, clock.now);
  assert.equal(takeFromAll([fast, slow], 3000), 2000);
  assert.equal(takeFromAll([], 3000), 0);
});

import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { pipeAtRate } from '../../src/throttled-pipe.js';
import { createTokenBucket } from '../../src/token-bucket.js';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function sink(highWaterMark = 16_384) {
  const received: Buffer[] = [];
  const callbacks: (() => void)[] = [];
  let hold = false;
  const dest = new Writable({
    highWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk);
      if (hold) callbacks.push(callback);
      else callback();
    },
  });
  return {
    dest,
    received,
    /** From now on writes complete only when released. */
    hold() {
      hold = true;
    },
    release() {
      hold = false;
      for (const callback of callbacks.splice(0)) callback();
    },
  };
}

test('the source is paused while the buckets are in debt and resumed when it is paid', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 0;
  const bucket = createTokenBucket(1000, () => now);
  const source = new PassThrough();
  const { dest, received } = sink();
  pipeAtRate(source, dest, [bucket]);
  source.write(Buffer.alloc(1500, 1));
  source.write(Buffer.alloc(100, 2));
  source.end();
  await settle();
  // The first chunk passes whole; its 500 bytes of debt hold the second back for 500 ms.
  assert.deepEqual(
    received.map((c) => c.length),
    [1500],
  );
  now += 499;
  t.mock.timers.tick(499);
  await settle();
  assert.equal(received.length, 1);
  now += 1;
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(
    received.map((c) => c.length),
    [1500, 100],
  );
  assert.ok(dest.writableFinished, "the source's end ends the destination");
});

test('a destination that is full pauses the source until it drains, as pipe does', async () => {
  const bucket = createTokenBucket(1_000_000);
  const source = new PassThrough();
  const target = sink(1);
  target.hold();
  pipeAtRate(source, target.dest, [bucket]);
  source.write(Buffer.alloc(10, 1));
  source.write(Buffer.alloc(10, 2));
  await settle();
  assert.equal(target.received.length, 1);
  assert.equal(source.isPaused(), true);
  target.release();
  await settle();
  target.release();
  await settle();
  assert.equal(target.received.length, 2);
});

test('once the destination closes nothing more is read, even when the wait is over', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const bucket = createTokenBucket(1000, () => 0);
  const source = new PassThrough();
  const { dest, received } = sink();
  pipeAtRate(source, dest, [bucket]);
  source.write(Buffer.alloc(5000));
  await settle();
  dest.destroy();
  await settle();
  source.write(Buffer.alloc(10));
  t.mock.timers.tick(10_000);
  await settle();
  assert.equal(received.length, 1);
  assert.equal(source.isPaused(), true);
});

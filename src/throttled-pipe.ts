import { PassThrough, type Readable, type Writable } from 'node:stream';
import { takeFromAll, type TokenBucket } from './token-bucket.js';

/** Stops moving bytes (without ending `dest`) and forgets both streams. */
export type Unpipe = () => void;

/**
 * `source.pipe(dest)` that keeps to the rate of every bucket at once: each chunk read is
 * written at once and charged to the buckets; while they are in debt the source is paused (no
 * more is read, so the sender is held back by TCP), and resumed by a timer when the debt is
 * paid. Nothing is dropped and at most one chunk is held beyond what `pipe` would hold.
 * Like `pipe`, the source's end ends `dest`, and nothing moves once either side has closed.
 * Without buckets it is `pipe` itself.
 */
export function pipeAtRate(
  source: Readable,
  dest: Writable,
  buckets: readonly TokenBucket[] | undefined,
): Unpipe {
  if (buckets === undefined || buckets.length === 0) {
    source.pipe(dest);
    return () => source.unpipe(dest);
  }
  let timer: NodeJS.Timeout | undefined;
  let draining = false;
  const resume = (): void => {
    if (timer === undefined && !draining) source.resume();
  };
  const onRefilled = (): void => {
    timer = undefined;
    resume();
  };
  const onDrain = (): void => {
    draining = false;
    resume();
  };
  const onData = (chunk: Buffer): void => {
    const wait = takeFromAll(buckets, chunk.length);
    if (!dest.write(chunk)) {
      draining = true;
      source.pause();
      dest.once('drain', onDrain);
    }
    if (wait > 0 && timer === undefined) {
      source.pause();
      timer = setTimeout(onRefilled, wait);
    }
  };
  const onEnd = (): void => {
    dest.end();
  };
  const unpipe = (): void => {
    clearTimeout(timer);
    timer = undefined;
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('close', unpipe);
    dest.off('drain', onDrain);
    dest.off('close', unpipe);
    // As unpipe does: a flowing source with no reader left would lose what it reads.
    source.pause();
  };
  source.on('data', onData);
  source.once('end', onEnd);
  source.once('close', unpipe);
  dest.once('close', unpipe);
  source.resume();
  return unpipe;
}

/**
 * `source` as a stream that yields its bytes at the rate of `buckets`, for a consumer that
 * pipes it itself (an upload handed to an outbound); `source` itself when there are none. As
 * with `stream.pipeline`, a consumer that gives up before the end takes `source` with it.
 */
export function readableAtRate(
  source: Readable,
  buckets: readonly TokenBucket[] | undefined,
): Readable {
  if (buckets === undefined || buckets.length === 0) return source;
  const metered = new PassThrough();
  pipeAtRate(source, metered, buckets);
  source.once('close', () => {
    if (!source.readableEnded) metered.destroy(new Error('closed before the end'));
  });
  metered.once('close', () => {
    if (!source.readableEnded) source.destroy();
  });
  return metered;
}

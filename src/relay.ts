import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError, toProxyError } from './errors.js';
import { pipeAtRate } from './throttled-pipe.js';
import type { TokenBucket } from './token-bucket.js';

export interface RelayResult {
  /** Bytes from the client to the target, counted from the start of the relay. */
  readonly up: number;
  readonly down: number;
  /** Why the relay ended early; undefined when both directions ended with a FIN. */
  readonly error: ProxyError | undefined;
}

type TimedStream = Duplex & { setTimeout?: Socket['setTimeout'] };

/** The buckets each direction is charged to (see throttled-pipe.ts); empty: not limited. */
export interface RelayRate {
  readonly up: readonly TokenBucket[];
  readonly down: readonly TokenBucket[];
}

/**
 * Joins two connected streams until both directions have ended. A FIN from one side is passed
 * on as a FIN (`pipe` ends its destination) while the other direction keeps flowing; `pipe`
 * gives backpressure; an error or reset on either side, or `idleMs` with no bytes either way,
 * tears both down. Both streams are destroyed when `done` is called, once. A callback rather than
 * a promise: a live tunnel then holds no promise, reaction or async frame of its callers.
 *
 * Plain `pipe` rather than `stream.pipeline`: pipeline allocates an AbortController and an
 * AbortError per call, which is a measurable share of a short session's cost. Only a session
 * with a `rate` takes the metered pipe; the others keep `pipe` itself.
 */
export function relay(
  client: Socket,
  upstream: TimedStream,
  idleMs: number,
  rate: RelayRate | undefined,
  done: (result: RelayResult) => void,
): void {
  // Bytes read during the handshake but handed back (unshifted) belong to the relay.
  const readBefore = client.bytesRead - client.readableLength;
  const writtenBefore = client.bytesWritten;
  let failure: ProxyError | undefined;
  const fail = (err: ProxyError): void => {
    failure ??= err;
    client.destroy();
    upstream.destroy();
  };
  client.on('error', (err: Error) => {
    fail(toProxyError(err, new ProxyError('CLIENT_CLOSED', `client: ${describe(err)}`)));
  });
  upstream.on('error', (err: Error) => {
    fail(toProxyError(err, new ProxyError('UPSTREAM_FAILED', `upstream: ${describe(err)}`)));
  });
  if (idleMs > 0) {
    // A socket's timer counts its own reads and writes, and every relayed byte is read on one of
    // the two and written on the other, so a timer firing means no bytes either way.
    const onIdle = (): void => {
      fail(new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`));
    };
    // A plain 'timeout' listener: setTimeout(ms, callback) adds it with once(), a wrapper more
    // per socket for the tunnel's lifetime.
    client.setTimeout(idleMs);
    client.on('timeout', onIdle);
    if (upstream.setTimeout) {
      upstream.setTimeout(idleMs);
      upstream.on('timeout', onIdle);
    }
  }
  {
    let open = 2;
    const onClose = (stream: Duplex, other: Duplex) => (): void => {
      // Closed before both of its directions ended cleanly (destroyed, reset): nothing more can
      // flow between the two, so the other side goes too. A clean close leaves the other to
      // flush what it still holds and close by itself.
      if (!(stream.readableEnded && stream.writableFinished)) other.destroy();
      if (--open > 0) return;
      client.setTimeout(0);
      upstream.setTimeout?.(0);
      done({
        up: client.bytesRead - readBefore,
        down: client.bytesWritten - writtenBefore,
        error: failure,
      });
    };
    const watch = (stream: Duplex, other: Duplex): void => {
      const handler = onClose(stream, other);
      if (stream.closed) handler();
      // 'close' comes once: a plain listener spares the once() wrapper.
      else stream.on('close', handler);
    };
    watch(client, upstream);
    watch(upstream, client);
    if (rate === undefined) {
      client.pipe(upstream);
      upstream.pipe(client);
    } else {
      pipeAtRate(client, upstream, rate.up);
      pipeAtRate(upstream, client, rate.down);
    }
  }
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'EPIPE') return 'broken pipe';
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return 'closed before the end';
  return code ?? err.message;
}

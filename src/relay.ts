import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ProxyError } from './errors.js';

export interface RelayResult {
  /** Bytes from the client to the target, counted from the start of the relay. */
  readonly up: number;
  readonly down: number;
  /** Why the relay ended early; undefined when both directions ended with a FIN. */
  readonly error: ProxyError | undefined;
}

type TimedStream = Duplex & { setTimeout?: Socket['setTimeout'] };

/**
 * Joins two connected streams until both directions have ended. A FIN from one side is passed
 * on as a FIN while the other direction keeps flowing; `pipeline` gives backpressure; an error
 * or reset on either side, or `idleMs` with no bytes either way, tears both down. Both streams
 * are destroyed when this resolves.
 */
export async function relay(
  client: Socket,
  upstream: TimedStream,
  idleMs: number,
): Promise<RelayResult> {
  // Bytes read during the handshake but handed back (unshifted) belong to the relay.
  const readBefore = client.bytesRead - client.readableLength;
  const writtenBefore = client.bytesWritten;
  let failure: ProxyError | undefined;
  const fail = (err: ProxyError): void => {
    failure ??= err;
  };
  const onClientError = (err: Error): void => {
    fail(
      err instanceof ProxyError ? err : new ProxyError('CLIENT_CLOSED', `client: ${describe(err)}`),
    );
  };
  const onUpstreamError = (err: Error): void => {
    fail(
      err instanceof ProxyError
        ? err
        : new ProxyError('UPSTREAM_FAILED', `upstream: ${describe(err)}`),
    );
  };
  client.on('error', onClientError);
  upstream.on('error', onUpstreamError);
  // A socket's timer counts its own reads and writes, and every relayed byte is read on one of
  // the two and written on the other, so both timers firing means no bytes either way.
  const onIdle = (): void => {
    const err = new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`);
    fail(err);
    client.destroy();
    upstream.destroy();
  };
  // Handshake deadlines (ours, node:http's) are over: the idle timer is the only one now.
  client.removeAllListeners('timeout');
  if (idleMs > 0) {
    client.setTimeout(idleMs, onIdle);
    upstream.setTimeout?.(idleMs, onIdle);
  }
  await Promise.allSettled([pipeline(client, upstream), pipeline(upstream, client)]);
  client.setTimeout(0);
  upstream.setTimeout?.(0);
  client.destroy();
  upstream.destroy();
  return {
    up: client.bytesRead - readBefore,
    down: client.bytesWritten - writtenBefore,
    error: failure,
  };
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'EPIPE') return 'broken pipe';
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return 'closed before the end';
  return code ?? err.message;
}

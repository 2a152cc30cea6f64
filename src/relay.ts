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

/** Who is told, once, that both directions have ended (the session: its method, no closure). */
export interface RelayEnd {
  finish(result: RelayResult): void;
}

/** The buckets each direction is charged to (see throttled-pipe.ts); empty: not limited. */
export interface RelayRate {
  readonly up: readonly TokenBucket[];
  readonly down: readonly TokenBucket[];
}

/**
 * Joins two connected streams until both directions have ended. A FIN from one side is passed
 * on as a FIN while the other direction keeps flowing; a write the destination cannot take yet
 * pauses the source until it drains; an error or reset on either side, or `idleMs` with no bytes
 * either way, tears both down. Both streams are destroyed when `end.finish` is called, once. A
 * callback rather than a promise: a live tunnel then holds no promise, reaction or async frame
 * of its callers.
 *
 * Not `stream.pipeline` (an AbortController and an AbortError per call) nor `pipe` (nine
 * closures per direction for the tunnel's lifetime): the few lines `pipe` needs here are the
 * shared listeners below. A session with a `rate` takes the metered pipe (throttled-pipe.ts).
 */
export function relay(
  client: Socket,
  upstream: TimedStream,
  idleMs: number,
  rate: RelayRate | undefined,
  end: RelayEnd,
): void {
  const tunnel = new Tunnel(client, upstream, idleMs, end);
  (client as Joined)[TUNNEL] = tunnel;
  (upstream as Joined)[TUNNEL] = tunnel;
  client.on('error', onClientError);
  upstream.on('error', onUpstreamError);
  if (idleMs > 0) {
    // A socket's timer counts its own reads and writes, and every relayed byte is read on one of
    // the two and written on the other, so a timer firing means no bytes either way. A plain
    // 'timeout' listener: setTimeout(ms, callback) adds it with once(), a wrapper more per socket.
    client.setTimeout(idleMs);
    client.on('timeout', onIdle);
    if (upstream.setTimeout) {
      upstream.setTimeout(idleMs);
      upstream.on('timeout', onIdle);
    }
  }
  watchClose(client);
  watchClose(upstream);
  if (rate === undefined) {
    pump(client, upstream);
    pump(upstream, client);
  } else {
    pipeAtRate(client, upstream, rate.up);
    pipeAtRate(upstream, client, rate.down);
  }
}

/**
 * A tunnel's state, reached from its two streams. The listeners below are shared by every
 * tunnel (the stream they fire on is `this`): an idle tunnel, which may last hours, then holds
 * this one object rather than a closure per listener.
 */
const TUNNEL = Symbol('tunnel');
type Joined = Duplex & { [TUNNEL]?: Tunnel };

class Tunnel {
  readonly client: Socket;
  readonly upstream: TimedStream;
  readonly idleMs: number;
  private readonly end: RelayEnd;
  /** Bytes read during the handshake but handed back (unshifted) belong to the relay. */
  private readonly readBefore: number;
  private readonly writtenBefore: number;
  private failure: ProxyError | undefined;
  private open = 2;

  constructor(client: Socket, upstream: TimedStream, idleMs: number, end: RelayEnd) {
    this.client = client;
    this.upstream = upstream;
    this.idleMs = idleMs;
    this.end = end;
    this.readBefore = client.bytesRead - client.readableLength;
    this.writtenBefore = client.bytesWritten;
  }

  fail(err: ProxyError): void {
    this.failure ??= err;
    this.client.destroy();
    this.upstream.destroy();
  }

  /**
   * Closed before both of its directions ended cleanly (destroyed, reset): nothing more can flow
   * between the two, so the other side goes too. A clean close leaves the other to flush what it
   * still holds and close by itself.
   */
  closed(stream: Duplex): void {
    const { client, upstream } = this;
    if (!(stream.readableEnded && stream.writableFinished)) {
      (stream === client ? upstream : client).destroy();
    }
    if (--this.open > 0) return;
    client.setTimeout(0);
    upstream.setTimeout?.(0);
    this.end.finish({
      up: client.bytesRead - this.readBefore,
      down: client.bytesWritten - this.writtenBefore,
      error: this.failure,
    });
  }
}

function tunnelOf(stream: Joined): Tunnel {
  return stream[TUNNEL] as Tunnel;
}

function onClientError(this: Joined, err: Error): void {
  tunnelOf(this).fail(
    toProxyError(err, new ProxyError('CLIENT_CLOSED', `client: ${describe(err)}`)),
  );
}

function onUpstreamError(this: Joined, err: Error): void {
  tunnelOf(this).fail(
    toProxyError(err, new ProxyError('UPSTREAM_FAILED', `upstream: ${describe(err)}`)),
  );
}

function onIdle(this: Joined): void {
  const tunnel = tunnelOf(this);
  tunnel.fail(new ProxyError('IDLE_TIMEOUT', `no traffic for ${tunnel.idleMs}ms`));
}

function onClose(this: Joined): void {
  tunnelOf(this).closed(this);
}

/** Moves `source`'s bytes into `dest` as they come, its end included. */
function pump(source: Joined, dest: Joined): void {
  source.on('data', onData);
  source.on('end', onEnd);
  dest.on('drain', onDrain);
  // A destination still full from the handshake drains first ('data' listeners resume).
  if (dest.writableNeedDrain) source.pause();
  else source.resume();
}

function otherSide(stream: Joined): Duplex {
  const { client, upstream } = tunnelOf(stream);
  return stream === client ? upstream : client;
}

function onData(this: Joined, chunk: Buffer): void {
  // Paused until the other side has taken what it holds: TCP then holds the sender back.
  if (!otherSide(this).write(chunk)) this.pause();
}

function onDrain(this: Joined): void {
  otherSide(this).resume();
}

function onEnd(this: Joined): void {
  otherSide(this).end();
}

function watchClose(stream: Joined): void {
  if (stream.closed) tunnelOf(stream).closed(stream);
  // 'close' comes once: a plain listener spares the once() wrapper.
  else stream.on('close', onClose);
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset';
  if (code === 'EPIPE') return 'broken pipe';
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return 'closed before the end';
  return code ?? err.message;
}

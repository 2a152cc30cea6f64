// RFC 9112 §3.2 (request-target forms), §9.3 (persistence): one request and its response head on
// a stream, written and parsed by node:http, the bodies streamed with backpressure.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorCode, ProxyError, upstreamError } from '../errors.js';
import { formatTarget } from '../target.js';
import type { PlainRequest, PlainResponse } from './plain-request.js';

export interface Wire {
  /** The request-target: origin-form for the origin, absolute-form for a proxy. */
  readonly requestTarget: string;
  /** Sent to an upstream proxy only. */
  readonly authorization: string | undefined;
  /** How errors name the far end: `origin` or `upstream proxy "name"`. */
  readonly peer: string;
  /**
   * Takes the stream back after a complete exchange that left it reusable (node:http emitted
   * 'free'); without it the stream is closed after one exchange.
   */
  readonly keep: (() => void) | undefined;
}

export type Exchanged =
  | { readonly response: PlainResponse; readonly error?: undefined }
  | {
      readonly response?: undefined;
      readonly error: ProxyError;
      /**
       * The stream failed by itself before any answer (not the client leaving, not idle, not an
       * answer node:http could not parse): on a reused connection, the request may go again.
       */
      readonly stale: boolean;
    };

type Timed = Duplex & { setTimeout?: Socket['setTimeout'] };

/** Sends `request` on `stream` and resolves with the response head, or with why there is none. */
export async function exchange(
  stream: Duplex,
  request: PlainRequest,
  wire: Wire,
): Promise<Exchanged> {
  let up = 0;
  // node:http says a kept-alive exchange is complete, and detaches from the stream, by 'free'.
  let freed = false as boolean;
  const onFree = (): void => {
    freed = true;
  };
  // Between node:http letting go of the stream and its owner taking it back.
  const ignore = (): void => undefined;
  stream.on('free', onFree);
  stream.on('error', ignore);
  const watch = watchFailures(stream, request);
  const outgoing = httpRequest({
    method: request.method,
    path: wire.requestTarget,
    headers: fields(request, wire),
    createConnection: () => stream,
  });
  // With raw header pairs and no agent node:http resets this after reading our `Connection:
  // keep-alive`; set, it lets go of the stream ('free') after a response that allows it.
  if (wire.keep) outgoing.shouldKeepAlive = true;
  // Only the origin may say 100 (RFC 9110 §10.1.1), so a 407 or 403 never costs an upload.
  const onContinue = request.onContinue;
  if (onContinue) outgoing.once('continue', onContinue);
  const body = request.body;
  if (body === undefined) {
    outgoing.end();
  } else {
    body.on('data', (chunk: Buffer) => {
      up += chunk.length;
    });
    // Its failures surface as the response failing or the client leaving, handled there.
    pipeline(body, outgoing).catch(() => undefined);
  }
  let released = false;
  const release = (complete: boolean): void => {
    if (released) return;
    released = true;
    watch.stop();
    stream.off('free', onFree);
    stream.off('error', ignore);
    if (complete && freed && wire.keep) wire.keep();
    // Also ends an upload the origin did not wait for.
    else stream.destroy();
  };
  try {
    const message = await responseOf(outgoing);
    return {
      response: {
        message,
        peer: wire.peer,
        sent: () => up,
        failure: watch.failure,
        release,
      },
    };
  } catch (err) {
    release(false);
    const cut = watch.failure();
    if (cut) return { error: cut, stale: false };
    const code = errorCode(err);
    const garbled = code?.startsWith('HPE_') === true;
    return {
      error: upstreamError(err, formatTarget(request.target), false, wire.peer),
      stale: !garbled && !(err instanceof ProxyError),
    };
  }
}

function fields(request: PlainRequest, wire: Wire): string[] {
  const headers = [...request.headers];
  if (wire.authorization !== undefined) headers.push('Proxy-Authorization', wire.authorization);
  if (wire.keep) headers.push('Connection', 'keep-alive');
  return headers;
}

/**
 * Which side failed first decides the reported error, since the other side is torn down after
 * it: the client leaving (the request's signal), or no bytes either way for `idleMs`
 * (backpressure stalls the upstream too when the client stops reading).
 */
function watchFailures(stream: Duplex, request: PlainRequest) {
  let first: ProxyError | undefined;
  const { signal, idleMs } = request;
  const onAbort = (): void => {
    const reason: unknown = signal.reason;
    first ??=
      reason instanceof ProxyError
        ? reason
        : new ProxyError('CLIENT_CLOSED', 'client closed the connection');
    stream.destroy();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const timed = stream as Timed;
  const onIdle = (): void => {
    first ??= new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`);
    stream.destroy();
  };
  if (idleMs > 0) timed.setTimeout?.(idleMs, onIdle);
  return {
    failure: (): ProxyError | undefined => first,
    stop: (): void => {
      signal.removeEventListener('abort', onAbort);
      // The connection may serve another request: nothing of this one stays on it.
      timed.setTimeout?.(0);
      stream.off('timeout', onIdle);
    },
  };
}

function responseOf(outgoing: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    outgoing.once('response', resolve);
    outgoing.on('error', reject);
  });
}

/**
 * A response body read to its end, for a refusal that is not passed on (a proxy's 407): true
 * when it ended, which is also when node:http lets go of a kept-alive connection.
 */
export function drain(message: IncomingMessage): Promise<boolean> {
  return new Promise((resolve) => {
    if (message.readableEnded) {
      resolve(message.complete);
      return;
    }
    message.once('end', () => {
      resolve(true);
    });
    message.once('close', () => {
      resolve(message.readableEnded);
    });
    message.on('error', () => undefined);
    message.resume();
  });
}

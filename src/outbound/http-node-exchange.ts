// RFC 9110 §10.1.1 (Expect: 100-continue), RFC 9112 §3.2 (request-target forms): a request whose
// client waits for a 100 before it sends the body, written and parsed by node:http, which
// passes the origin's 100 on. undici does not send Expect on HTTP/1.1, and fails a request
// answered with a 100.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { errorCode, ProxyError, upstreamError } from '../errors.js';
import { formatTarget } from '../target.js';
import type { HttpConnection } from './http-connection.js';
import type { Exchanged, Wire } from './http-exchange.js';
import type { BodySink, PlainRequest } from './plain-request.js';

/**
 * Sends `request` on `conn`, which undici has not taken over, and resolves with the response
 * head, or with why there is none. The connection is kept (as a raw stream) when node:http says
 * the exchange left it reusable.
 */
export async function exchangeWithNodeHttp(
  conn: HttpConnection,
  request: PlainRequest,
  wire: Wire,
): Promise<Exchanged> {
  const { stream } = conn;
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
  const watch = watchFailures(conn, request);
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
    if (complete && freed && wire.keep) wire.keep(conn);
    // Also ends an upload the origin did not wait for.
    else stream.destroy();
  };
  try {
    const message = await responseOf(outgoing);
    return {
      response: {
        status: message.statusCode ?? 502,
        statusText: message.statusMessage ?? '',
        rawHeaders: message.rawHeaders,
        peer: wire.peer,
        sent: () => up,
        failure: watch.failure,
        deliver: (sink) => deliver(message, sink),
        resume: () => message.resume(),
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
  // node:http frames a body of unknown length only for some methods: say it.
  if (request.body !== undefined && !hasField(headers, 'content-length')) {
    headers.push('Transfer-Encoding', 'chunked');
  }
  return headers;
}

function hasField(raw: readonly string[], lower: string): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === lower) return true;
  return false;
}

/**
 * Which side failed first decides the reported error, since the other side is torn down after
 * it: the client leaving, or no bytes either way for `idleMs` (backpressure stalls the upstream
 * too when the client stops reading).
 */
function watchFailures(conn: HttpConnection, request: PlainRequest) {
  let first: ProxyError | undefined;
  const { client, idleMs } = request;
  const onGone = (reason: ProxyError): void => {
    first ??= reason;
    conn.close();
  };
  if (client.gone) onGone(client.gone);
  else client.onGone = onGone;
  const onIdle = (): void => {
    first ??= new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`);
    conn.close();
  };
  conn.watchIdle(idleMs, onIdle);
  return {
    failure: (): ProxyError | undefined => first,
    stop: (): void => {
      client.onGone = undefined;
      // The connection may serve another request: nothing of this one stays on it.
      conn.unwatchIdle();
    },
  };
}

function responseOf(outgoing: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    outgoing.once('response', resolve);
    outgoing.on('error', reject);
  });
}

/** The body into `sink`, paused while the sink asks for it. */
function deliver(message: IncomingMessage, sink: BodySink): Promise<void> {
  return new Promise((resolve, reject) => {
    if (message.readableEnded) {
      if (message.complete) resolve();
      else reject(new Error('response body broke off'));
      return;
    }
    message.on('data', (chunk: Buffer) => {
      if (!sink.write(chunk)) message.pause();
    });
    message.once('end', () => {
      resolve();
    });
    message.on('error', reject);
    message.once('close', () => {
      if (!message.readableEnded) reject(new Error('response body broke off'));
    });
  });
}

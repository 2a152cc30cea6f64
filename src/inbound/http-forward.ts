// RFC 9110 §7.6 (message forwarding): a forward proxy for plain http:// targets. The request is
// handed to the session's outbound, which owns how it travels (plain-request.ts); this side
// reads it from the client and writes the response back.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { httpStatus, ProxyError, toProxyError, upstreamError } from '../errors.js';
import type { PlainResponse } from '../outbound/plain-request.js';
import type { Session } from '../session.js';
import { formatTarget } from '../target.js';
import { pipeAtRate, readableAtRate } from '../throttled-pipe.js';
import type { TokenBucket } from '../token-bucket.js';
import { errorText } from './http-connect.js';
import { endToEndHeaders, forwardedRequestHeaders, rawHead } from './http-headers.js';
import type { AbsoluteTarget } from './http-target.js';

/** Forwards one request and its response, both bodies streamed with backpressure. */
export async function forward(
  session: Session,
  req: IncomingMessage,
  res: ServerResponse,
  at: AbsoluteTarget,
  viaEntry: string,
): Promise<void> {
  if (res.destroyed) {
    // The client left while it was being checked (a password hash takes a while).
    session.fail(new ProxyError('CLIENT_CLOSED', 'client closed before the request was sent'));
    return;
  }
  // RFC 9112 §6.3: a request with neither field has no body.
  const bodyless =
    (req.headers['content-length'] ?? '0') === '0' &&
    req.headers['transfer-encoding'] === undefined;
  if (bodyless) req.resume();
  const client = watchClient(req.socket, res);
  let response: PlainResponse;
  try {
    response = await session.request({
      method: req.method ?? 'GET',
      target: at.target,
      authority: at.authority,
      path: at.path,
      headers: forwardedRequestHeaders(req, at.authority, viaEntry),
      body: bodyless ? undefined : readableAtRate(req, session.rate?.up),
      // The client waits for a 100 before sending the body: only the origin may give it.
      onContinue: /^100-continue$/i.test(req.headers.expect ?? '')
        ? () => {
            res.writeContinue();
          }
        : undefined,
      signal: client.signal,
      idleMs: session.limits.idle_timeout,
    });
  } catch (err) {
    client.stop();
    const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
    replyError(res, req, error);
    session.finish({ up: 0, down: 0, error });
    return;
  }
  await relayResponse(session, res, response, at, viaEntry);
  client.stop();
}

/** Writes the response head and streams its body to the client, then ends the session. */
async function relayResponse(
  session: Session,
  res: ServerResponse,
  response: PlainResponse,
  at: AbsoluteTarget,
  viaEntry: string,
): Promise<void> {
  const { message } = response;
  // Byte counts are approximate on a kept-alive client connection: `up` is the request body,
  // `down` the response head as we write it plus the body (before chunked framing).
  let down = 0;
  let complete = false;
  try {
    const head = endToEndHeaders(message.rawHeaders, viaEntry);
    down += rawHead(message, head).length;
    res.writeHead(message.statusCode ?? 502, message.statusMessage, head);
    message.on('data', (chunk: Buffer) => {
      down += chunk.length;
    });
    await pipeBody(message, res, session.rate?.down);
    complete = true;
    session.finish({ up: response.sent(), down, error: undefined });
  } catch (err) {
    const error =
      response.failure() ?? upstreamError(err, formatTarget(at.target), true, response.peer);
    // A response under way cannot be repaired: only closing the connection tells the client
    // it is incomplete.
    res.destroy();
    session.finish({ up: response.sent(), down, error });
  } finally {
    // Also ends an upload the origin did not wait for; node:http then closes the client
    // connection, whose unread body could not be framed any more.
    response.release(complete);
  }
}

/**
 * Streams a response body to the client with backpressure, at the rate of `buckets` when the
 * session has any (throttled-pipe.ts); resolves when all of it was handed to the client's
 * socket, rejects when either side broke off first. (stream.pipeline would do the same with an
 * AbortController and an exception object per response, a measurable share of a kept-alive
 * request's cost.)
 */
function pipeBody(
  body: IncomingMessage,
  res: ServerResponse,
  buckets: readonly TokenBucket[] | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let unpipe = (): void => undefined;
    const cleanup = (): void => {
      body.off('error', onError);
      body.off('close', onBodyClose);
      res.off('finish', onFinish);
      res.off('close', onResClose);
      res.off('error', onError);
    };
    const onFinish = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      unpipe();
      reject(err);
    };
    const onBodyClose = (): void => {
      if (!body.readableEnded) onError(new Error('response body broke off'));
    };
    const onResClose = (): void => {
      if (!res.writableFinished) onError(new Error('client closed the connection'));
    };
    body.on('error', onError);
    body.once('close', onBodyClose);
    res.once('finish', onFinish);
    res.once('close', onResClose);
    res.on('error', onError);
    unpipe = pipeAtRate(body, res, buckets);
  });
}

/**
 * Aborts when the client leaves (or is closed: shutdown, admin) before its response is
 * complete, with the reason it was closed for when there is one; the outbound then closes the
 * upstream connection at once.
 */
function watchClient(client: Socket, res: ServerResponse) {
  const gone = new AbortController();
  let reason: ProxyError | undefined;
  const onClientError = (err: Error): void => {
    if (err instanceof ProxyError) reason ??= err;
  };
  const onClose = (): void => {
    if (res.writableFinished) return;
    gone.abort(reason ?? new ProxyError('CLIENT_CLOSED', 'client closed the connection'));
  };
  client.on('error', onClientError);
  res.once('close', onClose);
  return {
    signal: gone.signal,
    stop: (): void => {
      client.off('error', onClientError);
      res.off('close', onClose);
    },
  };
}

/** A plain-text error answer on a node:http response; the connection stays open if it can. */
export function replyError(
  res: ServerResponse,
  req: IncomingMessage,
  error: ProxyError,
  extraHeaders: readonly string[] = [],
): void {
  const body = `${errorText(error)}\n`;
  const headers = [
    'Content-Type',
    'text/plain; charset=utf-8',
    'Content-Length',
    `${Buffer.byteLength(body)}`,
  ];
  // A request body still arriving would have to be read to its end to keep the connection.
  if (!req.complete) headers.push('Connection', 'close');
  res.writeHead(httpStatus(error), [...headers, ...extraHeaders]);
  res.end(body);
}

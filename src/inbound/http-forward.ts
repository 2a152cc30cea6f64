// RFC 9110 §7.6 (message forwarding), §9.2.2 (idempotent methods), RFC 9112 §3.2.2 (absolute-form
// to an upstream proxy): a forward proxy for plain http:// and ws:// targets.
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Transform, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorCode, httpStatus, ProxyError, toProxyError } from '../errors.js';
import type { ChallengeAnswerer } from '../outbound/proxy-auth/answerer.js';
import { challengeFields } from '../outbound/proxy-auth/challenge.js';
import type { Connected } from '../outbound/types.js';
import type { Session } from '../session.js';
import { formatTarget } from '../target.js';
import { errorText } from './http-connect.js';
import { endToEndHeaders, forwardedRequestHeaders, rawHead } from './http-headers.js';
import type { AbsoluteTarget } from './http-target.js';

/**
 * RFC 9110 §9.2.2: the methods whose request can be sent twice with the effect of once. Only
 * these are sent again when a kept-alive connection fails, as Squid does.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Forwards one request and its response, both bodies streamed with backpressure. When the
 * outbound ends at an HTTP proxy (`httpProxy`), the request goes to the proxy in absolute-form
 * with the proxy's credentials. Either way the connection may be kept for the next request to
 * the same target, when the outbound pools it.
 */
export async function forward(
  session: Session,
  req: IncomingMessage,
  res: ServerResponse,
  at: AbsoluteTarget,
  viaEntry: string,
): Promise<void> {
  // RFC 9112 §6.3: a request with neither field has no body. An idempotent request without a
  // body has nothing to replay: it can be sent again when a kept-alive connection turns out to
  // have been closed in the meantime (RFC 9110 §9.2.2).
  const bodyless =
    (req.headers['content-length'] ?? '0') === '0' &&
    req.headers['transfer-encoding'] === undefined;
  const retriable = bodyless && IDEMPOTENT.has(req.method ?? '');
  if (res.destroyed) {
    // The client left while it was being checked (a password hash takes a while).
    session.fail(new ProxyError('CLIENT_CLOSED', 'client closed before the request was sent'));
    return;
  }
  const proxyAuth: ProxyAuthState = { answerer: undefined, authorization: undefined };
  for (;;) {
    let conn: Connected;
    try {
      conn = await session.connect('http');
    } catch (err) {
      const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
      replyError(res, req, error);
      session.fail(error);
      return;
    }
    const outcome = await exchange(session, req, res, at, conn, {
      bodyless,
      retriable,
      viaEntry,
      proxyAuth,
    });
    if (outcome === 'done') return;
  }
}

interface ExchangeOptions {
  /** The request has no body: nothing to stream up. */
  readonly bodyless: boolean;
  /** It may be sent again on a new connection if a reused one fails before any answer. */
  readonly retriable: boolean;
  readonly viaEntry: string;
  /** The answers to an upstream proxy's 407s, kept across the attempts of one request. */
  readonly proxyAuth: ProxyAuthState;
}

interface ProxyAuthState {
  answerer: ChallengeAnswerer | undefined;
  /** The Proxy-Authorization answering the last 407, sent instead of the pre-emptive one. */
  authorization: string | undefined;
}

/** One request and response on `conn`; 'retry' when a reused connection failed before answering. */
async function exchange(
  session: Session,
  req: IncomingMessage,
  res: ServerResponse,
  at: AbsoluteTarget,
  conn: Connected,
  { bodyless, retriable, viaEntry, proxyAuth }: ExchangeOptions,
): Promise<'done' | 'retry'> {
  const { stream: upstream, httpProxy: proxy } = conn;
  // Kept-alive streams come from an upstream proxy's pool or from the direct outbound's.
  const keep = proxy?.keep ?? conn.reuse?.keep;
  const reused = proxy?.reused ?? conn.reuse?.reused ?? false;
  // Byte counts are approximate on a kept-alive client connection: `up` is the request body,
  // `down` the response head as we write it plus the body (before chunked framing).
  let up = 0;
  let down = 0;
  let response: IncomingMessage | undefined;
  let reusable = false;
  // node:http says a kept-alive exchange is complete, and detaches from the socket, by 'free'.
  let freed = false as boolean;
  const onFree = (): void => {
    freed = true;
  };
  // Between node:http letting go of the socket and this function handing it back.
  const ignore = (): void => undefined;
  upstream.on('free', onFree);
  upstream.on('error', ignore);
  const watch = watchFailures(req.socket, res, upstream, session.limits.idle_timeout);
  const outgoing = request({
    method: req.method ?? 'GET',
    path: proxy ? `http://${at.authority}${at.path}` : at.path,
    headers: requestHeaders(
      req,
      at.authority,
      viaEntry,
      proxy && (proxyAuth.authorization ?? proxy.authorization),
      keep !== undefined,
    ),
    createConnection: () => upstream,
  });
  // With raw header pairs and no agent node:http resets this after reading our `Connection:
  // keep-alive`; set, it lets go of the socket ('free') after a response that allows it.
  if (keep) outgoing.shouldKeepAlive = true;
  // The client waits for a 100 before sending the body: only the origin may give it (RFC 9110
  // §10.1.1), so a 407 or 403 never costs the client an upload.
  if (/^100-continue$/i.test(req.headers.expect ?? '')) {
    outgoing.once('continue', () => res.writeContinue());
  }
  if (bodyless) {
    req.resume();
    outgoing.end();
  } else {
    // Its failures surface as the response failing or the client closing, and are handled there.
    pipeline(
      req,
      counter((n) => (up += n)),
      outgoing,
    ).catch(() => undefined);
  }
  try {
    response = await responseOf(outgoing);
    if (proxy && response.statusCode === 407) {
      // The proxy's challenge is for junction's credentials, not the client's: passed on, it
      // would make the client ask its user for a password that cannot help. A request without
      // a body is sent again with the answer (on a new connection: the old one still holds the
      // 407's body); one with a body has been consumed.
      response.resume();
      if (bodyless && proxy.challenged) {
        proxyAuth.answerer ??= proxy.challenged({
          method: req.method ?? 'GET',
          uri: `http://${at.authority}${at.path}`,
        });
        proxyAuth.authorization = proxyAuth.answerer.answer(challengeFields(response.rawHeaders));
        return 'retry';
      }
      throw new ProxyError(
        'UPSTREAM_AUTH_FAILED',
        `upstream proxy ${proxy.label} authentication failed`,
      );
    }
    const head = endToEndHeaders(response.rawHeaders, viaEntry);
    down += rawHead(response, head).length;
    res.writeHead(response.statusCode ?? 502, response.statusMessage, head);
    await pipeline(
      response,
      counter((n) => (down += n)),
      res,
    );
    session.finish({ up, down, error: undefined });
    reusable = true;
    return 'done';
  } catch (err) {
    const failure = watch.failure();
    if (
      reused &&
      retriable &&
      response === undefined &&
      failure === undefined &&
      !(err instanceof ProxyError)
    ) {
      session.log.debug(
        { via: proxy?.label ?? 'origin' },
        'kept-alive connection was closed; retrying',
      );
      return 'retry';
    }
    const who = proxy ? `upstream proxy ${proxy.label}` : 'origin';
    const error =
      failure ?? upstreamError(err, formatTarget(at.target), response !== undefined, who);
    // A response already under way cannot be repaired: only closing the connection tells the
    // client it is incomplete.
    if (res.headersSent) res.destroy();
    else replyError(res, req, error);
    session.finish({ up, down, error });
    return 'done';
  } finally {
    watch.stop();
    upstream.off('free', onFree);
    upstream.off('error', ignore);
    if (reusable && freed && keep) keep();
    // Also ends an upload the origin did not wait for; node:http then closes the client
    // connection, whose unread body could not be framed any more.
    else upstream.destroy();
  }
}

/** The client's end-to-end fields; through a proxy also its credentials, and keep-alive. */
function requestHeaders(
  req: IncomingMessage,
  authority: string,
  viaEntry: string,
  proxyAuthorization: string | undefined,
  keepAlive: boolean,
): string[] {
  const headers = forwardedRequestHeaders(req, authority, viaEntry);
  if (proxyAuthorization !== undefined) headers.push('Proxy-Authorization', proxyAuthorization);
  if (keepAlive) headers.push('Connection', 'keep-alive');
  return headers;
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

/**
 * Which side failed first decides the logged error, since the other side is torn down after
 * it: the client closing (or being closed, e.g. at shutdown), or no bytes either way for
 * `idleMs` (backpressure stalls the origin socket too when the client stops reading).
 * Anything else is the origin's failure. A client that leaves before its response is complete
 * has its upstream connection closed at once, whether the origin was answering or not.
 */
function watchFailures(client: Socket, res: ServerResponse, upstream: Duplex, idleMs: number) {
  let first: ProxyError | undefined;
  let reason: ProxyError | undefined;
  const onClientError = (err: Error): void => {
    if (err instanceof ProxyError) reason ??= err;
  };
  client.on('error', onClientError);
  const onClose = (): void => {
    if (res.writableFinished) return;
    first ??= reason ?? new ProxyError('CLIENT_CLOSED', 'client closed the connection');
    upstream.destroy();
  };
  res.once('close', onClose);
  const timed = upstream as Duplex & { setTimeout?: Socket['setTimeout'] };
  const onIdle = (): void => {
    first ??= new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`);
    upstream.destroy();
  };
  if (idleMs > 0) timed.setTimeout?.(idleMs, onIdle);
  return {
    failure: () => first,
    stop: () => {
      client.off('error', onClientError);
      res.off('close', onClose);
      // The upstream connection may serve another request: nothing of this one stays on it.
      timed.setTimeout?.(0);
      upstream.off('timeout', onIdle);
    },
  };
}

function responseOf(outgoing: ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    outgoing.once('response', resolve);
    outgoing.on('error', reject);
  });
}

export function upstreamError(
  err: unknown,
  what: string,
  midResponse: boolean,
  who = 'origin',
): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = errorCode(err);
  if (code?.startsWith('HPE_')) {
    return new ProxyError('UPSTREAM_FAILED', `${what}: invalid response from ${who} (${code})`);
  }
  const when = midResponse ? 'broke off mid-response' : 'closed before answering';
  return new ProxyError('UPSTREAM_FAILED', `${what}: ${who} ${when} (${code ?? 'no code'})`);
}

/** Counts the bytes passing through, without copying them. */
function counter(add: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      add(chunk.length);
      callback(null, chunk);
    },
  });
}

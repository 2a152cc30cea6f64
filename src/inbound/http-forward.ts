// RFC 9110 §7.6 (message forwarding): a forward proxy for plain http:// targets. The request is
// handed to the session's outbound, which owns how it travels (plain-request.ts); this side
// reads it from the client and writes the response back.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { httpStatus, ProxyError, toProxyError, upstreamError } from '../errors.js';
import type { BodySink, ClientPresence, PlainResponse } from '../outbound/plain-request.js';
import type { Session } from '../session.js';
import { formatTarget } from '../target.js';
import { readableAtRate } from '../throttled-pipe.js';
import { takeFromAll, type TokenBucket } from '../token-bucket.js';
import { errorText } from './http-connect.js';
import { endToEndHeaders, forwardedRequestHeaders, headSize } from './http-headers.js';
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
  const client = new ClientSide(req.socket, res, session.rate?.down);
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
      client,
      idleMs: session.limits.idle_timeout,
    });
  } catch (err) {
    client.stop();
    const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
    replyError(res, req, error);
    session.finish({ up: 0, down: 0, error });
    return;
  }
  await relayResponse(session, client, response, at, viaEntry);
  client.stop();
}

/** Writes the response head and streams its body to the client, then ends the session. */
async function relayResponse(
  session: Session,
  client: ClientSide,
  response: PlainResponse,
  at: AbsoluteTarget,
  viaEntry: string,
): Promise<void> {
  const { res } = client;
  let complete = false;
  try {
    const head = endToEndHeaders(response.rawHeaders, viaEntry);
    client.down += headSize(response.status, response.statusText, head);
    res.writeHead(response.status, response.statusText, head);
    await response.deliver(client.sinkFor(response));
    res.end();
    complete = true;
    session.finish({ up: response.sent(), down: client.down, error: undefined });
  } catch (err) {
    const error =
      response.failure() ?? upstreamError(err, formatTarget(at.target), true, response.peer);
    // A response under way cannot be repaired: only closing the connection tells the client
    // it is incomplete.
    res.destroy();
    session.finish({ up: response.sent(), down: client.down, error });
  } finally {
    // Also ends an upload the origin did not wait for; node:http then closes the client
    // connection, whose unread body could not be framed any more.
    response.release(complete);
  }
}

/**
 * The client of one forwarded request, as the outbound sees it (it says when the client leaves
 * or is closed: shutdown, admin, with the reason it was closed for when there is one) and as
 * where the response body goes, with backpressure: no more is asked of the upstream while the
 * client's connection is full or the session's rate buckets (token-bucket.ts) are in debt.
 * Nothing is dropped, and at most one chunk is held beyond what the socket holds.
 */
class ClientSide implements ClientPresence, BodySink {
  gone: ProxyError | undefined;
  onGone: ((reason: ProxyError) => void) | undefined;
  /**
   * Bytes written to the client. Approximate on a kept-alive client connection: the response
   * head as we write it plus the body (before chunked framing).
   */
  down = 0;
  readonly res: ServerResponse;
  private readonly socket: Socket;
  private readonly buckets: readonly TokenBucket[] | undefined;
  private response: PlainResponse | undefined;
  private draining = false;
  private refill: NodeJS.Timeout | undefined;
  private onDrain: (() => void) | undefined;

  constructor(socket: Socket, res: ServerResponse, buckets: readonly TokenBucket[] | undefined) {
    this.socket = socket;
    this.res = res;
    this.buckets = buckets !== undefined && buckets.length > 0 ? buckets : undefined;
    res.once('close', this.onClose);
  }

  sinkFor(response: PlainResponse): BodySink {
    this.response = response;
    return this;
  }

  write(chunk: Buffer): boolean {
    this.down += chunk.length;
    const flowing = this.res.write(chunk);
    const wait = this.buckets === undefined ? 0 : takeFromAll(this.buckets, chunk.length);
    if (flowing && wait <= 0) return true;
    if (!flowing && !this.draining) {
      this.draining = true;
      this.res.once('drain', (this.onDrain ??= this.drained.bind(this)));
    }
    if (wait > 0 && this.refill === undefined) {
      this.refill = setTimeout(this.refilled.bind(this), wait);
    }
    return false;
  }

  stop(): void {
    this.res.off('close', this.onClose);
    clearTimeout(this.refill);
    this.refill = undefined;
    if (this.onDrain) this.res.off('drain', this.onDrain);
  }

  private drained(): void {
    this.draining = false;
    this.resume();
  }

  private refilled(): void {
    this.refill = undefined;
    this.resume();
  }

  private resume(): void {
    if (!this.draining && this.refill === undefined) this.response?.resume();
  }

  private readonly onClose = (): void => {
    if (this.res.writableFinished) return;
    // Closed by junction (shutdown, admin) with the reason as the socket's error.
    const reason: unknown = this.socket.errored;
    this.gone =
      reason instanceof ProxyError
        ? reason
        : new ProxyError('CLIENT_CLOSED', 'client closed the connection');
    this.onGone?.(this.gone);
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

// RFC 9110 §9.3.6 (CONNECT): the tunnel is answered with 2xx only once the target is reached,
// then carries raw bytes both ways. RFC 9112 §3.2.3 (authority-form: "host:port").
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { httpStatus, ProxyError, toProxyError } from '../errors.js';
import type { Session } from '../session.js';
import { parseHostPort, type Target } from '../target.js';
import { viaValues } from '../via.js';
import { watchWaitingClient } from './http-waiting.js';

/** How long a rejected client may keep sending before its socket is destroyed. */
const LINGER_MS = 5_000;

/** `host:port` or `[v6]:port`; undefined when the authority is not valid. */
export function parseConnectAuthority(authority: string): Target | undefined {
  return parseHostPort(authority);
}

/**
 * Runs one CONNECT session: dials, then replies 200 (never before: a client must not send bytes
 * into a tunnel that does not exist yet), forwards the bytes node:http read past the request
 * head, and relays until both directions end.
 */
export async function tunnel(
  session: Session,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  viaEntry: string,
): Promise<void> {
  const upstream = await connectOrAnswer(session, req, socket, viaEntry);
  if (!upstream) return;
  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  if (head.length > 0) upstream.write(head);
  // `head` was read before the relay started, so the relay's `up` count misses those few bytes.
  // The relay goes on by itself: a tunnel's lifetime keeps no frame of this function (nor the
  // request).
  session.relay(socket, upstream);
}

/** The one-line body of an error answer: "502 Bad Gateway: connect to x:80: name not resolved". */
export function errorText(error: ProxyError): string {
  return statusText(httpStatus(error), error.message);
}

export function statusText(status: number, message: string): string {
  return `${status} ${STATUS_CODES[status] ?? 'Error'}: ${message}`;
}

/**
 * Answers on a socket node:http no longer manages (CONNECT, upgrade, parse errors), then closes
 * it; a client already gone gets nothing. `extraHeaders` are `[name, value, ...]` pairs.
 */
export function replyAndClose(
  socket: Socket,
  status: number,
  text: string,
  extraHeaders: readonly string[] = [],
): void {
  if (socket.destroyed) return;
  const body = `${text}\n`;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  head += `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  head += 'Connection: close\r\n';
  for (let i = 0; i + 1 < extraHeaders.length; i += 2) {
    head += `${extraHeaders[i] ?? ''}: ${extraHeaders[i + 1] ?? ''}\r\n`;
  }
  socket.end(`${head}\r\n${body}`);
  lingerThenDestroy(socket);
}

/**
 * Closing a socket with unread input makes the kernel send RST, which can discard the answer
 * before the client reads it (a client may already be sending a body or a TLS hello). So the
 * input is drained until the client closes, or for LINGER_MS at most.
 */
export function lingerThenDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => {
    clearTimeout(timer);
  });
  // After the client's FIN, destroy once our answer is flushed (destroySoon waits for 'finish').
  if (socket.readableEnded) socket.destroySoon();
  else socket.once('end', () => socket.destroySoon());
  socket.resume();
}

/**
 * Routes and dials for a session that owns the raw client socket (CONNECT, Upgrade); a failure
 * is answered with its status, the socket closed and the session ended, and gives undefined.
 * A client that leaves during the dial ends it at once (CLIENT_CLOSED); the bytes it sends
 * meanwhile are kept for the tunnel. The request's Via list, with our entry, goes on to an
 * upstream HTTP proxy (RFC 9110 §7.6.3), so that a loop through it is seen wherever it closes.
 */
export async function connectOrAnswer(
  session: Session,
  request: IncomingMessage,
  socket: Socket,
  viaEntry: string,
): Promise<Duplex | undefined> {
  if (socket.destroyed) {
    // The client left while it was being checked (a password hash takes a while).
    session.fail(new ProxyError('CLIENT_CLOSED', 'client closed before the connection was made'));
    return undefined;
  }
  // Destroying the client aborts the dial: the session watches it.
  const waiting = watchWaitingClient(socket, () => socket.destroy());
  try {
    const via = [...viaValues(request.rawHeaders), viaEntry];
    const { stream } = await session.connect('tunnel', via);
    waiting.release();
    return stream;
  } catch (err) {
    waiting.release();
    const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
    replyAndClose(socket, httpStatus(error), errorText(error));
    session.fail(error);
    return undefined;
  }
}

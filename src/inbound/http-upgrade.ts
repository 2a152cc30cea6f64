// RFC 9110 §7.8 (Upgrade) and §15.2.2 (101 Switching Protocols), RFC 6455 §4.1 (a WebSocket
// handshake is an ordinary GET with `Connection: Upgrade`): upgrades through the forward proxy.
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { httpStatus, ProxyError, upstreamError } from '../errors.js';
import type { Session } from '../session.js';
import { formatTarget } from '../target.js';
import { connectOrAnswer, errorText, lingerThenDestroy, replyAndClose } from './http-connect.js';
import { endToEndHeaders, forwardedRequestHeaders, rawHead } from './http-headers.js';
import type { AbsoluteTarget } from './http-target.js';
import { watchWaitingClient } from './http-waiting.js';

type TimedStream = Duplex & { setTimeout?: Socket['setTimeout'] };

/** The origin's answer, and for a 101 the bytes it sent past its head. */
type Answer = readonly [IncomingMessage, Buffer?];

/**
 * An absolute-form request with `Connection: Upgrade`: forwarded with its Upgrade fields; after
 * the origin's 101 both sides are relayed raw. Any other answer is passed on, then the client
 * connection is closed (node:http has handed the socket over and no longer frames it).
 * `connect_timeout` bounds the wait for the origin's answer, `idle_timeout` what follows; a
 * client that leaves before the answer ends the session at once.
 */
export async function forwardUpgrade(
  session: Session,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  at: AbsoluteTarget,
  viaEntry: string,
): Promise<void> {
  const what = formatTarget(at.target);
  if (hasBody(req)) {
    const error = new ProxyError('BAD_REQUEST', 'an Upgrade request cannot carry a body');
    replyAndClose(socket, httpStatus(error), errorText(error));
    session.fail(error);
    return;
  }
  const origin = await connectOrAnswer(session, req, socket, viaEntry);
  if (!origin) return;
  let failure: ProxyError | undefined;
  const onClientGone = (): void => {
    failure ??= new ProxyError('CLIENT_CLOSED', 'client closed the connection');
    origin.destroy();
  };
  // Until the origin answers, a client that leaves takes the origin connection with it.
  const waiting = watchWaitingClient(socket, () => {
    socket.destroy();
  });
  if (socket.destroyed) onClientGone();
  else socket.once('close', onClientGone);
  const outgoing = request({
    method: req.method ?? 'GET',
    path: at.path,
    headers: forwardedRequestHeaders(req, at.authority, viaEntry, true),
    createConnection: () => origin,
  });
  const answered = answerOf(outgoing);
  // The upgrade request carries no body (refused above); the bytes the client sent past its head
  // go to the origin after a 101 only.
  outgoing.end();
  const limit = session.limits.connect_timeout;
  const deadline = setTimeout(() => {
    failure ??= new ProxyError(
      'CONNECT_TIMEOUT',
      `${what}: no answer to the upgrade in ${limit}ms`,
    );
    origin.destroy();
  }, limit);
  const before = socket.bytesWritten;
  // Once relayed, both sides belong to the relay, which closes them when the tunnel ends.
  let relaying = false;
  try {
    const [res, rest] = await answered;
    clearTimeout(deadline);
    waiting.release();
    if (rest) {
      // From here the relay owns both sides, and lets each flush before it closes.
      socket.off('close', onClientGone);
      socket.write(rawHead(res, endToEndHeaders(res.rawHeaders, viaEntry, true)));
      if (rest.length > 0) socket.write(rest);
      if (head.length > 0) origin.write(head);
      session.relay(socket, origin);
      relaying = true;
      return;
    }
    const passed = [...endToEndHeaders(res.rawHeaders, viaEntry), 'Connection', 'close'];
    await passOn(res, passed, socket, origin, session.limits.idle_timeout, (error) => {
      failure ??= error;
    });
    lingerThenDestroy(socket);
    session.finish({ up: 0, down: socket.bytesWritten - before, error: undefined });
  } catch (err) {
    clearTimeout(deadline);
    waiting.release();
    const started = socket.bytesWritten > before;
    const error = failure ?? upstreamError(err, what, started);
    if (started || error.code === 'CLIENT_CLOSED') socket.destroy();
    else replyAndClose(socket, httpStatus(error), errorText(error));
    session.finish({ up: 0, down: socket.bytesWritten - before, error });
  } finally {
    socket.off('close', onClientGone);
    if (!relaying) origin.destroy();
  }
}

/** RFC 9112 §6.3: a body is announced by Transfer-Encoding or a non-zero Content-Length. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function answerOf(outgoing: ReturnType<typeof request>): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    outgoing.once('upgrade', (res: IncomingMessage, _socket: Duplex, rest: Buffer) => {
      resolve([res, rest]);
    });
    outgoing.once('response', (res: IncomingMessage) => {
      resolve([res]);
    });
    outgoing.on('error', reject);
  });
}

/**
 * A refusal (any answer but 101), passed on close-delimited: its body ends when the connection
 * does, whatever framing the origin used. `idleMs` without a byte from the origin cuts it.
 */
async function passOn(
  res: IncomingMessage,
  headers: readonly string[],
  socket: Socket,
  origin: TimedStream,
  idleMs: number,
  onIdle: (error: ProxyError) => void,
): Promise<void> {
  socket.write(rawHead(res, headers));
  if (idleMs > 0) {
    origin.setTimeout?.(idleMs, () => {
      onIdle(new ProxyError('IDLE_TIMEOUT', `no traffic for ${idleMs}ms`));
      origin.destroy();
    });
  }
  await pipeline(res, socket);
}

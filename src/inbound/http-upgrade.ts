// RFC 9110 §7.8 (Upgrade) and §15.2.2 (101 Switching Protocols), RFC 6455 §4.1 (a WebSocket
// handshake is an ordinary GET with `Connection: Upgrade`): upgrades through the forward proxy.
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { httpStatus } from '../errors.js';
import type { Session } from '../session.js';
import { formatTarget } from '../target.js';
import { connectOrAnswer, errorText, lingerThenDestroy, replyAndClose } from './http-connect.js';
import { upstreamError } from './http-forward.js';
import { endToEndHeaders, forwardedRequestHeaders, rawHead } from './http-headers.js';
import type { AbsoluteTarget } from './http-target.js';

/**
 * An absolute-form request with `Connection: Upgrade`: forwarded with its Upgrade fields; after
 * the origin's 101 both sides are relayed raw. Any other answer is passed on, then the client
 * connection is closed (node:http has handed the socket over and no longer frames it).
 */
export async function forwardUpgrade(
  session: Session,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  at: AbsoluteTarget,
): Promise<void> {
  const upstream = await connectOrAnswer(session, socket);
  if (!upstream) return;
  const outgoing = request({
    method: req.method ?? 'GET',
    path: at.path,
    headers: forwardedRequestHeaders(req, at.authority, true),
    createConnection: () => upstream,
  });
  /** The origin's answer, and for a 101 the bytes it sent past its head. */
  const answered = new Promise<[IncomingMessage, Buffer?]>((resolve, reject) => {
    outgoing.once('upgrade', (res: IncomingMessage, _socket: Duplex, rest: Buffer) => {
      resolve([res, rest]);
    });
    outgoing.once('response', (res: IncomingMessage) => {
      resolve([res]);
    });
    outgoing.on('error', reject);
  });
  // A body sent with an upgrade request is not read here: node:http leaves it on the socket,
  // and it goes to the origin after a 101 (and is drained and dropped otherwise).
  outgoing.end();
  const before = socket.bytesWritten;
  try {
    const [res, rest] = await answered;
    if (rest) {
      socket.write(rawHead(res, endToEndHeaders(res.rawHeaders, true)));
      if (rest.length > 0) socket.write(rest);
      if (head.length > 0) upstream.write(head);
      await session.relay(socket, upstream);
      return;
    }
    // Close-delimited: the body ends when the connection does, whatever framing the origin used.
    socket.write(rawHead(res, [...endToEndHeaders(res.rawHeaders), 'Connection', 'close']));
    await pipeline(res, socket);
    lingerThenDestroy(socket);
    session.finish({ up: 0, down: socket.bytesWritten - before, error: undefined });
  } catch (err) {
    const started = socket.bytesWritten > before;
    const error = upstreamError(err, formatTarget(at.target), started);
    if (started) socket.destroy();
    else replyAndClose(socket, httpStatus(error), errorText(error));
    session.finish({ up: 0, down: socket.bytesWritten - before, error });
  } finally {
    upstream.destroy();
  }
}

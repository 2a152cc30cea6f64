import type { Socket } from 'node:net';
import { ProxyError, type ErrorCode } from '../errors.js';
import type { Parser } from './socks-codec.js';

/**
 * Socket I/O of the SOCKS handshake: read one message with a bound, and close with a last reply.
 * The parsing itself is in socks-codec.ts.
 */

const NOTHING: Buffer = Buffer.alloc(0);

export type ReadOutcome<T> =
  | { readonly kind: 'ok'; readonly value: T }
  /** The bytes are not a valid message: the caller answers in its protocol, then closes. */
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly reason: string }
  /**
   * The client went away (FIN, reset) or was closed (handshake deadline, shutdown) before a
   * whole message arrived.
   */
  | { readonly kind: 'closed'; readonly reason: string; readonly timedOut: boolean };

/**
 * Reads one handshake message, offering the bytes to `parse` as they arrive. The socket stays in
 * paused mode, so nothing is consumed beyond what Node has already buffered, and a message that is
 * still incomplete after `maxBytes` is an error, never a growing buffer. Bytes after the message
 * (a client that pipelines its first payload before our reply) are put back with unshift(), so
 * the next read or the relay gets them.
 */
export function readMessage<T>(
  socket: Socket,
  parse: Parser<T>,
  maxBytes: number,
): Promise<ReadOutcome<T>> {
  return new Promise((resolve) => {
    let received = NOTHING;
    let failure: Error | undefined;

    const finish = (outcome: ReadOutcome<T>, leftover?: Buffer): void => {
      socket.off('readable', attempt);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (leftover && leftover.length > 0) socket.unshift(leftover);
      resolve(outcome);
    };
    /** True once the message is read (or found invalid). */
    function attempt(): boolean {
      for (;;) {
        const chunk = socket.read() as Buffer | null;
        if (chunk === null) return false;
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const parsed = parse(received);
        if (parsed.kind === 'ok') {
          // No further read(): that could consume the client's FIN before the relay sees it.
          const rest =
            parsed.consumed < received.length ? received.subarray(parsed.consumed) : undefined;
          finish({ kind: 'ok', value: parsed.value }, rest);
          return true;
        }
        if (parsed.kind === 'error') {
          finish(parsed);
          return true;
        }
        if (received.length >= maxBytes) {
          finish({
            kind: 'error',
            code: 'BAD_REQUEST',
            reason: `message longer than ${maxBytes} bytes`,
          });
          return true;
        }
      }
    }
    function onEnd(): void {
      finish({ kind: 'closed', reason: 'client closed during the handshake', timedOut: false });
    }
    function onError(err: Error): void {
      failure = err;
    }
    function onClose(): void {
      // A ProxyError is ours (the listener's deadline, a shutdown); anything else the client's.
      const ours = failure instanceof ProxyError ? failure : undefined;
      finish({
        kind: 'closed',
        reason: ours?.message ?? 'client connection lost',
        timedOut: ours?.code === 'HANDSHAKE_TIMEOUT',
      });
    }

    if (socket.destroyed) {
      resolve({ kind: 'closed', reason: 'client connection lost', timedOut: false });
      return;
    }
    // Bytes already buffered (the mixed inbound's sniffed byte, the rest of an earlier chunk)
    // may never announce themselves with a new 'readable': look at them first. A message they
    // complete is answered without a listener ever being added.
    if (attempt()) return;
    socket.on('readable', attempt);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}

/**
 * Sends a last reply (if any) and a FIN, then destroys the socket once they are flushed, so the
 * socket is released whether or not the client ever closes its side. Anything the client still
 * sends is discarded: unread bytes would turn our close into a reset that can swallow the reply.
 */
export function closeWith(socket: Socket, reply?: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.destroy();
      resolve();
    };
    if (socket.destroyed || !socket.writable) {
      done();
      return;
    }
    socket.once('close', done);
    socket.resume();
    if (reply) socket.end(reply, done);
    else socket.end(done);
  });
}

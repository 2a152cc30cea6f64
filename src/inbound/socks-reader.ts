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
    if (socket.destroyed) {
      resolve({ kind: 'closed', reason: 'client connection lost', timedOut: false });
      return;
    }
    const read = new PendingRead(socket, parse, maxBytes, resolve);
    // Bytes already buffered (the mixed inbound's sniffed byte, the rest of an earlier chunk)
    // may never announce themselves with a new 'readable': look at them first. A message they
    // complete is answered without a listener ever being added.
    if (read.attempt()) return;
    read.listen();
  });
}

/**
 * One message being read, reached from its socket by the listeners below, which every read
 * shares (the socket they fire on is `this`): a handshake then costs no closure per listener.
 */
const READING = Symbol('reading');
type Reading = Socket & { [READING]?: PendingRead<unknown> | undefined };

class PendingRead<T> {
  private readonly socket: Socket;
  private readonly parse: Parser<T>;
  private readonly maxBytes: number;
  private readonly resolve: (outcome: ReadOutcome<T>) => void;
  private received = NOTHING;
  private listening = false;
  failure: Error | undefined;

  constructor(
    socket: Socket,
    parse: Parser<T>,
    maxBytes: number,
    resolve: (outcome: ReadOutcome<T>) => void,
  ) {
    this.socket = socket;
    this.parse = parse;
    this.maxBytes = maxBytes;
    this.resolve = resolve;
  }

  listen(): void {
    const socket = this.socket as Reading;
    socket[READING] = this as PendingRead<unknown>;
    this.listening = true;
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** True once the message is read (or found invalid). */
  attempt(): boolean {
    for (;;) {
      const chunk = this.socket.read() as Buffer | null;
      if (chunk === null) return false;
      const received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
      this.received = received;
      const parsed = this.parse(received);
      if (parsed.kind === 'ok') {
        // No further read(): that could consume the client's FIN before the relay sees it.
        const rest =
          parsed.consumed < received.length ? received.subarray(parsed.consumed) : undefined;
        this.finish({ kind: 'ok', value: parsed.value }, rest);
        return true;
      }
      if (parsed.kind === 'error') {
        this.finish(parsed);
        return true;
      }
      if (received.length >= this.maxBytes) {
        this.finish({
          kind: 'error',
          code: 'BAD_REQUEST',
          reason: `message longer than ${this.maxBytes} bytes`,
        });
        return true;
      }
    }
  }

  finish(outcome: ReadOutcome<T>, leftover?: Buffer): void {
    const socket = this.socket as Reading;
    if (this.listening) {
      this.listening = false;
      socket[READING] = undefined;
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
    }
    if (leftover) socket.unshift(leftover);
    this.resolve(outcome);
  }
}

function onReadable(this: Reading): void {
  this[READING]?.attempt();
}

function onEnd(this: Reading): void {
  this[READING]?.finish({
    kind: 'closed',
    reason: 'client closed during the handshake',
    timedOut: false,
  });
}

function onError(this: Reading, err: Error): void {
  const read = this[READING];
  if (read) read.failure = err;
}

function onClose(this: Reading): void {
  const read = this[READING];
  if (!read) return;
  // A ProxyError is ours (the listener's deadline, a shutdown); anything else the client's.
  const ours = read.failure instanceof ProxyError ? read.failure : undefined;
  read.finish({
    kind: 'closed',
    reason: ours?.message ?? 'client connection lost',
    timedOut: ours?.code === 'HANDSHAKE_TIMEOUT',
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

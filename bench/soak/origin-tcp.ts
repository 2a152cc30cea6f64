import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { bytesOf, pool } from './random.js';
import type { Tracker } from './tracker.js';

/**
 * A raw TCP origin. The client's first line is a command; the rest of the connection is its
 * payload:
 *
 *   ECHO <token>                   every byte back; a FIN once the client's FIN has arrived
 *   SINK <token> <n>               reads n bytes, answers "<sha256 hex>\n" and a FIN
 *   SOURCE <token> <offset> <n>    sends that slice of the pool and a FIN
 *   LATE <token> <offset> <n>      waits for the client's FIN, then answers "<sha256 of what
 *                                  it read>\n", the slice and a FIN (the half-close test)
 *   STREAM <token>                 sends pool bytes and discards input until the connection ends
 *   RESET <token> <offset> <n>     sends the slice, waits for one byte back (the client has
 *                                  it all, so the relay has read it all), then resets
 */
export interface TcpOrigin {
  readonly port: number;
  /** Connections open now. */
  readonly open: number;
  close(): Promise<void>;
}

const MAX_COMMAND = 256;
const STREAM_CHUNK = 64 * 1024;

export async function startTcpOrigin(tracker: Tracker): Promise<TcpOrigin> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let head = Buffer.alloc(0);
    let token: string | undefined;
    socket.once('close', () => {
      sockets.delete(socket);
      if (token !== undefined) tracker.closed(token);
    });
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const newline = head.indexOf(0x0a);
      if (newline < 0) {
        if (head.length > MAX_COMMAND) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const words = head.subarray(0, newline).toString('latin1').split(' ');
      token = words[1] ?? '';
      tracker.seen(token);
      const rest = head.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      serve(socket, words);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(socket: Socket, [command, , ...args]: string[]): void {
  const [a = 0, b = 0] = args.map(Number);
  switch (command) {
    case 'ECHO':
      socket.pipe(socket);
      return;
    case 'SINK':
      sink(socket, a);
      return;
    case 'SOURCE':
      socket.resume();
      socket.end(bytesOf({ offset: a, length: b }));
      return;
    case 'LATE':
      late(socket, { offset: a, length: b });
      return;
    case 'STREAM':
      stream(socket);
      return;
    case 'RESET':
      // A reset that meets unread bytes reads as a plain FIN on Linux; after the client's
      // acknowledgement the relay has read everything, so the reset is seen as one.
      socket.write(bytesOf({ offset: a, length: b }));
      socket.once('data', () => socket.resetAndDestroy());
      socket.resume();
      return;
    default:
      socket.destroy();
  }
}

function sink(socket: Socket, expected: number): void {
  const hash = createHash('sha256');
  let got = 0;
  const finish = (): void => {
    socket.off('data', onData);
    socket.resume();
    socket.end(`${hash.digest('hex')}\n`);
  };
  const onData = (chunk: Buffer): void => {
    got += chunk.length;
    if (got > expected) {
      socket.destroy();
      return;
    }
    hash.update(chunk);
    if (got === expected) finish();
  };
  if (expected === 0) {
    finish();
    return;
  }
  socket.on('data', onData);
  socket.resume();
}

function late(socket: Socket, slice: { offset: number; length: number }): void {
  const hash = createHash('sha256');
  socket.on('data', (chunk: Buffer) => hash.update(chunk));
  socket.once('end', () => {
    socket.write(`${hash.digest('hex')}\n`);
    socket.end(bytesOf(slice));
  });
  socket.resume();
}

function stream(socket: Socket): void {
  socket.resume();
  let offset = 0;
  const pump = (): void => {
    while (!socket.destroyed && socket.writable) {
      const chunk = pool.subarray(offset, offset + STREAM_CHUNK);
      offset = (offset + STREAM_CHUNK) % (pool.length - STREAM_CHUNK);
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

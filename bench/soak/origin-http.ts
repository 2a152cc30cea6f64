import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { bytesOf, pool } from './random.js';
import type { Tracker } from './tracker.js';

/**
 * A real node:http origin, kept-alive. The path names what to do; its second segment is a token
 * that the tracker follows (requests in flight at once, the connection closing):
 *
 *   GET  /get/<token>/<seq>/<offset>/<n>/<ms>  200, that slice of the pool, X-Seq: <seq>
 *   POST /echo/<token>/<seq>/<ms>              200, the request body streamed back, X-Seq: <seq>
 *   GET  /stream/<token>                     200, chunked pool bytes until the connection ends
 *   GET  /hold/<token>                       never answers
 *   GET  /reset/<token>/<offset>/<n>         200 announcing more than the slice, the slice, a reset
 *
 * `<ms>` (optional) is how long the origin takes before it answers: a slow origin, so that
 * requests a proxy sends before the previous answer are seen at the origin together.
 */
export interface HttpOrigin {
  readonly port: number;
  readonly open: number;
  close(): Promise<void>;
}

const STREAM_CHUNK = 16 * 1024;

export async function startHttpOrigin(tracker: Tracker): Promise<HttpOrigin> {
  // The tokens each kept-alive connection has carried, told when it closes.
  const sockets = new Map<Socket, Set<string>>();
  const server = createServer((req, res) => {
    const [, action = '', token = '', ...args] = (req.url ?? '').split('/');
    tracker.seen(token);
    tracker.inFlight(token, 1);
    res.once('close', () => tracker.inFlight(token, -1));
    sockets.get(req.socket)?.add(token);
    respond(action, args.map(Number), req, res);
  });
  server.on('connection', (socket: Socket) => {
    const tokens = new Set<string>();
    sockets.set(socket, tokens);
    socket.once('close', () => {
      sockets.delete(socket);
      for (const token of tokens) tracker.closed(token);
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function respond(
  action: string,
  [a = 0, b = 0, c = 0, d = 0]: number[],
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const after = (ms: number, answer: () => void): void => {
    if (ms > 0) setTimeout(answer, ms);
    else answer();
  };
  switch (action) {
    case 'get': {
      const body = bytesOf({ offset: b, length: c });
      req.resume();
      after(d, () => {
        res.writeHead(200, { 'content-length': body.length, 'x-seq': a });
        res.end(body);
      });
      return;
    }
    case 'echo':
      after(b, () => {
        res.writeHead(200, {
          'content-length': req.headers['content-length'] ?? '0',
          'x-seq': a,
        });
        req.pipe(res);
      });
      return;
    case 'stream':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.resume();
      pump(res);
      return;
    case 'hold':
      req.resume();
      return;
    case 'reset': {
      const body = bytesOf({ offset: a, length: b });
      res.writeHead(200, { 'content-length': body.length + 1_000_000 });
      req.resume();
      res.write(body, () => req.socket.resetAndDestroy());
      return;
    }
    default:
      res.writeHead(404, { 'content-length': 0 });
      res.end();
  }
}

function pump(res: ServerResponse): void {
  let offset = 0;
  const next = (): void => {
    while (!res.destroyed && !res.writableEnded) {
      const chunk = pool.subarray(offset, offset + STREAM_CHUNK);
      offset = (offset + STREAM_CHUNK) % (pool.length - STREAM_CHUNK);
      if (!res.write(chunk)) {
        res.once('drain', next);
        return;
      }
    }
  };
  next();
}

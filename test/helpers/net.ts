import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type RequestListener,
  type Server,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/** Deterministic bytes so a checksum proves the exact payload came through. */
export function patternBytes(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  readonly body: Buffer;
}

export interface HttpOrigin {
  readonly port: number;
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly server: Server | HttpsServer;
  close(): Promise<void>;
}

export const BULK_SIZE = 4 * 1024 * 1024 + 123;
export const BULK = patternBytes(BULK_SIZE);

/**
 * A real HTTP origin on 127.0.0.1: `/tiny` answers "ok\n", `/bulk` the BULK payload,
 * `/echo` the request body; every request is recorded with its raw headers. With `tls` (PEM
 * certificate and key) it is an HTTPS origin.
 */
export async function startHttpOrigin(
  host = '127.0.0.1',
  tls?: { readonly cert: string; readonly key: string },
): Promise<HttpOrigin> {
  const requests: RecordedRequest[] = [];
  const handler: RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        remoteAddress: req.socket.remoteAddress ?? '',
        body,
      });
      const path = (req.url ?? '').replace(/^https?:\/\/[^/]+/, '');
      if (path.startsWith('/bulk')) {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': BULK.length,
        });
        res.end(BULK);
      } else if (path.startsWith('/echo')) {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'x-echo-method': req.method ?? '',
        });
        res.end(body);
      } else {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
        res.end('ok\n');
      }
    });
  };
  const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TcpServer {
  readonly port: number;
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** A raw TCP server on 127.0.0.1 (or `host`) running `onConnection` for each client. */
export async function startTcpServer(
  onConnection: (socket: Socket) => void,
  host = '127.0.0.1',
): Promise<TcpServer> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A port the kernel just gave out on 127.0.0.1, released again: free for a peer to take, and
 * until then a port that refuses connections.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A port nothing listens on, for a connection that must be refused: below the kernel's ephemeral
 * range, so that no later listen on port 0 (a peer's, a gateway's) is handed the same port, as
 * one released by freePort() can be. The port after it is free too (tests use it as a second
 * target nothing answers).
 */
export async function refusedPort(): Promise<number> {
  const low = ephemeralLow();
  for (let tries = 0; tries < 100; tries++) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_002));
    if ((await refuses(port)) && (await refuses(port + 1))) return port;
  }
  throw new Error('no refused port below the ephemeral range');
}

function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > 10_100 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code === 'ECONNREFUSED');
    });
  });
}

/** A client socket with exact reads, for byte-level protocol tests. */
export interface RawClient {
  readonly socket: Socket;
  /** Resolves with exactly `n` bytes, or rejects if the peer closes first or time runs out. */
  read(n: number, timeoutMs?: number): Promise<Buffer>;
  /** Resolves with everything until the peer closes (FIN or reset). */
  readToEnd(timeoutMs?: number): Promise<Buffer>;
  /** Resolves with bytes up to and including `delimiter`. */
  readUntil(delimiter: string, timeoutMs?: number): Promise<Buffer>;
  write(data: Buffer | string): void;
  /** Resolves when the peer has closed the connection. */
  closed(timeoutMs?: number): Promise<void>;
}

/** `localAddress`: the loopback address to connect from (127.0.0.2…), to be another client. */
export async function rawConnect(
  port: number,
  host = '127.0.0.1',
  localAddress?: string,
): Promise<RawClient> {
  const socket = connect({
    port,
    host,
    allowHalfOpen: true,
    ...(localAddress && { localAddress }),
  });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  let buffered = Buffer.alloc(0);
  let ended = false;
  let notify: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    notify?.();
  });
  // The peer's FIN ends what can be read (the socket is half-open, so 'close' waits for us).
  const onEnded = (): void => {
    ended = true;
    notify?.();
  };
  socket.on('end', onEnded);
  socket.on('close', onEnded);
  const waitFor = <T>(ready: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        notify = undefined;
        reject(
          new Error(
            `timed out waiting for ${what}; have ${buffered.length} bytes: ${buffered.subarray(0, 64).toString('hex')}`,
          ),
        );
      }, timeoutMs);
      const check = (): void => {
        let value: T | undefined;
        try {
          value = ready();
        } catch (err) {
          clearTimeout(timer);
          notify = undefined;
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (value !== undefined) {
          clearTimeout(timer);
          notify = undefined;
          resolve(value);
        }
      };
      notify = check;
      check();
    });
  const take = (n: number): Buffer => {
    const out = buffered.subarray(0, n);
    buffered = buffered.subarray(n);
    return out;
  };
  return {
    socket,
    read(n, timeoutMs = 5000) {
      return waitFor(
        () => {
          if (buffered.length >= n) return take(n);
          if (ended)
            throw new Error(
              `connection closed after ${buffered.length} of ${n} bytes (${buffered.toString('hex')})`,
            );
          return undefined;
        },
        `${n} bytes`,
        timeoutMs,
      );
    },
    readToEnd(timeoutMs = 5000) {
      return waitFor(() => (ended ? take(buffered.length) : undefined), 'close', timeoutMs);
    },
    readUntil(delimiter, timeoutMs = 5000) {
      return waitFor(
        () => {
          const at = buffered.indexOf(delimiter);
          if (at >= 0) return take(at + delimiter.length);
          if (ended)
            throw new Error(
              `connection closed before "${delimiter}": ${buffered.toString('latin1')}`,
            );
          return undefined;
        },
        JSON.stringify(delimiter),
        timeoutMs,
      );
    },
    write(data) {
      socket.write(data);
    },
    closed(timeoutMs = 5000) {
      return waitFor(() => (ended ? true : undefined), 'close', timeoutMs).then(() => undefined);
    },
  };
}

export interface CurlResult {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs the real curl, bounded in time; never throws for a non-zero exit. */
export function curl(args: readonly string[], timeoutSec = 20): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['--silent', '--show-error', '--max-time', String(timeoutSec), ...args],
      {
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      },
      (error, stdout, stderr) => {
        const code = error && typeof error.code === 'number' ? error.code : error ? 1 : 0;
        resolve({ exitCode: code, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

/** One HTTP response as read off a raw connection. */
export interface HttpAnswer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** Reads one response with a Content-Length body (or none) from a raw client. */
export async function readAnswer(client: RawClient, timeoutMs = 5000): Promise<HttpAnswer> {
  const head = (await client.readUntil('\r\n\r\n', timeoutMs)).toString('latin1');
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const body = length > 0 ? (await client.read(length, timeoutMs)).toString('utf8') : '';
  return { status: Number(head.slice(9, 12)), head, body };
}

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import {
  rawConnect,
  startHttpOrigin,
  startTcpServer,
  type HttpOrigin,
  type RawClient,
  type TcpServer,
  readAnswer,
  type HttpAnswer,
} from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';
import { createTurns, MAX_WAITING } from '../../src/inbound/http-turns.js';
import { watchWaitingClient } from '../../src/inbound/http-waiting.js';

/** Long enough that only a prompt close, never a timeout, can pass the "promptly" checks. */
const LONG = { connect_timeout: '30s', idle_timeout: '60s', handshake_timeout: '30s' };
const PROMPTLY_MS = 3000;

/** Counts the requests it is serving at once; answers `body <path>` on the next turn. */
interface CountingOrigin {
  readonly port: number;
  readonly server: Server;
  active: number;
  maxActive: number;
  /** The most connections open at once. */
  maxSockets: number;
  served: string[];
  readonly sockets: Set<Socket>;
}

/** A TCP server that reads requests and never answers: each connection is reported once it spoke. */
interface Holder {
  readonly server: TcpServer;
  /** Resolves with the next connection that sent bytes, and the bytes of its first chunk. */
  next(): Promise<{ socket: Socket; first: Buffer }>;
}

let counting: CountingOrigin;
let origin: HttpOrigin;
let holder: Holder;
let g: TestGateway;
/** connect_timeout 500 ms, idle_timeout 1 s. */
let quick: TestGateway;
const clients: RawClient[] = [];

before(async () => {
  counting = await startCountingOrigin();
  origin = await startHttpOrigin();
  holder = await startHolder();
  g = await startGateway({
    limits: LONG,
    inbounds: [
      { name: 'web', type: 'http', listen: '127.0.0.1:0' },
      { name: 'via-holder', type: 'http', listen: '127.0.0.1:0' },
    ],
    outbounds: [{ name: 'holder', url: `http://127.0.0.1:${holder.server.port}` }],
    rules: [{ inbound: ['via-holder'], outbound: 'holder' }],
  });
  quick = await startGateway({
    limits: { connect_timeout: '500ms', idle_timeout: '1s' },
    inbounds: [{ name: 'quick', type: 'http', listen: '127.0.0.1:0' }],
  });
});

after(async () => {
  for (const client of clients) client.socket.destroy();
  await Promise.all([g.stop(), quick.stop()]);
  for (const socket of counting.sockets) socket.destroy();
  await Promise.all([
    new Promise<void>((resolve) => counting.server.close(() => resolve())),
    origin.close(),
    holder.server.close(),
  ]);
});

async function startCountingOrigin(): Promise<CountingOrigin> {
  const server = createServer();
  const state: CountingOrigin = {
    port: 0,
    server,
    active: 0,
    maxActive: 0,
    maxSockets: 0,
    served: [],
    sockets: new Set(),
  };
  server.on('connection', (socket: Socket) => {
    state.sockets.add(socket);
    state.maxSockets = Math.max(state.maxSockets, state.sockets.size);
    socket.once('close', () => state.sockets.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    state.active++;
    state.maxActive = Math.max(state.maxActive, state.active);
    req.resume();
    // Answered on a later turn of the event loop, so that requests sent at once overlap here.
    setImmediate(() => {
      state.served.push(req.url ?? '');
      const body = `body ${req.url ?? ''}`;
      res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
      res.end(body, () => state.active--);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return Object.assign(state, { port: (server.address() as AddressInfo).port });
}

async function startHolder(): Promise<Holder> {
  const spoke: { socket: Socket; first: Buffer }[] = [];
  const waiters: ((value: { socket: Socket; first: Buffer }) => void)[] = [];
  const server = await startTcpServer((socket) => {
    socket.once('data', (first: Buffer) => {
      const waiter = waiters.shift();
      if (waiter) waiter({ socket, first });
      else spoke.push({ socket, first });
    });
  });
  return {
    server,
    next() {
      const ready = spoke.shift();
      if (ready) return Promise.resolve(ready);
      return within(
        new Promise((resolve) => waiters.push(resolve)),
        5000,
        'a request at the holding server',
      );
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Resolves when the peer of `socket` has closed (FIN or reset), or fails after `ms`. */
function closedWithin(socket: Socket, ms: number, what: string): Promise<void> {
  if (socket.readableEnded || socket.closed) return Promise.resolve();
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  return within(ended, ms, what);
}

async function open(port: number): Promise<RawClient> {
  const client = await rawConnect(port);
  clients.push(client);
  return client;
}

type Answer = HttpAnswer;

const sessionFor =
  (target: string) =>
  (line: LogLine): boolean =>
    line.msg === 'session' && line.target === target;

const local = (port: number): string => `127.0.0.1:${port}`;
const upgradeHead = (target: string, path = '/'): string =>
  `GET http://${target}${path} HTTP/1.1\r\nHost: ${target}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;

// Pipelining

test('200 pipelined requests reach the origin one at a time and are answered in order', async () => {
  const target = local(counting.port);
  const count = 200;
  counting.maxActive = 0;
  counting.maxSockets = 0;
  counting.served = [];
  const client = await open(g.port('web'));
  let requests = '';
  for (let i = 0; i < count; i++) {
    requests += `GET http://${target}/p${i} HTTP/1.1\r\nHost: ${target}\r\n\r\n`;
  }
  client.write(requests);
  for (let i = 0; i < count; i++) {
    const answer = await readAnswer(client);
    assert.equal(answer.status, 200, `answer ${i}`);
    assert.equal(answer.body, `body /p${i}`);
  }
  assert.equal(counting.maxActive, 1, 'requests of one client connection overlapped');
  assert.equal(counting.maxSockets, 1, 'one client connection opened several origin connections');
  assert.deepEqual(
    counting.served,
    Array.from({ length: count }, (_, i) => `/p${i}`),
  );
  client.socket.destroy();
  // Kept-alive origin connections are closed after 4 s unused: none outlives that.
  await eventually(
    () => counting.sockets.size === 0,
    () => `${counting.sockets.size} origin connections still open`,
    10_000,
  );
});

test('requests pipelined behind one the origin holds never reach it, and go when the client does', async () => {
  const target = local(holder.server.port);
  const before = holder.server.sockets.length;
  const client = await open(g.port('web'));
  let requests = '';
  for (let i = 0; i < 20; i++) {
    requests += `GET http://${target}/held${i} HTTP/1.1\r\nHost: ${target}\r\n\r\n`;
  }
  client.write(requests);
  const { socket, first } = await holder.next();
  assert.match(first.toString('latin1'), /^GET \/held0 HTTP\/1\.1\r\n/);
  client.socket.destroy();
  await closedWithin(socket, PROMPTLY_MS, 'the origin connection closing with the client');
  assert.equal(holder.server.sockets.length - before, 1, 'one origin connection for 20 requests');
  const line = await g.waitForLog(sessionFor(target));
  assert.equal(line.result, 'CLIENT_CLOSED');
});

test('a CONNECT pipelined behind a request is answered after it, then tunnels', async () => {
  const echo = await startTcpServer((socket) => socket.pipe(socket));
  try {
    const target = local(counting.port);
    const client = await open(g.port('web'));
    client.write(
      `GET http://${target}/before-connect HTTP/1.1\r\nHost: ${target}\r\n\r\n` +
        `CONNECT ${local(echo.port)} HTTP/1.1\r\n\r\n`,
    );
    const answer = await readAnswer(client);
    assert.equal(answer.body, 'body /before-connect');
    assert.equal(
      (await client.readUntil('\r\n\r\n')).toString(),
      'HTTP/1.1 200 Connection Established\r\n\r\n',
    );
    client.write('through');
    assert.equal((await client.read(7)).toString(), 'through');
  } finally {
    await echo.close();
  }
});

test('a malformed request pipelined behind good ones is answered 400 after them', async () => {
  const target = local(counting.port);
  const client = await open(g.port('web'));
  client.write(
    `GET http://${target}/first HTTP/1.1\r\nHost: ${target}\r\n\r\n` +
      `GET http://${target}/second HTTP/1.1\r\nHost: ${target}\r\n\r\n` +
      'NOT HTTP AT ALL\r\n\r\n',
  );
  assert.equal((await readAnswer(client)).body, 'body /first');
  assert.equal((await readAnswer(client)).body, 'body /second');
  const refused = await readAnswer(client);
  assert.equal(refused.status, 400);
  assert.match(refused.body, /^400 Bad Request: malformed request/);
  await client.closed();
});

test(`a connection with ${MAX_WAITING} requests waiting is no longer read`, async () => {
  const turns = createTurns();
  let parsed = 0;
  let serverSide: Socket | undefined;
  const server = createServer((req) => {
    parsed++;
    serverSide = req.socket;
    // The first request is never over: every later one waits.
    turns.take(req.socket, () => new Promise<void>(() => undefined));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  try {
    await once(client, 'connect');
    const request = 'GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n';
    const batch = request.repeat(1000);
    const total = 1000;
    for (let i = 0; i < total; i++) client.write(batch);
    await eventually(
      () => parsed >= MAX_WAITING,
      () => `${parsed} parsed`,
    );
    // Reading has stopped once the server side reads nothing more for a while; a server still
    // reading would go on through all the requests sent.
    let last = -1;
    let quietPolls = 0;
    await eventually(
      () => {
        const read = serverSide?.bytesRead ?? 0;
        quietPolls = read === last ? quietPolls + 1 : 0;
        last = read;
        return quietPolls >= 20;
      },
      () => `still reading: ${last} bytes`,
      10_000,
    );
    // What one read brings in is parsed whole (64 KiB), nothing after it.
    const oneRead = Math.ceil((64 * 1024) / request.length);
    assert.ok(parsed <= MAX_WAITING + 1 + oneRead, `${parsed} requests parsed`);
    assert.ok(last < 1024 * 1024, `${last} bytes read`);
  } finally {
    client.destroy();
    server.closeAllConnections();
    server.close();
  }
});

// A client that leaves

test('a client leaving while the origin holds its request closes the origin connection at once', async () => {
  const target = local(holder.server.port);
  const client = await open(g.port('web'));
  client.write(`GET http://${target}/hold HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const { socket } = await holder.next();
  client.socket.destroy();
  await closedWithin(socket, PROMPTLY_MS, 'the origin connection closing');
  const line = await g.waitForLog((l) => sessionFor(target)(l) && l.result !== undefined);
  assert.equal(line.result, 'CLIENT_CLOSED');
});

test('a client leaving before its CONNECT is answered closes the upstream connection at once', async () => {
  const target = local(counting.port);
  const client = await open(g.port('via-holder'));
  client.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const { socket, first } = await holder.next();
  assert.match(first.toString('latin1'), new RegExp(`^CONNECT ${target} HTTP/1\\.1\\r\\n`));
  client.socket.destroy();
  await closedWithin(socket, PROMPTLY_MS, 'the upstream proxy connection closing');
  const line = await g.waitForLog((l) => sessionFor(target)(l) && l.protocol === 'connect');
  assert.equal(line.result, 'CLIENT_CLOSED');
});

test('a client leaving while an Upgrade waits for the origin closes the origin connection at once', async () => {
  const target = local(holder.server.port);
  const client = await open(g.port('web'));
  client.write(upgradeHead(target, '/upgrade-leave'));
  const { socket, first } = await holder.next();
  assert.match(first.toString('latin1'), /^GET \/upgrade-leave HTTP\/1\.1\r\n/);
  client.socket.destroy();
  await closedWithin(socket, PROMPTLY_MS, 'the origin connection closing');
  const line = await g.waitForLog(sessionFor(target));
  assert.equal(line.result, 'CLIENT_CLOSED');
});

test('bytes a client sends while its tunnel is being dialled are kept for the tunnel, in order', async () => {
  const server = await startTcpServer(() => undefined);
  const client = connect({ port: server.port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  try {
    await once(client, 'connect');
    await eventually(
      () => server.sockets.length === 1,
      () => 'no connection',
    );
    const socket = server.sockets[0]!;
    let left = false;
    const waiting = watchWaitingClient(socket, () => (left = true));
    client.write('early ');
    client.write('bytes');
    await eventually(
      () => socket.bytesRead === 11,
      () => `${socket.bytesRead} bytes read`,
    );
    waiting.release();
    client.write(' later');
    const chunks: Buffer[] = [];
    // Left paused, as the relay finds it (its pipe resumes it).
    assert.equal(socket.isPaused(), true);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await eventually(
      () => Buffer.concat(chunks).length === 17,
      () => Buffer.concat(chunks).toString(),
    );
    assert.equal(Buffer.concat(chunks).toString(), 'early bytes later');
    assert.equal(left, false);
  } finally {
    client.destroy();
    await server.close();
  }
});

// Upgrade deadlines

test('an Upgrade the origin does not answer within connect_timeout gets 504 and both sides close', async () => {
  const target = local(holder.server.port);
  const client = await open(quick.port());
  client.write(upgradeHead(target, '/upgrade-silent'));
  const { socket } = await holder.next();
  const answer = await readAnswer(client, 5000);
  assert.equal(answer.status, 504);
  assert.match(answer.head, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  assert.match(answer.body, /^504 Gateway Timeout: .*upgrade/);
  await client.closed();
  await closedWithin(socket, PROMPTLY_MS, 'the origin connection closing');
  const line = await quick.waitForLog(sessionFor(target));
  assert.equal(line.result, 'CONNECT_TIMEOUT');
});

test('an upgraded connection with no traffic is closed after idle_timeout', async () => {
  const silent = await startTcpServer((socket) => {
    socket.once('data', () =>
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      ),
    );
  });
  try {
    const target = local(silent.port);
    const client = await open(quick.port());
    client.write(upgradeHead(target));
    assert.match((await client.readUntil('\r\n\r\n')).toString(), /^HTTP\/1\.1 101 /);
    await client.closed(5000);
    const line = await quick.waitForLog(sessionFor(target));
    assert.equal(line.result, 'IDLE_TIMEOUT');
  } finally {
    await silent.close();
  }
});

test('a refused Upgrade whose origin stalls mid-answer is cut after idle_timeout', async () => {
  const stalled = await startTcpServer((socket) => {
    socket.once('data', () =>
      socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\npartial'),
    );
  });
  try {
    const target = local(stalled.port);
    const client = await open(quick.port());
    client.write(upgradeHead(target));
    await client.readUntil('partial');
    await client.closed(5000);
    await closedWithin(stalled.sockets[0]!, PROMPTLY_MS, 'the origin connection closing');
    const line = await quick.waitForLog(sessionFor(target));
    assert.equal(line.result, 'IDLE_TIMEOUT');
  } finally {
    await stalled.close();
  }
});

test('an Upgrade request with a body answers 400 and reaches no origin', async () => {
  const target = local(holder.server.port);
  const before = holder.server.sockets.length;
  const client = await open(g.port('web'));
  client.write(
    `GET http://${target}/upgrade-body HTTP/1.1\r\nHost: ${target}\r\nConnection: Upgrade\r\n` +
      'Upgrade: websocket\r\nContent-Length: 5\r\n\r\nhello',
  );
  const answer = await readAnswer(client);
  assert.equal(answer.status, 400);
  await client.closed();
  assert.equal(holder.server.sockets.length, before);
});

// Framing cannot be removed by Connection

/** Sends `request` on a new connection; resolves with the answer and what the origin saw. */
async function forwardOnce(request: string, marker: string): Promise<Answer> {
  const client = await open(g.port('web'));
  client.write(request);
  const answer = await readAnswer(client);
  client.socket.destroy();
  assert.ok(
    origin.requests.some((r) => r.url.includes(marker)),
    `the origin never saw ${marker}`,
  );
  return answer;
}

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n';

test('Connection: content-length cannot unframe a body: the origin sees one request, body intact', async () => {
  const target = local(origin.port);
  for (const method of ['GET', 'POST', 'DELETE']) {
    const marker = `/echo?cl-${method}`;
    const answer = await forwardOnce(
      `${method} http://${target}${marker} HTTP/1.1\r\nHost: ${target}\r\nConnection: Content-Length\r\n` +
        `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
      marker,
    );
    assert.equal(answer.status, 200, method);
    const seen = origin.requests.filter((r) => r.url === marker);
    assert.equal(seen.length, 1, method);
    assert.equal(seen[0]!.body.toString('latin1'), SMUGGLED, method);
    assert.equal(seen[0]!.headers.host, target);
    assert.equal(seen[0]!.headers['content-length'], String(SMUGGLED.length));
  }
  assert.ok(!origin.requests.some((r) => r.url === '/smuggled'), 'a smuggled request got through');
});

test('Connection: transfer-encoding cannot unframe a chunked body', async () => {
  const target = local(origin.port);
  const marker = '/echo?te';
  const chunk = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
  const answer = await forwardOnce(
    `GET http://${target}${marker} HTTP/1.1\r\nHost: ${target}\r\nConnection: transfer-encoding\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${chunk}`,
    marker,
  );
  assert.equal(answer.status, 200);
  const seen = origin.requests.filter((r) => r.url === marker);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.body.toString('latin1'), SMUGGLED);
  // Framed again on this hop: chunked, or with its length when all of it has arrived already.
  const { headers } = seen[0]!;
  assert.ok(
    headers['transfer-encoding'] === 'chunked' ||
      headers['content-length'] === `${Buffer.byteLength(SMUGGLED)}`,
    JSON.stringify(headers),
  );
  assert.ok(!origin.requests.some((r) => r.url === '/smuggled'), 'a smuggled request got through');
});

test('Connection: host cannot remove Host: the origin sees the URL authority', async () => {
  const target = local(origin.port);
  const marker = '/tiny?conn-host';
  const answer = await forwardOnce(
    `GET http://${target}${marker} HTTP/1.1\r\nHost: evil.example\r\nConnection: host\r\n\r\n`,
    marker,
  );
  assert.equal(answer.status, 200);
  const seen = origin.requests.filter((r) => r.url === marker);
  assert.equal(seen.length, 1);
  assert.deepEqual(
    seen[0]!.rawHeaders
      .filter((_, i) => i % 2 === 0 && _.toLowerCase() === 'host')
      .map((name) => name.toLowerCase()),
    ['host'],
  );
  assert.equal(seen[0]!.headers.host, target);
});

test('a request with both Content-Length and Transfer-Encoding answers 400 and reaches no origin', async () => {
  const target = local(origin.port);
  const before = origin.requests.length;
  const client = await open(g.port('web'));
  client.write(
    `POST http://${target}/echo?both HTTP/1.1\r\nHost: ${target}\r\nContent-Length: 4\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  );
  const answer = await readAnswer(client);
  assert.equal(answer.status, 400);
  assert.match(answer.head, /\r\nConnection: close\r\n/);
  await client.closed();
  assert.equal(origin.requests.length, before);
});

test("the origin's Connection: content-length does not strip the response's framing", async () => {
  const server = await startTcpServer((socket) => {
    socket.once('data', () =>
      socket.write(
        'HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello',
      ),
    );
  });
  try {
    const target = local(server.port);
    const client = await open(g.port('web'));
    client.write(`GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    const head = (await client.readUntil('\r\n\r\n')).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nContent-Length: 5\r\n/);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.equal((await client.read(5)).toString(), 'hello');
  } finally {
    await server.close();
  }
});

// Retries

/**
 * An origin whose first connection answers its first request, then closes without answering
 * when the second arrives on it (as a server whose keep-alive timeout just passed). Every
 * other connection answers everything.
 */
async function startClosingOrigin(): Promise<{ server: TcpServer; seen: string[] }> {
  const seen: string[] = [];
  let connections = 0;
  const server = await startTcpServer((socket) => {
    const index = connections++;
    let buffered = '';
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        seen.push(head.split(' ', 2).join(' '));
        if (index === 0 && answered === 1) {
          socket.destroy();
          return;
        }
        answered++;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n');
      }
    });
  });
  return { server, seen };
}

for (const [method, retried] of [
  ['POST', false],
  ['GET', true],
] as const) {
  test(`a bodyless ${method} on a kept-alive connection the origin closes is ${retried ? '' : 'not '}sent again`, async () => {
    const { server, seen } = await startClosingOrigin();
    try {
      const target = local(server.port);
      const client = await open(g.port('web'));
      client.write(`GET http://${target}/prime HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      assert.equal((await readAnswer(client)).status, 200);
      client.write(
        `${method} http://${target}/again HTTP/1.1\r\nHost: ${target}\r\nContent-Length: 0\r\n\r\n`,
      );
      const answer = await readAnswer(client);
      const sent = seen.filter((line) => line === `${method} /again`).length;
      if (retried) {
        assert.equal(answer.status, 200);
        assert.equal(sent, 2);
      } else {
        assert.equal(answer.status, 502);
        assert.equal(sent, 1);
      }
    } finally {
      await server.close();
    }
  });
}

// Forwarding loops

/** The Via entry this process adds, read from what the origin received. */
async function ownVia(): Promise<string> {
  const target = local(origin.port);
  await forwardOnce(`GET http://${target}/tiny?via HTTP/1.1\r\nHost: x\r\n\r\n`, '/tiny?via');
  const via = origin.requests.find((r) => r.url === '/tiny?via')?.headers.via ?? '';
  const entry = /^1\.1 junction-[0-9a-f]{8}$/.exec(via)?.[0];
  assert.ok(entry, `Via "${via}" is not "1.1 junction-<8 hex>"`);
  return entry;
}

test('Via carries a per-listener token: 1.1 junction-<8 hex>, appended to the list received', async () => {
  const entry = await ownVia();
  const target = local(origin.port);
  const answer = await forwardOnce(
    `GET http://${target}/tiny?via-list HTTP/1.1\r\nHost: x\r\nVia: 1.0 first\r\nVia: 1.1 second\r\n\r\n`,
    '/tiny?via-list',
  );
  assert.match(answer.head, new RegExp(`\\r\\nVia: ${entry}\\r\\n`));
  const seen = origin.requests.find((r) => r.url === '/tiny?via-list');
  assert.equal(seen?.headers.via, `1.0 first, 1.1 second, ${entry}`);
});

test('a CONNECT to an upstream proxy carries the Via list received, with our entry', async () => {
  const target = local(counting.port);
  const client = await open(g.port('via-holder'));
  client.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nVia: 1.1 downstream\r\n\r\n`);
  const { first } = await holder.next();
  const via = /\r\nVia: ([^\r]*)\r\n/.exec(first.toString('latin1'))?.[1];
  assert.match(via ?? '', /^1\.1 downstream, 1\.1 junction-[0-9a-f]{8}$/);
  // Each listener has its own token: this one is not the web inbound's.
  assert.ok(!via?.endsWith(await ownVia()), 'two listeners share a Via token');
  client.socket.destroy();
});

test('a request, CONNECT or Upgrade carrying our own Via token is refused 403 and dials nothing', async () => {
  const entry = await ownVia();
  const token = entry.slice(4);
  const target = local(holder.server.port);
  const before = holder.server.sockets.length;
  const requests = [
    `GET http://${target}/looped HTTP/1.1\r\nHost: x\r\nVia: 1.0 other, 1.1 ${token}\r\n\r\n`,
    `CONNECT ${target} HTTP/1.1\r\nVia: 1.1 ${token.toUpperCase()} (junction)\r\n\r\n`,
    `GET http://${target}/looped-up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
      `Via: 1.1 a\r\nVia: 1.1 ${token}, 1.1 b\r\n\r\n`,
  ];
  for (const request of requests) {
    const client = await open(g.port('web'));
    client.write(request);
    const answer = await readAnswer(client);
    assert.equal(answer.status, 403, request);
    assert.match(answer.body, /^403 Forbidden: forwarding loop/);
    client.socket.destroy();
  }
  assert.equal(holder.server.sockets.length, before, 'a looped request was dialled');
  const refused = g.sessions().filter((l) => l.target === target && l.result === 'FORWARDING_LOOP');
  assert.equal(refused.length, 3);
});

test('two gateways forwarding to each other stop at once with 403 forwarding loop', async () => {
  // B's outbound reaches A through a counting relay: every connection the loop opens is seen.
  let relayed = 0;
  let aPort = 0;
  const relay = await startTcpServer((socket) => {
    relayed++;
    const onward = connect({ port: aPort, host: '127.0.0.1' });
    onward.on('error', () => socket.destroy());
    socket.pipe(onward).pipe(socket);
    socket.once('close', () => onward.destroy());
  });
  const limits = { connect_timeout: '2s', idle_timeout: '5s' };
  const b = await startGateway({
    limits,
    inbounds: [{ name: 'b', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [{ name: 'to-a', url: `http://127.0.0.1:${relay.port}` }],
    rules: [{ outbound: 'to-a' }],
  });
  const a = await startGateway({
    limits,
    inbounds: [{ name: 'a', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [{ name: 'to-b', url: `http://127.0.0.1:${b.port()}` }],
    rules: [{ outbound: 'to-b' }],
  });
  aPort = a.port();
  try {
    const target = local(origin.port);
    const plain = await open(a.port());
    plain.write(`GET http://${target}/loop HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    const answer = await readAnswer(plain, 10_000);
    assert.equal(answer.status, 403);
    assert.match(answer.body, /forwarding loop/);
    const tunnel = await open(a.port());
    tunnel.write(`CONNECT ${target} HTTP/1.1\r\n\r\n`);
    const refused = await readAnswer(tunnel, 10_000);
    assert.ok(refused.status === 403 || refused.status === 502, `CONNECT got ${refused.status}`);
    assert.ok(relayed <= 2, `the loop opened ${relayed} connections`);
    const looped = [...a.sessions(), ...b.sessions()].filter((l) => l.result === 'FORWARDING_LOOP');
    assert.equal(looped.length, 2);
    assert.ok(!origin.requests.some((r) => r.url === '/loop'));
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await relay.close();
  }
});

test('a request the proxy cannot serve gets 400 with its reason and a log line, and reaches no origin', async () => {
  const target = local(counting.port);
  const cases: readonly [string, RegExp][] = [
    [`GET http://${target}/no-host HTTP/1.1\r\n\r\n`, /needs a Host field/],
    ['GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n', /send absolute-form requests/],
    [`GET ftp://${target}/ HTTP/1.1\r\nHost: x\r\n\r\n`, /unsupported scheme "ftp"/],
    ['CONNECT nowhere HTTP/1.1\r\nHost: nowhere\r\n\r\n', /bad CONNECT authority/],
  ];
  const served = counting.served.length;
  for (const [request, reason] of cases) {
    const client = await open(g.port('web'));
    const logged = g.logs.length;
    client.write(request);
    const answer = await readAnswer(client);
    assert.equal(answer.status, 400, request);
    assert.match(answer.body, reason);
    assert.ok(
      g.logs
        .slice(logged)
        .some((l) => l.msg === 'http: bad request' && reason.test(String(l.reason))),
      `a log line for ${JSON.stringify(request)}`,
    );
    client.socket.destroy();
  }
  assert.equal(counting.served.length, served, 'no origin saw any of them');
});

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { syncBuiltinESMExports } from 'node:module';
import { connect, Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { hashPassword } from '../../src/auth.js';
import {
  configFrom,
  startGateway,
  type LogLine,
  type TestGateway,
  withGateway,
} from '../helpers/gateway.js';
import {
  rawConnect,
  startHttpOrigin,
  startTcpServer,
  type HttpOrigin,
  type RawClient,
} from '../helpers/net.js';
import { socks5Connect, socks5Request } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';

/**
 * Clients a gateway exposed on a LAN meets: strangers outside `allow` guessing passwords, clients
 * that drip their handshake, load-balancer probes, and an operator who reloads and stops.
 */

const PASSWORD = 's3cret';
const ALICE = { username: 'alice', password: PASSWORD };
const BOB = { username: 'bob', password: 'b0b-password' };

let origin: HttpOrigin;
const sockets = new Set<Socket>();

before(async () => {
  origin = await startHttpOrigin();
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await origin.close();
});

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s/g, ''), 'hex');
const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function open(port: number): Promise<RawClient> {
  const client = await rawConnect(port);
  sockets.add(client.socket);
  return client;
}

/** Sends `bytes` on a new connection and resolves with everything received until the close. */
async function answerTo(port: number, bytes: Buffer | string): Promise<Buffer> {
  const client = await open(port);
  client.write(bytes);
  return client.readToEnd();
}

/** RFC 1929 §2 sub-negotiation bytes. */
function credentials(username: string, password: string): Buffer {
  const user = Buffer.from(username);
  const pass = Buffer.from(password);
  return Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]);
}

/** Resolves with the milliseconds `promise` took, or rejects once `boundMs` has passed. */
async function timed(promise: Promise<unknown>, boundMs: number, what: string): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${boundMs}ms`)), boundMs);
  });
  try {
    await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
  return Date.now() - started;
}

const infoLinesOf = (g: TestGateway, client: string): LogLine[] =>
  g.logs.filter((l) => l.client === client && typeof l.level === 'number' && l.level >= 30);

// ---------------------------------------------------------------------------------------------
// `allow` comes before anything secret

/** Counts scrypt derivations in this process while `body` runs. */
async function countScrypt(body: () => Promise<void>): Promise<number> {
  const original = crypto.scrypt;
  let calls = 0;
  crypto.scrypt = ((...args: Parameters<typeof original>) => {
    calls++;
    original(...args);
  }) as typeof original;
  syncBuiltinESMExports();
  try {
    await body();
  } finally {
    crypto.scrypt = original;
    syncBuiltinESMExports();
  }
  return calls;
}

test('SOCKS5 from outside `allow`: right, wrong and unknown credentials get the same bytes, and no password is checked', async () => {
  const hashed = { username: 'carol', password_hash: await hashPassword('carol-pw') };
  const users = [ALICE, hashed];
  const inbound = { type: 'socks', listen: '127.0.0.1:0', auth: { users } };
  await withGateway(
    {
      inbounds: [
        { ...inbound, name: 'outside', allow: ['10.0.0.0/8'] },
        { ...inbound, name: 'inside' },
      ],
    },
    async (g) => {
      const connectTo = socks5Request('127.0.0.1', origin.port);
      const attempt = (user: string, password: string): Promise<Buffer> =>
        answerTo(
          g.port('outside'),
          Buffer.concat([hex('05 01 02'), credentials(user, password), connectTo]),
        );
      let answers: Buffer[] = [];
      const checks = await countScrypt(async () => {
        answers = [
          await attempt('alice', PASSWORD),
          await attempt('alice', 'wrong'),
          await attempt('carol', 'carol-pw'),
          await attempt('carol', 'wrong'),
          await attempt('mallory', PASSWORD),
        ];
      });
      // Method as usual, the sub-negotiation answered without a check, the request refused 0x02.
      const expected = '0502' + '0100' + '05020001000000000000';
      for (const answer of answers) assert.equal(answer.toString('hex'), expected);
      assert.equal(checks, 0, 'no scrypt derivation for a client outside allow');
      // The same hashed user from inside allow costs a derivation: the count above is real.
      const inside = await countScrypt(async () => {
        const good = await socks5Connect(g.port('inside'), '127.0.0.1', origin.port, {
          username: 'carol',
          password: 'carol-pw',
        });
        assert.equal(good.reply, 0x00);
        good.client.socket.destroy();
      });
      assert.ok(inside > 0, 'a client inside allow has its password checked');
      const refused = g.sessions().filter((l) => l.result === 'NOT_ALLOWED');
      assert.equal(refused.length, answers.length);
      assert.ok(
        refused.every((l) => l.user === undefined),
        'an unchecked user name is not logged as the user',
      );
    },
  );
});

test('SOCKS5 from outside `allow` is refused 0x02 for every command, UDP ASSOCIATE included', async () => {
  await withGateway(
    {
      inbounds: [{ name: 'outside', type: 'socks', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] }],
    },
    async (g) => {
      for (const command of [0x01, 0x02, 0x03]) {
        const request = socks5Request('127.0.0.1', origin.port, command);
        const answer = await answerTo(g.port(), Buffer.concat([hex('05 01 00'), request]));
        assert.equal(answer.toString('hex'), '0500' + '05020001000000000000', `command ${command}`);
      }
    },
  );
});

test('SOCKS4 from outside `allow` answers 0x5B, with auth on or off', async () => {
  await withGateway(
    {
      inbounds: [
        { name: 'plain', type: 'socks', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
        {
          name: 'auth',
          type: 'socks',
          listen: '127.0.0.1:0',
          allow: ['10.0.0.0/8'],
          auth: { users: [ALICE] },
        },
      ],
    },
    async (g) => {
      const port = Buffer.from([origin.port >> 8, origin.port & 0xff]);
      const request = Buffer.concat([hex('04 01'), port, hex('7f000001 616c69636500')]);
      for (const inbound of ['plain', 'auth']) {
        const answer = await answerTo(g.port(inbound), request);
        assert.equal(answer.toString('hex'), '005b000000000000', inbound);
      }
      await eventually(() => g.sessions().length === 2, 'two session lines');
      assert.deepEqual(
        g.sessions().map((l) => l.result),
        ['NOT_ALLOWED', 'NOT_ALLOWED'],
      );
    },
  );
});

test('HTTP from outside `allow`: 403 before any 407, the same bytes whatever the credentials', async () => {
  await withGateway(
    {
      inbounds: [
        {
          name: 'outside',
          type: 'http',
          listen: '127.0.0.1:0',
          allow: ['10.0.0.0/8'],
          auth: { users: [ALICE] },
        },
      ],
    },
    async (g) => {
      const headers = [
        '',
        `Proxy-Authorization: ${basic('alice', PASSWORD)}\r\n`,
        `Proxy-Authorization: ${basic('alice', 'wrong')}\r\n`,
        `Proxy-Authorization: ${basic('mallory', PASSWORD)}\r\n`,
      ];
      for (const [line, requestOf] of [
        ['GET', (h: string) => `GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n${h}\r\n`],
        ['CONNECT', (h: string) => `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n${h}\r\n`],
      ] as const) {
        const answers: string[] = [];
        for (const header of headers) {
          const client = await open(g.port());
          client.write(requestOf(header));
          const head = (await client.readUntil('\r\n\r\n')).toString('latin1');
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          const body = (await client.read(length)).toString('latin1');
          // The Date header is the only part allowed to differ.
          answers.push(head.replace(/\r\nDate: [^\r]*/i, '') + body);
          client.socket.destroy();
        }
        assert.match(answers[0] ?? '', /^HTTP\/1\.1 403 Forbidden\r\n/, line);
        assert.doesNotMatch(answers[0] ?? '', /Proxy-Authenticate/i, line);
        for (const answer of answers) assert.equal(answer, answers[0], line);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// The handshake deadline is absolute

/**
 * Sends `bytes` one byte every `everyMs` until the gateway closes the connection; resolves with
 * how long that took from the connect and what the gateway sent. Bounded by `boundMs`.
 */
async function drip(
  port: number,
  bytes: Buffer,
  boundMs: number,
  everyMs = 100,
): Promise<{ ms: number; received: Buffer; sent: number }> {
  const socket = connect({ port, host: '127.0.0.1' });
  sockets.add(socket);
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const started = Date.now();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < bytes.length && socket.writable) socket.write(bytes.subarray(sent, ++sent));
  }, everyMs);
  try {
    await timed(
      new Promise<void>((resolve) => {
        socket.once('end', resolve);
        socket.once('close', resolve);
      }),
      boundMs,
      'the gateway closing a dripping client',
    );
  } finally {
    clearInterval(timer);
    socket.destroy();
  }
  return { ms: Date.now() - started, received: Buffer.concat(chunks), sent };
}

const HANDSHAKE_MS = 500;
/** Timers on a loaded machine run late; the old idle timer let a drip go on for seconds. */
const MARGIN_MS = 450;

/** A SOCKS5 greeting and a request for a long name: about five seconds at 10 bytes a second. */
const SOCKS5_DRIP = Buffer.concat([
  hex('05 01 00'),
  socks5Request('a-name-long-enough-to-drip-for-seconds.invalid', 80),
]);
const HTTP_DRIP = Buffer.from(
  'GET http://drip.invalid/ HTTP/1.1\r\nHost: drip.invalid\r\nX-Slow: one byte at a time\r\n\r\n',
);

for (const type of ['socks', 'mixed'] as const) {
  test(`a client dripping a SOCKS5 handshake is closed handshake_timeout after accept (${type})`, async () => {
    await withGateway(
      {
        limits: { handshake_timeout: `${HANDSHAKE_MS}ms` },
        inbounds: [{ name: 'in', type, listen: '127.0.0.1:0' }],
      },
      async (g) => {
        const { ms, received, sent } = await drip(g.port(), SOCKS5_DRIP, 5000);
        assert.ok(ms >= HANDSHAKE_MS - 50, `closed after ${ms}ms`);
        assert.ok(ms < HANDSHAKE_MS + MARGIN_MS, `closed after ${ms}ms`);
        assert.ok(sent < SOCKS5_DRIP.length, 'the request never completed');
        // The greeting was answered; the request never was.
        assert.equal(received.toString('hex'), '0500');
        await eventually(() => g.gateway.activeConnections === 0, 'the socket released');
      },
    );
  });
}

for (const type of ['http', 'mixed'] as const) {
  test(`a client dripping an HTTP request head gets 408 or a close within handshake_timeout (${type})`, async () => {
    await withGateway(
      {
        limits: { handshake_timeout: `${HANDSHAKE_MS}ms` },
        inbounds: [{ name: 'in', type, listen: '127.0.0.1:0' }],
      },
      async (g) => {
        const { ms, received, sent } = await drip(g.port(), HTTP_DRIP, 5000);
        assert.ok(ms >= HANDSHAKE_MS - 50, `closed after ${ms}ms`);
        assert.ok(ms < HANDSHAKE_MS + MARGIN_MS, `closed after ${ms}ms`);
        assert.ok(sent < HTTP_DRIP.length, 'the head never completed');
        const text = received.toString('latin1');
        assert.ok(text === '' || text.startsWith('HTTP/1.1 408 '), text);
        await eventually(() => g.gateway.activeConnections === 0, 'the socket released');
        assert.equal(g.sessions().length, 0, 'no request was served');
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// A probe is not a session

for (const type of ['socks', 'http', 'mixed'] as const) {
  test(`a probe (connect, then close without a byte) is closed at once and logs no info line (${type})`, async () => {
    await withGateway(
      {
        limits: { handshake_timeout: '10s' },
        inbounds: [{ name: 'in', type, listen: '127.0.0.1:0' }],
      },
      async (g) => {
        const probe = connect({ port: g.port(), host: '127.0.0.1' });
        sockets.add(probe);
        probe.on('error', () => undefined);
        await once(probe, 'connect');
        const client = `127.0.0.1:${probe.localPort}`;
        await eventually(() => g.gateway.activeConnections === 1, 'the probe accepted');
        const closed = once(probe, 'close');
        probe.end();
        await timed(closed, 2000, 'the gateway closing the probe');
        await eventually(() => g.gateway.activeConnections === 0, 'the probe released', 2000);
        // A debug line at most, from the listener, once the socket is gone.
        await g.waitForLog((l) => l.client === client && l.msg === 'closed before sending a byte');
        assert.deepEqual(infoLinesOf(g, client), []);
        assert.equal(g.sessions().length, 0);
      },
    );
  });
}

const HELD_BODY = 'held response\n';

test('stop with a long shutdown_grace returns at once when only probes and idle kept-alive clients remain, and ends a response in flight with its connection', async () => {
  // Answers /held only when released, so a request is in flight while the gateway stops.
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const held = await startTcpServer((socket) => {
    socket.once('data', () => {
      void released.then(() => {
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${HELD_BODY.length}\r\n\r\n${HELD_BODY}`);
      });
    });
  });
  const g = await startGateway({
    limits: { shutdown_grace: '30s', handshake_timeout: '30s' },
    inbounds: [
      { name: 'h', type: 'http', listen: '127.0.0.1:0' },
      { name: 's', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'm', type: 'mixed', listen: '127.0.0.1:0' },
    ],
  });
  try {
    // A silent connection on each inbound (a probe that has not closed yet).
    for (const name of ['h', 's', 'm']) await open(g.port(name));
    // An idle kept-alive client on each HTTP-speaking inbound.
    for (const name of ['h', 'm']) {
      const idle = await open(g.port(name));
      idle.write(`GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match((await idle.readUntil('ok\n')).toString('latin1'), /^HTTP\/1\.1 200 /);
    }
    // A request whose response is still on its way.
    const busy = await open(g.port('h'));
    busy.write(`GET http://127.0.0.1:${held.port}/held HTTP/1.1\r\nHost: x\r\n\r\n`);
    await eventually(() => held.sockets.length === 1, 'the held request at the origin');
    await eventually(() => g.gateway.activeConnections === 6, 'six client connections');

    const stopped = g.gateway.stop();
    // Everything but the request in flight is closed at once.
    await eventually(() => g.gateway.activeConnections === 1, 'only the busy client left', 2000);
    release();
    const answer = (await busy.readToEnd(2000)).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(answer.endsWith(HELD_BODY), answer);
    const ms = await timed(stopped, 3000, 'stop');
    assert.ok(ms < 1000, `stop took ${ms}ms after the last response`);
    assert.equal(g.gateway.activeConnections, 0);
  } finally {
    release();
    await g.stop();
    await held.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Reload revokes

test('a reload removing a user refuses that user from the next session on, in SOCKS5 and HTTP', async () => {
  const inbounds = (users: readonly object[]) => [
    { name: 's', type: 'socks', listen: '127.0.0.1:0', auth: { users } },
    { name: 'h', type: 'http', listen: '127.0.0.1:0', auth: { users } },
  ];
  await withGateway({ inbounds: inbounds([ALICE, BOB]) }, async (g) => {
    const get = (user: { username: string; password: string }) =>
      `GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${basic(user.username, user.password)}\r\n\r\n`;
    const status = async (request: string): Promise<string> => {
      const client = await open(g.port('h'));
      client.write(request);
      const head = (await client.readUntil('\r\n')).toString('latin1');
      client.socket.destroy();
      return head.slice(9, 12);
    };
    const before = await socks5Connect(g.port('s'), '127.0.0.1', origin.port, BOB);
    assert.equal(before.reply, 0x00);
    // A kept-alive HTTP client of bob's, authenticated before the reload.
    const kept = await open(g.port('h'));
    kept.write(get(BOB));
    assert.match((await kept.readUntil('ok\n')).toString('latin1'), /^HTTP\/1\.1 200 /);

    g.gateway.reload(configFrom({ inbounds: inbounds([ALICE]) }));

    const refused = await socks5Connect(g.port('s'), '127.0.0.1', origin.port, BOB);
    assert.equal(refused.replyBytes.toString('hex'), '0101');
    assert.equal(await status(get(BOB)), '407');
    // The next request on bob's kept-alive connection is a new session: refused too.
    kept.write(get(BOB));
    assert.match((await kept.readUntil('\r\n')).toString('latin1'), /^HTTP\/1\.1 407 /);
    // Alice is unaffected, and bob's session from before the reload goes on.
    const alice = await socks5Connect(g.port('s'), '127.0.0.1', origin.port, ALICE);
    assert.equal(alice.reply, 0x00);
    assert.equal(await status(get(ALICE)), '200');
    before.client.write(`GET /tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match((await before.client.readUntil('ok\n')).toString('latin1'), /^HTTP\/1\.1 200 /);
    for (const c of [before, alice, refused]) c.client.socket.destroy();
  });
});

test('a reload changing `allow` applies to the next connection', async () => {
  const inbounds = (allow?: string[]) => [
    { name: 's', type: 'socks', listen: '127.0.0.1:0', ...(allow && { allow }) },
    { name: 'h', type: 'http', listen: '127.0.0.1:0', ...(allow && { allow }) },
  ];
  await withGateway({ inbounds: inbounds() }, async (g) => {
    const first = await socks5Connect(g.port('s'), '127.0.0.1', origin.port);
    assert.equal(first.reply, 0x00);
    g.gateway.reload(configFrom({ inbounds: inbounds(['10.0.0.0/8']) }));
    const socks = await socks5Connect(g.port('s'), '127.0.0.1', origin.port);
    assert.equal(socks.reply, 0x02);
    const http = await answerTo(g.port('h'), `GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(http.toString('latin1'), /^HTTP\/1\.1 403 /);
    g.gateway.reload(configFrom({ inbounds: inbounds(['127.0.0.0/8']) }));
    const again = await socks5Connect(g.port('s'), '127.0.0.1', origin.port);
    assert.equal(again.reply, 0x00);
    for (const c of [first, socks, again]) c.client.socket.destroy();
  });
});

test('what a reload cannot change is logged as a warning naming it, and the listener is kept', async () => {
  const s = { name: 's', type: 'socks', listen: '127.0.0.1:0' };
  const h = { name: 'h', type: 'http', listen: '127.0.0.1:0' };
  await withGateway({ inbounds: [s, h] }, async (g) => {
    g.gateway.reload(
      configFrom({
        inbounds: [
          { ...s, listen: '127.0.0.1:1' },
          { ...h, type: 'mixed', auth: { users: [ALICE] } },
          { name: 'new', type: 'socks', listen: '127.0.0.1:0' },
        ],
      }),
    );
    const warnings = g.logs.filter((l) => l.level === 40);
    const about = (name: string) => warnings.filter((l) => l.inbound === name);
    assert.equal(about('s').length, 1, JSON.stringify(warnings));
    assert.match(String(about('s')[0]?.msg), /listen/);
    assert.equal(about('h').length, 1, JSON.stringify(warnings));
    assert.match(String(about('h')[0]?.msg), /type/);
    assert.equal(about('new').length, 1, JSON.stringify(warnings));
    // The listeners are where they were; what could change (h's users) did.
    const kept = await socks5Connect(g.port('s'), '127.0.0.1', origin.port);
    assert.equal(kept.reply, 0x00);
    kept.client.socket.destroy();
    const client = await open(g.port('h'));
    client.write(`GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match((await client.readUntil('\r\n')).toString('latin1'), /^HTTP\/1\.1 407 /);
    // An inbound missing from the new configuration keeps running, with a warning.
    g.gateway.reload(configFrom({ inbounds: [s] }));
    const removed = g.logs.filter((l) => l.level === 40 && l.inbound === 'h');
    assert.equal(removed.length, 2, JSON.stringify(removed));
  });
});

// ---------------------------------------------------------------------------------------------
// stop() cannot reject

test('stop resolves, and logs, when closing an inbound or the admin endpoint fails', async () => {
  const g = await startGateway({
    admin: { listen: '127.0.0.1:0' },
    inbounds: [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }],
  });
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back below, never called
  const close = Server.prototype.close;
  Server.prototype.close = function failingClose(): never {
    throw new Error('close failed');
  };
  try {
    await timed(g.gateway.stop(0), 3000, 'stop');
  } finally {
    Server.prototype.close = close;
  }
  const failures = g.logs.filter((l) => l.level === 50);
  assert.ok(failures.length >= 2, JSON.stringify(g.logs.slice(-5)));
  await g.stop();
});

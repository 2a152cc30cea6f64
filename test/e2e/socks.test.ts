import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeSocks5Request } from '../../src/inbound/socks-codec.js';
import { parseHost, type Target } from '../../src/target.js';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import * as net from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';

const PASSWORD = 's3cret';
const WRONG_PASSWORD = 'n0t-the-password';

let origin: net.HttpOrigin;
let origin6: net.HttpOrigin;
/** Reads the client's bytes to their end, then answers what it got and ends: half-close. */
let halfCloseOrigin: net.TcpServer;
let g: TestGateway;
const clients: net.RawClient[] = [];
/** Each client's local port, kept because a closed socket forgets it. */
const localPorts = new Map<Socket, number>();

before(async () => {
  origin = await net.startHttpOrigin();
  origin6 = await net.startHttpOrigin('::1');
  halfCloseOrigin = await net.startTcpServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).toString()}`));
  });
  const alice = { username: 'alice', password: PASSWORD };
  g = await startGateway({
    inbounds: [
      { name: 's', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'auth', type: 'socks', listen: '127.0.0.1:0', auth: { users: [alice] } },
      { name: 'm', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'lan-only', type: 'socks', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
      { name: 's4', type: 'socks4', listen: '127.0.0.1:0' },
      { name: 's5', type: 'socks5', listen: '127.0.0.1:0' },
    ],
    rules: [{ domain: ['blocked.test'], outbound: 'reject' }],
  });
});

after(async () => {
  for (const client of clients) client.socket.destroy();
  await g.stop();
  await Promise.all([origin.close(), origin6.close(), halfCloseOrigin.close()]);
});

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s/g, ''), 'hex');
const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });
const connect5 = (host: string, port: number) => encodeSocks5Request('connect', target(host, port));
const portBytes = (port: number) => Buffer.from([port >> 8, port & 0xff]);
const GET_TINY = 'GET /tiny HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n';

async function open(port: number): Promise<net.RawClient> {
  const client = await net.rawConnect(port);
  clients.push(client);
  localPorts.set(client.socket, client.socket.localPort ?? 0);
  return client;
}

/** No-auth greeting, then `request`; resolves with the reply's first `replyLength` bytes. */
async function socks5(port: number, request: Buffer, replyLength = 10) {
  const client = await open(port);
  client.write(hex('05 01 00'));
  assert.equal((await client.read(2)).toString('hex'), '0500');
  client.write(request);
  return { client, reply: await client.read(replyLength) };
}

/**
 * Waits for the gateway to close the connection and returns what it sent before. rawConnect's
 * sockets are half-open, so the gateway's FIN shows as 'end'; we then end our side too.
 */
async function untilClosed(client: net.RawClient): Promise<Buffer> {
  const { socket } = client;
  if (!socket.readableEnded && !socket.destroyed) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the gateway did not close')), 5000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
  }
  socket.end();
  return client.readToEnd();
}

const sessionOf = (socket: Socket) => (line: LogLine) =>
  line.msg === 'session' && line.client === `127.0.0.1:${localPorts.get(socket)}`;

for (const [scheme, host] of [
  ['socks4', '127.0.0.1'],
  ['socks4a', 'localhost'],
  ['socks5', '127.0.0.1'],
  ['socks5h', 'localhost'],
] as const) {
  test(`${scheme.toUpperCase()} CONNECT carries /bulk byte for byte (curl)`, async () => {
    const proxy = `${scheme}://127.0.0.1:${g.port('s')}`;
    const result = await net.curl(['-x', proxy, `http://${host}:${origin.port}/bulk`]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(net.sha256(result.stdout), net.sha256(net.BULK));
  });

  test(`the mixed inbound serves ${scheme.toUpperCase()} (curl)`, async () => {
    const proxy = `${scheme}://127.0.0.1:${g.port('m')}`;
    const result = await net.curl(['-x', proxy, `http://${host}:${origin.port}/tiny`]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout.toString(), 'ok\n');
  });
}

test('SOCKS5 with username/password carries /bulk (curl --proxy-user)', async () => {
  const proxy = `socks5h://127.0.0.1:${g.port('auth')}`;
  const args = ['-x', proxy, '--proxy-user', `alice:${PASSWORD}`, `${origin.url}/bulk`];
  const result = await net.curl(args);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(net.sha256(result.stdout), net.sha256(net.BULK));
  await g.waitForLog((l) => l.msg === 'session' && l.user === 'alice' && l.result === 'ok');
});

test('SOCKS5 with a wrong password fails (curl) and is answered 01 01 then closed', async () => {
  const proxy = `socks5://127.0.0.1:${g.port('auth')}`;
  const args = ['-x', proxy, '--proxy-user', `alice:${WRONG_PASSWORD}`, origin.url];
  assert.notEqual((await net.curl(args)).exitCode, 0);

  const client = await open(g.port('auth'));
  client.write(hex('05 01 02'));
  assert.equal((await client.read(2)).toString('hex'), '0502');
  const password = Buffer.from(WRONG_PASSWORD);
  client.write(
    Buffer.concat([hex('01 05'), Buffer.from('alice'), Buffer.from([password.length]), password]),
  );
  assert.equal((await client.read(2)).toString('hex'), '0101');
  assert.equal((await untilClosed(client)).length, 0);
});

test('SOCKS5 with the right password answers 01 00 and connects (raw)', async () => {
  const client = await open(g.port('auth'));
  client.write(hex('05 02 00 02'));
  assert.equal((await client.read(2)).toString('hex'), '0502');
  client.write(
    Buffer.concat([hex('01 05'), Buffer.from('alice'), hex('06'), Buffer.from(PASSWORD)]),
  );
  assert.equal((await client.read(2)).toString('hex'), '0100');
  client.write(connect5('127.0.0.1', origin.port));
  assert.equal((await client.read(4)).toString('hex'), '05000001');
  client.socket.destroy();
});

test('SOCKS5 offering only no-auth to an auth inbound gets 05 FF', async () => {
  const client = await open(g.port('auth'));
  client.write(hex('05 01 00'));
  assert.equal((await untilClosed(client)).toString('hex'), '05ff');
});

test('SOCKS5 CONNECT answers 0x00 with BND = 127.0.0.1 and the real upstream port', async () => {
  const { client, reply } = await socks5(g.port('s'), connect5('127.0.0.1', halfCloseOrigin.port));
  assert.equal(reply.subarray(0, 8).toString('hex'), '050000017f000001');
  assert.equal(reply.readUInt16BE(8), halfCloseOrigin.sockets.at(-1)!.remotePort);
  client.socket.end();
  assert.equal((await client.readToEnd()).toString(), 'got ');
});

/** SPEC "SOCKS5 replies": each failure the direct outbound can produce, and the logged result. */
// prettier-ignore
const FAILURES: readonly (readonly [string, string, () => Buffer | Promise<Buffer>, string, string?])[] = [
  ['SOCKS5 CONNECT to a domain the rules reject answers 0x02', 's', () => connect5('blocked.test', 80), '02', 'RULE_REJECT'],
  ['SOCKS5 from a client outside `allow` answers 0x02', 'lan-only', () => connect5('127.0.0.1', origin.port), '02', 'NOT_ALLOWED'],
  ['SOCKS5 CONNECT to a name that does not resolve answers 0x04', 's', () => connect5('nothing-here.invalid', 80), '04', 'DNS_FAILED'],
  ['SOCKS5 CONNECT to a refused port answers 0x05', 's', async () => connect5('127.0.0.1', await net.refusedPort()), '05', 'CONN_REFUSED'],
  ['SOCKS5 BIND answers 0x07', 's', () => encodeSocks5Request('bind', target('127.0.0.1', 80)), '07', 'CMD_UNSUPPORTED'],
  // No target, so no session: a 'handshake failed' line instead.
  ['SOCKS5 address type 9 answers 0x08', 's', () => hex('05 01 00 09 7f000001 0050'), '08'],
];

for (const [name, inbound, request, code, result] of FAILURES) {
  test(name, async () => {
    const { client, reply } = await socks5(g.port(inbound), await request());
    assert.equal(reply.toString('hex'), `05${code}0001000000000000`);
    assert.equal((await untilClosed(client)).length, 0);
    if (result) assert.equal((await g.waitForLog(sessionOf(client.socket))).result, result);
  });
}

test('SOCKS5 CONNECT to [::1] reaches an IPv6 origin and answers BND ::1', async () => {
  const { client, reply } = await socks5(g.port('s'), connect5('::1', origin6.port), 22);
  assert.equal(reply.subarray(0, 20).toString('hex'), `05000004${'00'.repeat(15)}01`);
  assert.notEqual(reply.readUInt16BE(20), 0);
  client.write(GET_TINY);
  client.socket.end();
  assert.match((await client.readToEnd()).toString(), /^HTTP\/1\.1 200[^]*\r\n\r\nok\n$/);
  const result = await net.curl([
    '-x',
    `socks5h://127.0.0.1:${g.port('s')}`,
    `${origin6.url}/tiny`,
  ]);
  assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
});

test('SOCKS4 CONNECT answers 0x5A with the bound IPv4 address and port', async () => {
  const client = await open(g.port('s'));
  const userId = Buffer.from('someone\0');
  client.write(
    Buffer.concat([hex('04 01'), portBytes(halfCloseOrigin.port), hex('7f000001'), userId]),
  );
  const reply = await client.read(8);
  assert.equal(reply.subarray(0, 2).toString('hex'), '005a');
  assert.equal(reply.subarray(4).toString('hex'), '7f000001');
  assert.equal(reply.readUInt16BE(2), halfCloseOrigin.sockets.at(-1)!.remotePort);
  client.socket.end();
  assert.equal((await client.readToEnd()).toString(), 'got ');
  const line = await g.waitForLog(sessionOf(client.socket));
  assert.equal(line.user, undefined, 'the SOCKS4 USERID is not recorded');
  assert.ok(!JSON.stringify(g.logs).includes('someone'));
});

test('SOCKS4 CONNECT to a refused port answers 0x5B', async () => {
  const client = await open(g.port('s'));
  client.write(
    Buffer.concat([hex('04 01'), portBytes(await net.refusedPort()), hex('7f000001 00')]),
  );
  assert.equal((await untilClosed(client)).toString('hex'), '005b000000000000');
});

test('SOCKS4 to an inbound with auth answers 0x5B', async () => {
  const client = await open(g.port('auth'));
  client.write(hex('04 01 0050 7f000001 00'));
  assert.equal((await untilClosed(client)).toString('hex'), '005b000000000000');
});

test('a socks5 inbound closes a SOCKS4 client; a socks4 inbound answers SOCKS5 with 05 FF', async () => {
  const four = await open(g.port('s5'));
  four.write(hex('04 01 0050 7f000001 00'));
  assert.equal((await untilClosed(four)).length, 0);
  const five = await open(g.port('s4'));
  five.write(hex('05 01 00'));
  assert.equal((await untilClosed(five)).toString('hex'), '05ff');
});

test('half-close: after the client FIN the origin still answers and the client reads it', async () => {
  const { client, reply } = await socks5(g.port('s'), connect5('127.0.0.1', halfCloseOrigin.port));
  assert.equal(reply.subarray(0, 4).toString('hex'), '05000001');
  client.write('hello');
  client.socket.end();
  assert.equal((await client.readToEnd()).toString(), 'got hello');
  const line = await g.waitForLog(sessionOf(client.socket));
  assert.deepEqual([line.result, line.up, line.down], ['ok', 5, 'got hello'.length]);
});

/** Greeting, request, payload and FIN in one write, before any reply. */
async function pipelined(inbound: string) {
  const client = await open(g.port(inbound));
  const request = connect5('127.0.0.1', halfCloseOrigin.port);
  client.write(Buffer.concat([hex('05 01 00'), request, Buffer.from('early')]));
  client.socket.end();
  const replies = await client.read(12);
  return { client, replies, answer: await client.readToEnd() };
}

for (const inbound of ['s', 'm']) {
  test(`a request pipelined with its payload and FIN loses nothing (inbound ${inbound})`, async () => {
    const { replies, answer } = await pipelined(inbound);
    assert.equal(replies.subarray(0, 6).toString('hex'), '050005000001');
    assert.equal(answer.toString(), 'got early');
  });
}

test('the access log counts a payload pipelined with the request as up bytes', async () => {
  const { client } = await pipelined('s');
  assert.equal((await g.waitForLog(sessionOf(client.socket))).up, 'early'.length);
});

test('the access log has exactly one session line per session and no password', async () => {
  const { client } = await socks5(g.port('s'), connect5('127.0.0.1', origin.port));
  client.write(GET_TINY);
  client.socket.end();
  const response = await client.readToEnd();
  const line = await g.waitForLog(sessionOf(client.socket));
  assert.deepEqual([line.protocol, line.result], ['socks5', 'ok']);
  assert.deepEqual([line.up, line.down], [GET_TINY.length, response.length]);
  // A later session's line gives the first one time to be logged twice, had it been.
  const later = await socks5(g.port('s'), connect5('blocked.test', 80));
  await g.waitForLog(sessionOf(later.client.socket));
  assert.equal(g.sessions().filter(sessionOf(client.socket)).length, 1);
  const everything = JSON.stringify(g.logs);
  assert.ok(!everything.includes(PASSWORD) && !everything.includes(WRONG_PASSWORD));
});

test('a relayed session outlives connect_timeout', async (t) => {
  const short = await startGateway({
    limits: { connect_timeout: '200ms' },
    inbounds: [{ name: 'short', type: 'socks', listen: '127.0.0.1:0' }],
  });
  t.after(() => short.stop());
  const { client } = await socks5(short.port(), connect5('127.0.0.1', halfCloseOrigin.port));
  // Waiting is the point here: the session must still be up after the connect timeout.
  await new Promise((resolve) => setTimeout(resolve, 600));
  client.write('late');
  client.socket.end();
  assert.equal((await client.readToEnd()).toString(), 'got late');
});

/** name, bytes sent (then FIN when `thenClose`), the answer before the close, the logged reason. */
// prettier-ignore
const MALFORMED: readonly (readonly [string, string | Buffer, string, string, boolean?])[] = [
  ['a garbage first byte', Buffer.from('GET / HTTP/1.1\r\n'), '', 'not a SOCKS version this inbound speaks'],
  ['a truncated greeting then close', '05 02 00', '', 'client closed during the handshake', true],
  ['NMETHODS=0', '05 00', '05ff', 'no acceptable authentication method'],
  ['an oversized SOCKS4 user id with no NUL', `04 01 0050 7f000001 ${'61'.repeat(300)}`, '005b000000000000', 'user id longer than 255 bytes'],
  ['a request with a bad version', '05 01 00 04 01 00 01 7f000001 0050', '0500 05010001000000000000', 'request is not SOCKS5'],
  ['a request with an unknown command', '05 01 00 05 09 00 01 7f000001 0050', '0500 05070001000000000000', 'command 9 is not supported'],
  ['a stalled greeting', '05 01', '', 'handshake timed out'],
];

for (const [name, sent, answer, reason, thenClose] of MALFORMED) {
  test(`${name} is answered and closed, and the gateway still serves`, async (t) => {
    // Its own gateway, so that its connection count is this test's alone; a short handshake
    // timeout lets the stalled client end quickly.
    const strict = await startGateway({
      limits: { handshake_timeout: '1s' },
      inbounds: [{ name: 'strict', type: 'socks', listen: '127.0.0.1:0' }],
    });
    t.after(() => strict.stop());
    const client = await open(strict.port());
    client.write(typeof sent === 'string' ? hex(sent) : sent);
    if (thenClose) client.socket.end();
    assert.equal((await untilClosed(client)).toString('hex'), answer.replace(/\s/g, ''));
    const from = `127.0.0.1:${localPorts.get(client.socket)}`;
    const line = await strict.waitForLog((l) => l.msg === 'handshake failed' && l.client === from);
    assert.equal(line.reason, reason);
    const good = await socks5(strict.port(), connect5('127.0.0.1', origin.port));
    assert.equal(good.reply.subarray(0, 2).toString('hex'), '0500');
    good.client.socket.destroy();
    await eventually(() => strict.gateway.activeConnections === 0, 'every connection released');
  });
}

/**
 * Writes `total` bytes into `socket` as fast as it takes them; `flushed` counts what the kernel
 * accepted, so it stops growing once every buffer on the way is full.
 */
function flood(socket: Socket, total: number, progress: { flushed: number }): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  void (async () => {
    for (let sent = 0; sent < total && !socket.destroyed; sent += chunk.length) {
      const more = socket.write(chunk, () => (progress.flushed += chunk.length));
      if (!more) await once(socket, 'drain');
    }
    socket.end();
  })().catch(() => undefined);
}

/** Waits until `progress.flushed` has not moved for half a second (bounded: 15 s). */
async function stalled(progress: { flushed: number }): Promise<void> {
  let last = -1;
  for (let still = 0, polls = 0; still < 5 && polls < 150; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    still = progress.flushed === last && progress.flushed > 0 ? still + 1 : 0;
    last = progress.flushed;
  }
}

/** Counts the bytes `socket` delivers until its end; rejects after 30 s. */
function countToEnd(socket: Socket, skip = 0): Promise<number> {
  let received = -skip;
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received} bytes arrived`)), 30_000);
    socket.on('data', (data: Buffer) => (received += data.length));
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

for (const direction of ['down', 'up'] as const) {
  const who = direction === 'down' ? 'client' : 'target';
  test(`a tunnel whose ${who} stops reading stalls the sender (backpressure), then delivers every byte`, async (t) => {
    const total = 64 * 1024 * 1024;
    let onTarget: (socket: Socket) => void = () => undefined;
    const reached = new Promise<Socket>((resolve) => (onTarget = resolve));
    const server = await net.startTcpServer((socket) => onTarget(socket));
    t.after(() => server.close());
    const client = connect({ port: g.port('s'), host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => undefined);
    t.after(() => client.destroy());
    client.write(Buffer.concat([hex('05 01 00'), connect5('127.0.0.1', server.port)]));
    const target = await reached;
    const [reader, writer] = direction === 'down' ? [client, target] : [target, client];
    // The client also reads the two SOCKS5 replies (method, success: 12 bytes).
    const counted = countToEnd(reader, direction === 'down' ? 12 : 0);
    reader.pause();
    const progress = { flushed: 0 };
    flood(writer, total, progress);
    await stalled(progress);
    assert.ok(
      progress.flushed > 0 && progress.flushed < total / 2,
      `the sender flushed ${progress.flushed} of ${total} bytes`,
    );
    reader.resume();
    assert.equal(await counted, total);
  });
}

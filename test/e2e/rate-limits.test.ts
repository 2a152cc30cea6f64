import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { configFrom, startGateway, type TestGateway } from '../helpers/gateway.js';
import * as net from '../helpers/net.js';
import { socks5Connect, socks5Request } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';

/**
 * 800 KB at 200 KB/s: the first second's worth passes at once (the burst), the other 600 KB
 * take 3 s. Unlimited, the same download takes milliseconds on loopback.
 */
const RATE = '200KB';
const SIZE = 800_000;
const PAYLOAD = net.patternBytes(SIZE, 7);
const HALF = PAYLOAD.subarray(0, SIZE / 2);
const AT_LEAST_MS = 2500;
const AT_MOST_MS = 15_000;

const alice = { username: 'alice', password: 'alice-pw' };
const bob = { username: 'bob', password: 'bob-pw' };
const users = [{ ...alice, rate: { down: RATE } }, bob];

/** Sends PAYLOAD (or its first half) to whoever connects, then ends. */
let download: net.TcpServer;
let halfDownload: net.TcpServer;
/** Holds every connection open until the client ends it, for sessions that must stay live. */
let hold: net.TcpServer;
let origin: net.HttpOrigin;
let g: TestGateway;
const clients: net.RawClient[] = [];

const raw = (maxSessions: number, slowRate: string | null = RATE) => ({
  limits: { max_sessions_per_user: maxSessions },
  inbounds: [
    {
      name: 'slow',
      type: 'mixed',
      listen: '127.0.0.1:0',
      ...(slowRate === null ? {} : { rate: { down: slowRate } }),
    },
    { name: 'slow-up', type: 'http', listen: '127.0.0.1:0', rate: { up: RATE } },
    { name: 'users', type: 'socks', listen: '127.0.0.1:0', auth: { users } },
    { name: 'users-http', type: 'http', listen: '127.0.0.1:0', auth: { users } },
  ],
});

before(async () => {
  download = await net.startTcpServer((socket) => socket.end(PAYLOAD));
  halfDownload = await net.startTcpServer((socket) => socket.end(HALF));
  hold = await net.startTcpServer((socket) => socket.on('end', () => socket.end()));
  origin = await net.startHttpOrigin();
  g = await startGateway(raw(2));
});

after(async () => {
  for (const client of clients) client.socket.destroy();
  await g.stop();
  await Promise.all([download.close(), halfDownload.close(), hold.close(), origin.close()]);
});

async function socks5(
  inbound: string,
  port: number,
  credentials?: { username: string; password: string },
) {
  const tunnel = await socks5Connect(g.port(inbound), '127.0.0.1', port, credentials);
  clients.push(tunnel.client);
  return tunnel;
}

async function connectTunnel(inbound: string, port: number, credentials?: typeof alice) {
  const client = await net.rawConnect(g.port(inbound));
  clients.push(client);
  const auth = credentials
    ? `Proxy-Authorization: Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}\r\n`
    : '';
  client.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}\r\n`);
  const head = (await client.readUntil('\r\n\r\n')).toString('latin1');
  return { client, status: Number(head.slice(9, 12)) };
}

/** Closes every client, and waits for the gateway to have ended their sessions. */
async function closeAll(): Promise<void> {
  for (const client of clients.splice(0)) client.socket.destroy();
  await eventually(() => g.gateway.activeConnections === 0, 'every client connection closed');
}

/** Reads the whole download and how long it took from the first byte asked for. */
async function timedDownload(client: net.RawClient): Promise<{ ms: number; bytes: Buffer }> {
  const started = performance.now();
  const bytes = await client.read(SIZE, AT_MOST_MS);
  return { ms: performance.now() - started, bytes };
}

function assertSlowAndIntact({ ms, bytes }: { ms: number; bytes: Buffer }): void {
  assert.equal(net.sha256(bytes), net.sha256(PAYLOAD));
  assert.ok(ms >= AT_LEAST_MS, `${SIZE} bytes at ${RATE}/s took only ${Math.round(ms)} ms`);
}

/** A plain http:// POST of `body` to the origin's /echo through `inbound`; the echoed body. */
function post(inbound: string, body: Buffer): Promise<{ ms: number; echoed: Buffer }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: g.port(inbound),
      method: 'POST',
      path: `${origin.url}/echo`,
      headers: { 'content-length': body.length },
      agent: false,
      timeout: AT_MOST_MS,
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ ms: performance.now() - started, echoed: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.end(body);
  });
}

test('a SOCKS5 tunnel keeps to its inbound rate down, and every byte arrives', async () => {
  const { client, reply } = await socks5('slow', download.port);
  assert.equal(reply, 0x00);
  assertSlowAndIntact(await timedDownload(client));
  await closeAll();
});

test('a CONNECT tunnel keeps to its inbound rate down, and every byte arrives', async () => {
  const { client, status } = await connectTunnel('slow', download.port);
  assert.equal(status, 200);
  assertSlowAndIntact(await timedDownload(client));
  await closeAll();
});

test('plain http:// forwarding keeps to the rate: the response body down, the upload up', async () => {
  const down = await post('slow', PAYLOAD);
  assert.equal(net.sha256(down.echoed), net.sha256(PAYLOAD));
  assert.ok(down.ms >= AT_LEAST_MS, `the response came in ${Math.round(down.ms)} ms`);
  const up = await post('slow-up', PAYLOAD);
  assert.equal(net.sha256(up.echoed), net.sha256(PAYLOAD));
  assert.ok(up.ms >= AT_LEAST_MS, `the upload went in ${Math.round(up.ms)} ms`);
});

test("two sessions of one user share the user's rate, over two inbounds", async () => {
  const one = await socks5('users', halfDownload.port, alice);
  const two = await connectTunnel('users-http', halfDownload.port, alice);
  assert.equal(one.reply, 0x00);
  assert.equal(two.status, 200);
  const started = performance.now();
  const [a, b] = await Promise.all([
    one.client.read(HALF.length, AT_MOST_MS),
    two.client.read(HALF.length, AT_MOST_MS),
  ]);
  const ms = performance.now() - started;
  assert.equal(net.sha256(a), net.sha256(HALF));
  assert.equal(net.sha256(b), net.sha256(HALF));
  // Each half alone at the rate takes 1 s past the burst; sharing it, both take the 3 s of the
  // whole payload.
  assert.ok(
    ms >= AT_LEAST_MS,
    `two downloads of one user at ${RATE}/s took only ${Math.round(ms)} ms`,
  );
  await closeAll();
});

test('max_sessions_per_user: the third live session is refused (SOCKS5 0x02, HTTP 429) until one ends', async () => {
  const first = await socks5('users', hold.port, bob);
  const second = await connectTunnel('users-http', hold.port, bob);
  assert.equal(first.reply, 0x00);
  assert.equal(second.status, 200);

  const third = await socks5('users', hold.port, bob);
  assert.equal(third.reply, 0x02);
  await third.client.closed();
  const overHttp = await connectTunnel('users-http', hold.port, bob);
  assert.equal(overHttp.status, 429);
  const udp = await net.rawConnect(g.port('users'));
  clients.push(udp);
  udp.write(Buffer.from([0x05, 0x01, 0x02]));
  assert.deepEqual([...(await udp.read(2))], [0x05, 0x02]);
  udp.write(Buffer.from('\x01\x03bob\x06bob-pw', 'latin1'));
  assert.deepEqual([...(await udp.read(2))], [0x01, 0x00]);
  udp.write(socks5Request('0.0.0.0', 0, 0x03));
  assert.deepEqual([...(await udp.read(2))], [0x05, 0x02], 'UDP ASSOCIATE is a session too');
  const refused = await g.waitForLog((l) => l.msg === 'session refused' && l.user === 'bob');
  assert.match(String(refused.reason), /max_sessions_per_user/);
  const lines = g.sessions().filter((l) => l.user === 'bob' && l.result === 'USER_LIMIT');
  assert.equal(lines.length, 3);
  // Another user is not affected.
  const other = await socks5('users', hold.port, alice);
  assert.equal(other.reply, 0x00);

  first.client.socket.destroy();
  await g.waitForLog(
    (l) =>
      l.msg === 'session' &&
      l.user === 'bob' &&
      l.protocol === 'socks5' &&
      l.result !== 'USER_LIMIT',
  );
  const again = await socks5('users', hold.port, bob);
  assert.equal(again.reply, 0x00);
  await closeAll();
});

test('a reload applies a new cap to new sessions, counting the sessions already live', async () => {
  const live = await socks5('users', hold.port, bob);
  assert.equal(live.reply, 0x00);
  g.gateway.reload(configFrom(raw(1)));
  const refused = await socks5('users', hold.port, bob);
  assert.equal(refused.reply, 0x02);
  await closeAll();
  const after = await socks5('users', hold.port, bob);
  assert.equal(after.reply, 0x00);
  await closeAll();
  g.gateway.reload(configFrom(raw(2)));
});

test('a reload moves the sessions already limited to the new rate at once', async () => {
  const { client, reply } = await socks5('slow', download.port);
  assert.equal(reply, 0x00);
  g.gateway.reload(configFrom(raw(2, null)));
  try {
    const { ms, bytes } = await timedDownload(client);
    assert.equal(net.sha256(bytes), net.sha256(PAYLOAD));
    // At the old rate it would take about 3 s; unlimited, the wait already begun at most.
    assert.ok(ms < 2000, `after the limit was lifted ${SIZE} bytes took ${Math.round(ms)} ms`);
  } finally {
    await closeAll();
    g.gateway.reload(configFrom(raw(2)));
  }
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { curl } from '../helpers/net.js';
import { unavailable } from '../helpers/peers.js';

/**
 * The keep-alive pool of connections to an upstream HTTP proxy, against a fake proxy that
 * answers absolute-form requests itself and records which of its connections each came on.
 */

const skip = unavailable('curl');
const PASSWORD = 'Pool-pw-8';

interface Seen {
  readonly url: string;
  readonly connection: number;
  readonly authorization: string | undefined;
}

let proxy: Server;
let proxyPort: number;
const seen: Seen[] = [];
const sockets: Socket[] = [];
const ids = new WeakMap<Socket, number>();
/** Connections the fake proxy drops without answering when it sees a request on them. */
const dropNext = new Set<number>();
let g: TestGateway;

before(async () => {
  if (skip) return;
  proxy = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const connection = ids.get(req.socket) ?? -1;
    if (dropNext.delete(connection)) {
      req.socket.destroy();
      return;
    }
    seen.push({
      url: req.url ?? '',
      connection,
      authorization: req.headers['proxy-authorization'],
    });
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/close') {
      res.writeHead(200, { 'Content-Length': '8', Connection: 'close' });
      res.end('closing\n');
    } else if (path === '/cut') {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('only part');
      setImmediate(() => req.socket.destroy());
    } else {
      res.writeHead(200, { 'Content-Length': '3' });
      res.end('ok\n');
    }
  });
  proxy.on('connection', (socket: Socket) => {
    ids.set(socket, sockets.length);
    sockets.push(socket);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  proxyPort = (proxy.address() as AddressInfo).port;
  g = await startGateway({
    inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [{ name: 'corp', url: `http://pool:${PASSWORD}@127.0.0.1:${proxyPort}` }],
    rules: [{ outbound: 'corp' }],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  proxy.closeAllConnections();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
});

/** One request, on a new client connection each time (curl exits in between). */
async function get(url: string): Promise<{ body: string; connection: number | undefined }> {
  const before = seen.length;
  const result = await curl(['-x', `http://127.0.0.1:${g.port()}`, url]);
  return { body: result.stdout.toString(), connection: seen.slice(before).at(-1)?.connection };
}

test(
  'requests for one target reuse a proxy connection; another target gets its own',
  { skip },
  async () => {
    const first = await get('http://a.test/one');
    assert.equal(first.body, 'ok\n');
    const second = await get('http://a.test/two');
    assert.equal(second.body, 'ok\n');
    assert.equal(second.connection, first.connection, 'reused for the same target');
    const other = await get('http://b.test/one');
    assert.equal(other.body, 'ok\n');
    assert.notEqual(other.connection, first.connection, 'another target, another connection');
    const again = await get('http://a.test/three');
    assert.equal(again.connection, first.connection);
    const expected = `Basic ${Buffer.from(`pool:${PASSWORD}`).toString('base64')}`;
    assert.ok(
      seen.every((s) => s.authorization === expected),
      'credentials on every request',
    );
  },
);

test(
  'a response that closes the connection, or breaks off, is never reused',
  { skip },
  async () => {
    const base = await get('http://c.test/base');
    const closing = await get('http://c.test/close');
    assert.equal(closing.body, 'closing\n');
    assert.equal(closing.connection, base.connection);
    const afterClose = await get('http://c.test/next');
    assert.notEqual(afterClose.connection, base.connection);
    const cut = await curl(['-x', `http://127.0.0.1:${g.port()}`, 'http://c.test/cut']);
    assert.notEqual(cut.exitCode, 0, 'the client learns the response was incomplete');
    const cutOn = seen.at(-1)?.connection;
    const afterCut = await get('http://c.test/next');
    assert.equal(afterCut.body, 'ok\n');
    assert.notEqual(afterCut.connection, cutOn);
  },
);

test(
  'a kept connection the proxy dropped meanwhile is replaced, and the request retried',
  { skip },
  async () => {
    const first = await get('http://d.test/one');
    assert.ok(first.connection !== undefined);
    dropNext.add(first.connection);
    const retried = await get('http://d.test/two');
    assert.equal(retried.body, 'ok\n');
    assert.equal(dropNext.size, 0, 'the request was first sent on the kept connection');
    assert.notEqual(retried.connection, first.connection);
    await g.waitForLog((l) => l.msg === 'kept-alive connection was closed; retrying');
    assert.equal(g.sessions().at(-1)?.result, 'ok');
  },
);

test('every connection carried requests for one target only', { skip }, () => {
  const hosts = new Map<number, Set<string>>();
  for (const s of seen) {
    const set = hosts.get(s.connection) ?? new Set<string>();
    set.add(new URL(s.url).host);
    hosts.set(s.connection, set);
  }
  for (const [connection, set] of hosts) {
    assert.equal(set.size, 1, `connection ${connection} carried ${[...set].join(', ')}`);
  }
});

test('an idle pooled connection is closed after a few seconds', { skip }, async () => {
  const used = await get('http://e.test/one');
  const socket = sockets[used.connection ?? -1];
  assert.ok(socket && !socket.destroyed);
  const started = Date.now();
  await Promise.race([
    once(socket, 'close'),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('still open after 10 s')), 10_000),
    ),
  ]);
  assert.ok(Date.now() - started >= 3_000, 'not closed before the idle time');
});

test('no password reached the logs', { skip }, () => {
  assert.ok(!JSON.stringify(g.logs).includes(PASSWORD));
});

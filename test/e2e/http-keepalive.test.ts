import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { curl, rawConnect, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';

let origin: HttpOrigin;
let other: HttpOrigin;
let g: TestGateway;
let originConnections = 0;
let otherConnections = 0;

before(async () => {
  origin = await startHttpOrigin();
  other = await startHttpOrigin();
  origin.server.on('connection', () => originConnections++);
  other.server.on('connection', () => otherConnections++);
  g = await startGateway({ inbounds: [{ name: 'h', type: 'http', listen: '127.0.0.1:0' }] });
});

after(async () => {
  await g.stop();
  await origin.close();
  await other.close();
});

test('plain http requests to one origin reuse one kept-alive origin connection', async () => {
  const before = originConnections;
  const urls = [1, 2, 3].map((n) => `${origin.url}/tiny?n=${n}`);
  const result = await curl(['-x', `http://127.0.0.1:${g.port()}`, ...urls]);
  assert.equal(result.stderr, '');
  assert.equal(result.stdout.toString(), 'ok\nok\nok\n');
  assert.equal(originConnections - before, 1);
  assert.deepEqual(
    origin.requests.slice(-3).map((r) => r.url),
    ['/tiny?n=1', '/tiny?n=2', '/tiny?n=3'],
  );
});

test('a kept-alive origin connection is never used for another origin', async () => {
  const beforeOrigin = originConnections;
  const beforeOther = otherConnections;
  const result = await curl([
    '-x',
    `http://127.0.0.1:${g.port()}`,
    `${origin.url}/tiny`,
    `${other.url}/tiny`,
    `${origin.url}/tiny`,
    `${other.url}/tiny`,
  ]);
  assert.equal(result.stdout.toString(), 'ok\n'.repeat(4));
  // Each origin saw only its own requests, on at most one new connection each.
  assert.ok(originConnections - beforeOrigin <= 1);
  assert.equal(otherConnections - beforeOther, 1);
  assert.ok(other.requests.every((r) => r.headers.host === `127.0.0.1:${other.port}`));
  assert.ok(origin.requests.every((r) => r.headers.host === `127.0.0.1:${origin.port}`));
});

test('an origin that closed its idle connection is dialled again, transparently', async () => {
  const client = await rawConnect(g.port());
  const get = `GET ${origin.url}/tiny HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`;
  client.write(get);
  assert.match((await client.readUntil('ok\n')).toString(), /^HTTP\/1\.1 200 OK\r\n/);
  // The origin drops every idle connection; the pooled one is now dead.
  origin.server.closeIdleConnections();
  client.write(get);
  assert.match((await client.readUntil('ok\n')).toString(), /^HTTP\/1\.1 200 OK\r\n/);
  client.socket.destroy();
});

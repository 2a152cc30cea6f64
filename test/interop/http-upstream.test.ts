import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  BULK,
  curl,
  patternBytes,
  rawConnect,
  refusedPort,
  sha256,
  startHttpOrigin,
} from '../helpers/net.js';
import type { HttpOrigin } from '../helpers/net.js';
import {
  OUTGOING,
  selfSignedCertificate,
  startSquid,
  startTinyproxy,
  unavailable,
  type Peer,
  type Squid,
} from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction in front of real HTTP proxies: squid (with Basic auth, and TLS on an https_port) and
 * tinyproxy. The origin records the peer address of every request, so each test proves which
 * way its request went; squid's access log shows what squid was asked (CONNECT or absolute-form).
 */

const skip = unavailable('squid', 'tinyproxy', 'curl', 'openssl');
const CORP = { name: 'corp', password: 'Corp-pw-31' };
const WRONG = 'not-the-corp-pw';

let origin: HttpOrigin;
let squid: Squid;
let tinyproxy: Peer;
let tinyAuth: Peer;
const TINY = { name: 'tiny', password: 'Tiny-pw-12' };
let g: TestGateway;
let certDir: string;
let cert: { cert: string; key: string };
let deadPort: number;

before(async () => {
  if (skip) return;
  certDir = mkdtempSync(join(tmpdir(), 'junction-cert-'));
  cert = selfSignedCertificate(certDir);
  origin = await startHttpOrigin();
  deadPort = await refusedPort();
  [squid, tinyproxy, tinyAuth] = await Promise.all([
    startSquid({ user: CORP, tls: cert, denyPorts: [deadPort + 1] }),
    startTinyproxy(),
    startTinyproxy({ user: TINY }),
  ]);
  const squidUrl = `http://${CORP.name}:${CORP.password}@127.0.0.1:${squid.port}`;
  g = await startGateway({
    inbounds: [
      { name: 'socks', type: 'socks5', listen: '127.0.0.1:0' },
      { name: 'web', type: 'http', listen: '127.0.0.1:0' },
      { name: 'to-tls', type: 'http', listen: '127.0.0.1:0' },
      { name: 'wrong', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'dead', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'tiny', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'routed', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'tiny-auth', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'tiny-wrong', type: 'mixed', listen: '127.0.0.1:0' },
    ],
    outbounds: [
      { name: 'corp', url: squidUrl },
      {
        name: 'corp-tls',
        url: `https://${CORP.name}:${CORP.password}@127.0.0.1:${String(squid.tlsPort)}`,
        tls: { ca: cert.cert },
      },
      { name: 'corp-wrong', url: `http://${CORP.name}:${WRONG}@127.0.0.1:${squid.port}` },
      { name: 'nowhere', url: `http://${CORP.name}:${CORP.password}@127.0.0.1:${deadPort}` },
      { name: 'tiny', url: `http://127.0.0.1:${tinyproxy.port}` },
      { name: 'tiny-auth', url: `http://${TINY.name}:${TINY.password}@127.0.0.1:${tinyAuth.port}` },
      { name: 'tiny-wrong', url: `http://${TINY.name}:${WRONG}@127.0.0.1:${tinyAuth.port}` },
    ],
    rules: [
      { inbound: ['to-tls'], outbound: 'corp-tls' },
      { inbound: ['wrong'], outbound: 'corp-wrong' },
      { inbound: ['dead'], outbound: 'nowhere' },
      { inbound: ['tiny'], outbound: 'tiny' },
      { inbound: ['tiny-auth'], outbound: 'tiny-auth' },
      { inbound: ['tiny-wrong'], outbound: 'tiny-wrong' },
      { inbound: ['routed'], domain_suffix: ['localhost'], outbound: 'direct' },
      { outbound: 'corp' },
    ],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([squid.stop(), tinyproxy.stop(), tinyAuth.stop(), origin.close()]);
  rmSync(certDir, { recursive: true, force: true });
});

const via = (inbound: string): string => `http://127.0.0.1:${g.port(inbound)}`;
const lastRequest = () => origin.requests.at(-1);

test(
  'SOCKS5 in → squid: an HTTP proxy turned into a SOCKS5 proxy (curl socks5h, 4 MiB)',
  { skip },
  async () => {
    const result = await curl([
      '-x',
      `socks5h://127.0.0.1:${g.port('socks')}`,
      `${origin.url}/bulk`,
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(sha256(result.stdout), sha256(BULK));
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid, 'the origin was reached by squid');
    const asked = await squid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} `);
    assert.equal(asked.length, 1, squid.accessLog().join('\n'));
    assert.match(asked[0] ?? '', / corp /, 'squid saw our credentials');
    recordUpstream('squid (http://, Basic)', 'socks');
  },
);

test(
  'HTTP in, absolute-form GET through squid: squid logs the absolute URL, not CONNECT',
  { skip },
  async () => {
    const path = `/tiny?absolute=${Date.now()}`;
    const result = await curl(['-x', via('web'), `${origin.url}${path}`, '-w', '%{http_code}']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout.toString(), 'ok\n200');
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
    assert.equal(lastRequest()?.url, path);
    const lines = await squid.waitForAccess(path);
    assert.equal(lines.length, 1, squid.accessLog().join('\n'));
    assert.match(
      lines[0] ?? '',
      new RegExp(` GET http://127\\.0\\.0\\.1:${origin.port}/tiny\\?absolute=\\d+ corp `),
    );
    assert.ok(
      !squid
        .accessLog()
        .some((l) => l.includes(`CONNECT 127.0.0.1:${origin.port}`) && l.includes(path)),
    );
    recordUpstream('squid (http://, Basic)', 'http');
  },
);

test(
  'absolute-form POST through squid streams both ways (8 MiB up, echoed back)',
  { skip },
  async () => {
    const body = patternBytes(8 * 1024 * 1024 + 7, 5);
    const dir = mkdtempSync(join(tmpdir(), 'junction-upload-'));
    try {
      const file = join(dir, 'body.bin');
      writeFileSync(file, body);
      const result = await curl([
        '-x',
        via('web'),
        '--data-binary',
        `@${file}`,
        '-H',
        'Content-Type: application/octet-stream',
        `${origin.url}/echo`,
      ]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(sha256(result.stdout), sha256(body));
      assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
      assert.equal(sha256(lastRequest()?.body ?? Buffer.alloc(0)), sha256(body));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    recordUpstream('squid (http://, Basic)', 'http');
  },
);

test('HTTP in, CONNECT (curl -p) through squid', { skip }, async () => {
  const result = await curl([
    '-p',
    '-x',
    via('web'),
    `${origin.url}/tiny`,
    '-w',
    ' %{http_connect}',
  ]);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(result.stdout.toString(), 'ok\n 200');
  assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
  recordUpstream('squid (http://, Basic)', 'http');
});

test(
  "https:// upstream: TLS to squid's https_port with tls.ca, for CONNECT and absolute-form",
  { skip },
  async () => {
    const tunnelled = await curl(['-p', '-x', via('to-tls'), `${origin.url}/tiny?tls-connect`]);
    assert.equal(tunnelled.stdout.toString(), 'ok\n', JSON.stringify(g.sessions().at(-1)));
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
    const forwarded = await curl(['-x', via('to-tls'), `${origin.url}/tiny?tls-absolute`]);
    assert.equal(forwarded.stdout.toString(), 'ok\n', forwarded.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
    await squid.waitForAccess(`GET http://127.0.0.1:${origin.port}/tiny?tls-absolute corp`);
    recordUpstream('squid (https://, Basic)', 'http');
  },
);

test(
  'a wrong upstream password: HTTP 502 "upstream proxy authentication failed (Basic)", SOCKS5 0x01',
  { skip },
  async () => {
    const expected = '502 Bad Gateway: upstream proxy "corp-wrong" authentication failed (Basic)\n';
    const forwarded = await curl(['-x', via('wrong'), `${origin.url}/tiny`, '-w', '%{http_code}']);
    assert.equal(forwarded.stdout.toString(), `${expected}502`);
    const tunnelled = await curl([
      '-p',
      '-x',
      via('wrong'),
      `${origin.url}/tiny`,
      '-w',
      '%{http_connect}',
    ]);
    assert.equal(tunnelled.stdout.toString(), '502');
    const socks = await socks5Connect(g.port('wrong'), '127.0.0.1', origin.port);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
    const line = await g.waitForLog(
      (l) => l.msg === 'session' && l.result === 'UPSTREAM_AUTH_FAILED',
    );
    assert.equal(line.error, 'upstream proxy "corp-wrong" authentication failed (Basic)');
  },
);

test(
  "squid refusing CONNECT: 503 (target refused) and 403 (its ACL) reach the client with squid's status",
  { skip },
  async () => {
    const masked = '"corp"';
    const client = await rawConnect(g.port('web'));
    client.write(`CONNECT 127.0.0.1:${deadPort} HTTP/1.1\r\nHost: 127.0.0.1:${deadPort}\r\n\r\n`);
    const answer = (await client.readToEnd(10_000)).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.ok(
      answer.endsWith(
        `\r\n\r\n502 Bad Gateway: upstream proxy ${masked} answered 503 Service Unavailable to CONNECT 127.0.0.1:${deadPort}\n`,
      ),
      answer,
    );
    const socks503 = await socks5Connect(g.port('socks'), '127.0.0.1', deadPort);
    assert.equal(socks503.reply, 0x01);
    socks503.client.socket.destroy();

    const forbidden = deadPort + 1;
    const socks403 = await socks5Connect(g.port('socks'), '127.0.0.1', forbidden);
    assert.equal(socks403.reply, 0x02, 'an upstream 403 is "not allowed" (0x02)');
    socks403.client.socket.destroy();
    const line403 = await g.waitForLog(
      (l) =>
        l.msg === 'session' &&
        l.target === `127.0.0.1:${forbidden}` &&
        l.result === 'UPSTREAM_REFUSED',
    );
    assert.equal(
      line403.error,
      `upstream proxy ${masked} answered 403 Forbidden to CONNECT 127.0.0.1:${forbidden}`,
    );
  },
);

test('an unreachable upstream is told apart from an unreachable target', { skip }, async () => {
  const result = await curl(['-x', via('dead'), `${origin.url}/tiny`, '-w', '%{http_code}']);
  const masked = '"nowhere"';
  assert.equal(
    result.stdout.toString(),
    `502 Bad Gateway: cannot reach upstream proxy ${masked}: ECONNREFUSED\n502`,
  );
  const socks = await socks5Connect(g.port('dead'), '127.0.0.1', origin.port);
  assert.equal(socks.reply, 0x01);
  socks.client.socket.destroy();
});

test('tinyproxy as the upstream: absolute-form and CONNECT', { skip }, async () => {
  const forwarded = await curl(['-x', via('tiny'), `${origin.url}/tiny?tinyproxy`]);
  assert.equal(forwarded.stdout.toString(), 'ok\n', forwarded.stderr);
  assert.equal(lastRequest()?.remoteAddress, OUTGOING.tinyproxy);
  assert.equal(lastRequest()?.url, '/tiny?tinyproxy');
  const tunnelled = await curl([
    '-x',
    `socks5h://127.0.0.1:${g.port('tiny')}`,
    `${origin.url}/bulk`,
  ]);
  assert.equal(tunnelled.exitCode, 0, tunnelled.stderr);
  assert.equal(sha256(tunnelled.stdout), sha256(BULK));
  assert.equal(lastRequest()?.remoteAddress, OUTGOING.tinyproxy);
  recordUpstream('tinyproxy (http://)', 'http', 'socks');
});

test(
  'tinyproxy with BasicAuth: the right password passes; its 401 to CONNECT is a 502 / 0x01',
  { skip },
  async () => {
    const forwarded = await curl(['-x', via('tiny-auth'), `${origin.url}/tiny?tiny-auth`]);
    assert.equal(forwarded.stdout.toString(), 'ok\n', forwarded.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.tinyproxy);
    const tunnelled = await curl(['-p', '-x', via('tiny-auth'), `${origin.url}/tiny`]);
    assert.equal(tunnelled.stdout.toString(), 'ok\n', tunnelled.stderr);
    const masked = '"tiny-wrong"';
    // tinyproxy refuses credentials with 401, not 407: to CONNECT that can only be its own
    // answer; to a plain request it could be the origin's, so it is passed on as it is.
    const client = await rawConnect(g.port('tiny-wrong'));
    client.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const answer = (await client.readToEnd()).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.ok(
      answer.endsWith(`\r\n\r\n502 Bad Gateway: upstream proxy ${masked} authentication failed\n`),
      answer,
    );
    const forwardedWrong = await curl([
      '-x',
      via('tiny-wrong'),
      `${origin.url}/tiny`,
      '-w',
      '%{http_code}',
    ]);
    assert.match(forwardedWrong.stdout.toString(), /401$/);
    const socks = await socks5Connect(g.port('tiny-wrong'), '127.0.0.1', origin.port);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
    recordUpstream('tinyproxy (http://, Basic)', 'http');
  },
);

test(
  'per-domain routing: an "intranet" name goes direct, the rest via squid',
  { skip },
  async () => {
    const intranet = await curl([
      '-x',
      via('routed'),
      `http://localhost:${origin.port}/tiny?intranet`,
    ]);
    assert.equal(intranet.stdout.toString(), 'ok\n', intranet.stderr);
    assert.equal(lastRequest()?.remoteAddress, '127.0.0.1', 'direct');
    assert.ok(!squid.accessLog().some((l) => l.includes('?intranet')));
    const internet = await curl(['-x', via('routed'), `${origin.url}/tiny?internet`]);
    assert.equal(internet.stdout.toString(), 'ok\n', internet.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid, 'via squid');
    const lines = g.sessions().filter((l) => l.inbound === 'routed');
    assert.deepEqual(
      lines.map((l) => l.outbound),
      ['direct', 'corp'],
    );
  },
);

test('no password reached the logs', { skip }, () => {
  const text = JSON.stringify(g.logs);
  for (const secret of [
    CORP.password,
    TINY.password,
    WRONG,
    Buffer.from(`${CORP.name}:${CORP.password}`).toString('base64'),
  ]) {
    assert.ok(!text.includes(secret), `${secret} in the logs`);
  }
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { amendFromUrls } from '../../src/config/one-liner.js';
import { configFrom, startGateway, type TestGateway } from '../helpers/gateway.js';
import { curl, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { selfSignedCertificate } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';

/** An HTTPS proxy: the HTTP proxy inside TLS, driven by the real curl with a throwaway CA. */

const dir = mkdtempSync(join(tmpdir(), 'junction-https-'));
const first = selfSignedCertificate(dir);
const secondDir = join(dir, 'second');
mkdirSync(secondDir);
const second = selfSignedCertificate(secondDir);

let origin: HttpOrigin;
let g: TestGateway;

const inbounds = (cert: { cert: string; key: string }): Record<string, unknown>[] => [
  { name: 'secure', type: 'https', listen: '127.0.0.1:0', tls: cert },
  {
    name: 'guarded',
    type: 'https',
    listen: '127.0.0.1:0',
    tls: cert,
    auth: { users: [{ username: 'alice', password: 'tls-pw' }] },
  },
  { name: 'both', type: 'mixed', listen: '127.0.0.1:0', tls: cert },
];

before(async () => {
  origin = await startHttpOrigin();
  g = await startGateway({ inbounds: inbounds(first) });
});

after(async () => {
  await g.stop();
  await origin.close();
});

const proxy = (inbound: string): string[] => [
  '--proxy',
  `https://127.0.0.1:${g.port(inbound)}`,
  '--proxy-cacert',
  first.cert,
];

test('curl --proxy https:// forwards a plain request and tunnels with CONNECT inside TLS', async () => {
  const plain = await curl([...proxy('secure'), `${origin.url}/tiny`]);
  assert.equal(plain.stderr, '');
  assert.equal(plain.stdout.toString(), 'ok\n');
  const tunnelled = await curl([...proxy('secure'), '--proxytunnel', `${origin.url}/tiny`]);
  assert.equal(tunnelled.stdout.toString(), 'ok\n');
  // The tunnel's line is written once both sides have closed, which may be after curl exits.
  await g.waitForLog((l) => l.msg === 'session' && l.protocol === 'connect');
  assert.ok(g.sessions().some((l) => l.protocol === 'http'));
});

test('Basic proxy authentication works inside TLS', async () => {
  const right = await curl([
    ...proxy('guarded'),
    '--proxy-user',
    'alice:tls-pw',
    '-w',
    '%{http_code}',
    `${origin.url}/tiny`,
  ]);
  assert.equal(right.stdout.toString(), 'ok\n200');
  const wrong = await curl([
    ...proxy('guarded'),
    '--proxy-user',
    'alice:nope',
    '-w',
    '%{http_code}',
    '-o',
    '/dev/null',
    `${origin.url}/tiny`,
  ]);
  assert.equal(wrong.stdout.toString(), '407');
});

test('a mixed inbound with a certificate takes TLS, plain HTTP and SOCKS5 on one port', async () => {
  const secure = await curl([...proxy('both'), `${origin.url}/tiny`]);
  assert.equal(secure.stdout.toString(), 'ok\n');
  const plain = await curl(['--proxy', `http://127.0.0.1:${g.port('both')}`, `${origin.url}/tiny`]);
  assert.equal(plain.stdout.toString(), 'ok\n');
  const { client, reply } = await socks5Connect(g.port('both'), '127.0.0.1', origin.port);
  assert.equal(reply, 0x00);
  client.socket.destroy();
});

test('a client that does not trust the certificate gets no proxy at all', async () => {
  const refused = await curl([
    '--proxy',
    `https://127.0.0.1:${g.port('secure')}`,
    `${origin.url}/tiny`,
  ]);
  assert.notEqual(refused.exitCode, 0);
  assert.match(refused.stderr, /certificate/i);
});

/** The fingerprint of the certificate the inbound presents now. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

function fingerprint(certFile: string): string {
  const out = execFileSync('openssl', [
    'x509',
    '-noout',
    '-fingerprint',
    '-sha256',
    '-in',
    certFile,
  ]);
  return out.toString().trim().split('=')[1] ?? '';
}

test('a reload presents the new certificate from the next connection on', async () => {
  assert.equal(await presented(g.port('secure')), fingerprint(first.cert));
  g.gateway.reload(configFrom({ inbounds: inbounds(second) }));
  assert.equal(await presented(g.port('secure')), fingerprint(second.cert));
  g.gateway.reload(configFrom({ inbounds: inbounds(first) }));
});

test('-L https://…?cert=…&key=… makes an https inbound; a bad pair is a configuration error', () => {
  const raw: Record<string, unknown> = {};
  amendFromUrls([`https://127.0.0.1:0?cert=${first.cert}&key=${first.key}`], [])(raw);
  assert.deepEqual(raw.inbounds, [
    {
      name: 'https-0',
      type: 'https',
      listen: '127.0.0.1:0',
      tls: { cert: first.cert, key: first.key },
    },
  ]);
  assert.throws(
    () => configFrom({ inbounds: [{ name: 'x', type: 'https', listen: '127.0.0.1:0' }] }),
    /inbounds\.0\.type: an https inbound needs tls: \{ cert, key \}/,
  );
  assert.throws(
    () =>
      configFrom({
        inbounds: [
          {
            name: 'x',
            type: 'https',
            listen: '127.0.0.1:0',
            tls: { cert: first.cert, key: readFileSync(second.key, 'utf8') },
          },
        ],
      }),
    /inbounds\.0\.tls: the certificate and key cannot be used/,
  );
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { BULK, curl, refusedPort, sha256, startHttpOrigin } from '../helpers/net.js';
import type { HttpOrigin } from '../helpers/net.js';
import {
  freePort,
  OUTGOING,
  selfSignedCertificate,
  startDante,
  startMicrosocks,
  startSquid,
  unavailable,
  type Peer,
  type Squid,
} from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * Chains of real proxies, each hop reached through the stream of the one before: squid →
 * microsocks, microsocks → squid → dante, and the repeated `-F` of the command line. The origin
 * sees the last hop's outgoing address; squid's access log shows what it was asked to reach.
 */

const skip = unavailable('squid', 'dante', 'microsocks', 'curl');
const CORP = { name: 'corp', password: 'Corp-chain-pw-5' };
const MS = { name: 'msuser', password: 'Ms-chain-pw-6' };

let origin: HttpOrigin;
let squid: Squid;
let microsocks: Peer;
let dante: Peer;
let g: TestGateway;
let deadPort: number;
let certDir: string;
let cert: { cert: string; key: string };

before(async () => {
  if (skip) return;
  certDir = mkdtempSync(join(tmpdir(), 'junction-cert-'));
  cert = selfSignedCertificate(certDir);
  origin = await startHttpOrigin();
  deadPort = await refusedPort();
  [squid, microsocks, dante] = await Promise.all([
    startSquid({ user: CORP, tls: cert }),
    startMicrosocks({ user: MS }),
    startDante(),
  ]);
  g = await startGateway({
    inbounds: ['two', 'three', 'http-last', 'broken', 'with-direct', 'tls-socks', 'tls-tls'].map(
      (name) => ({
        name,
        type: 'mixed',
        listen: '127.0.0.1:0',
      }),
    ),
    outbounds: [
      { name: 'squid', url: `http://${CORP.name}:${CORP.password}@127.0.0.1:${squid.port}` },
      { name: 'ms', url: `socks5h://${MS.name}:${MS.password}@127.0.0.1:${microsocks.port}` },
      { name: 'dante', url: `socks5://127.0.0.1:${dante.port}` },
      { name: 'dead', url: `socks5h://127.0.0.1:${deadPort}` },
      {
        name: 'squid-tls',
        url: `https://${CORP.name}:${CORP.password}@127.0.0.1:${String(squid.tlsPort)}`,
        tls: { ca: cert.cert },
      },
      { name: 'tls-then-ms', chain: ['squid-tls', 'ms'] },
      { name: 'tls-then-tls', chain: ['squid-tls', 'squid-tls'] },
      { name: 'squid-then-ms', chain: ['squid', 'ms'] },
      { name: 'ms-then-squid', chain: ['ms', 'squid'] },
      // A chain of a chain: flattened to microsocks → squid → dante.
      { name: 'ms-squid-dante', chain: ['ms-then-squid', 'dante'] },
      { name: 'squid-then-dead', chain: ['squid', 'dead'] },
      { name: 'direct-then-squid', chain: ['direct', 'squid'] },
    ],
    rules: [
      { inbound: ['two'], outbound: 'squid-then-ms' },
      { inbound: ['three'], outbound: 'ms-squid-dante' },
      { inbound: ['http-last'], outbound: 'ms-then-squid' },
      { inbound: ['broken'], outbound: 'squid-then-dead' },
      { inbound: ['with-direct'], outbound: 'direct-then-squid' },
      { inbound: ['tls-socks'], outbound: 'tls-then-ms' },
      { inbound: ['tls-tls'], outbound: 'tls-then-tls' },
    ],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([squid.stop(), microsocks.stop(), dante.stop(), origin.close()]);
  rmSync(certDir, { recursive: true, force: true });
});

const lastRequest = () => origin.requests.at(-1);
const squidAsked = (what: string): string[] => squid.accessLog().filter((l) => l.includes(what));

test(
  'chain squid → microsocks: SOCKS5 in, out through squid, then microsocks',
  { skip },
  async () => {
    const before = squidAsked(`CONNECT 127.0.0.1:${microsocks.port} `).length;
    const result = await curl(['-x', `socks5h://127.0.0.1:${g.port('two')}`, `${origin.url}/bulk`]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(sha256(result.stdout), sha256(BULK));
    assert.equal(
      lastRequest()?.remoteAddress,
      OUTGOING.microsocks,
      'microsocks reached the origin',
    );
    await squid.waitForAccess(`CONNECT 127.0.0.1:${microsocks.port} `, before + 1);
    recordUpstream('chain: squid → microsocks', 'socks');
  },
);

test(
  'three hops, microsocks → squid → dante: SOCKS5 in, HTTP in (absolute-form and CONNECT)',
  { skip },
  async () => {
    const socks = await curl([
      '-x',
      `socks5h://127.0.0.1:${g.port('three')}`,
      `${origin.url}/bulk`,
    ]);
    assert.equal(socks.exitCode, 0, socks.stderr);
    assert.equal(sha256(socks.stdout), sha256(BULK));
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante, 'dante reached the origin');
    const http = `http://127.0.0.1:${g.port('three')}`;
    const forwarded = await curl(['-x', http, `${origin.url}/tiny?three`]);
    assert.equal(forwarded.stdout.toString(), 'ok\n', forwarded.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    assert.equal(lastRequest()?.url, '/tiny?three', 'origin-form through the last (SOCKS) hop');
    const tunnelled = await curl(['-p', '-x', http, `${origin.url}/tiny`]);
    assert.equal(tunnelled.stdout.toString(), 'ok\n', tunnelled.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    const viaSquid = await squid.waitForAccess(`CONNECT 127.0.0.1:${dante.port} corp`, 3);
    assert.ok(
      viaSquid.every((l) => l.includes(` ${OUTGOING.microsocks} `)),
      'squid reached via microsocks',
    );
    recordUpstream('chain: microsocks → squid → dante', 'socks', 'http');
  },
);

test(
  'a chain ending at an HTTP proxy sends plain requests to it in absolute-form',
  { skip },
  async () => {
    const result = await curl([
      '-x',
      `http://127.0.0.1:${g.port('http-last')}`,
      `${origin.url}/tiny?http-last`,
    ]);
    assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
    await squid.waitForAccess(`GET http://127.0.0.1:${origin.port}/tiny?http-last corp`);
    recordUpstream('chain: microsocks → squid', 'http');
  },
);

test('`direct` in a chain adds no hop', { skip }, async () => {
  const result = await curl([
    '-x',
    `socks5h://127.0.0.1:${g.port('with-direct')}`,
    `${origin.url}/tiny`,
  ]);
  assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
  assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
  recordUpstream('chain: direct → squid', 'socks');
});

test(
  'TLS hops: SOCKS5 inside TLS to squid, and TLS inside a tunnel through the same squid',
  { skip },
  async () => {
    const socksInTls = await curl([
      '-x',
      `socks5h://127.0.0.1:${g.port('tls-socks')}`,
      `${origin.url}/bulk`,
    ]);
    assert.equal(sha256(socksInTls.stdout), sha256(BULK), socksInTls.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.microsocks);
    const tlsInTls = await curl([
      '-x',
      `socks5h://127.0.0.1:${g.port('tls-tls')}`,
      `${origin.url}/bulk`,
    ]);
    assert.equal(sha256(tlsInTls.stdout), sha256(BULK), tlsInTls.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.squid);
    const plain = await curl([
      '-x',
      `http://127.0.0.1:${g.port('tls-tls')}`,
      `${origin.url}/tiny?tls-tls`,
    ]);
    assert.equal(plain.stdout.toString(), 'ok\n', plain.stderr);
    // The second hop is squid reached through itself: it logs the request from its own address.
    const [line] = await squid.waitForAccess(
      `GET http://127.0.0.1:${origin.port}/tiny?tls-tls corp`,
    );
    assert.match(line ?? '', new RegExp(` ${OUTGOING.squid.replaceAll('.', '\\.')} `));
    recordUpstream('chain: squid (https://) → microsocks', 'socks');
    recordUpstream('chain: squid (https://) → squid (https://)', 'socks', 'http');
  },
);

test('a hop failing mid-chain names the hop that failed', { skip }, async () => {
  const socks = await socks5Connect(g.port('broken'), '127.0.0.1', origin.port);
  assert.equal(socks.reply, 0x01);
  socks.client.socket.destroy();
  const line = await g.waitForLog((l) => l.msg === 'session' && l.inbound === 'broken');
  assert.equal(
    line.error,
    `upstream proxy "squid" answered 503 Service Unavailable to CONNECT 127.0.0.1:${deadPort}`,
  );
});

test(
  'repeated -F on the command line is a chain, first hop first (the real CLI)',
  { skip },
  async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/main.ts',
        '-L',
        `socks5://127.0.0.1:${port}`,
        '-F',
        `http://${CORP.name}:${CORP.password}@127.0.0.1:${squid.port}`,
        '-F',
        `socks5h://${MS.name}:${MS.password}@127.0.0.1:${microsocks.port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    // The CLI logs a JSON "listening" line once its inbound is bound: that is the signal.
    const listening = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.includes('"msg":"listening"')) resolve();
      });
      child.once('exit', () => reject(new Error(`junction exited: ${output}`)));
    });
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(child, 'exit');
    try {
      await listening;
      const before = squidAsked(`CONNECT 127.0.0.1:${microsocks.port} corp`).length;
      const result = await curl(['-x', `socks5h://127.0.0.1:${port}`, `${origin.url}/tiny?cli`]);
      assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
      assert.equal(lastRequest()?.remoteAddress, OUTGOING.microsocks);
      await squid.waitForAccess(`CONNECT 127.0.0.1:${microsocks.port} corp`, before + 1);
    } finally {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    assert.ok(!output.includes(CORP.password) && !output.includes(MS.password), output);
  },
);

test('no password reached the logs', { skip }, () => {
  const text = JSON.stringify(g.logs);
  for (const secret of [CORP.password, MS.password]) {
    assert.ok(!text.includes(secret), `${secret} in the logs`);
  }
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  BULK,
  BULK_SIZE,
  curl,
  patternBytes,
  sha256,
  startHttpOrigin,
  type HttpOrigin,
} from '../helpers/net.js';
import { startPrivoxy, unavailable, type Peer } from '../helpers/peers.js';
import { eventually } from '../helpers/wait.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction in front of privoxy, an HTTP forwarding proxy: a SOCKS5 client's stream goes to it as
 * CONNECT, an HTTP client's plain request as absolute-form. Privoxy cannot choose the address it
 * connects from, so its request log (common log format) proves which way each request went.
 */

const skip = unavailable('privoxy', 'curl');

let origin: HttpOrigin;
let privoxy: Peer;
let g: TestGateway;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  privoxy = await startPrivoxy();
  g = await startGateway({
    inbounds: [
      { name: 'socks', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'web', type: 'http', listen: '127.0.0.1:0' },
    ],
    outbounds: [{ name: 'privoxy', url: `http://127.0.0.1:${privoxy.port}` }],
    rules: [{ outbound: 'privoxy' }],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([privoxy.stop(), origin.close()]);
});

/** Privoxy's log lines for requests, once one containing `text` is there. */
async function privoxyAsked(text: string): Promise<string[]> {
  const requests = (): string[] =>
    privoxy
      .read('privoxy.log')
      .split('\n')
      .filter((line) => line.includes('] "'));
  // Privoxy writes a request's line once it is done (a tunnel: once both sides closed).
  await eventually(
    () => requests().some((line) => line.includes(text)),
    () => `privoxy to log ${text}:\n${privoxy.read('privoxy.log')}`,
  );
  return requests();
}

test('SOCKS5 in → privoxy: the stream goes to privoxy as CONNECT (4 MiB)', { skip }, async () => {
  const path = '/bulk?via=socks5-privoxy';
  const result = await curl([
    '-x',
    `socks5h://127.0.0.1:${g.port('socks')}`,
    `${origin.url}${path}`,
  ]);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(sha256(result.stdout), sha256(BULK));
  assert.equal(origin.requests.filter((r) => r.url === path).length, 1);
  const asked = await privoxyAsked(`"CONNECT 127.0.0.1:${origin.port} HTTP/1.1" 200`);
  assert.ok(!asked.some((line) => line.includes(path)), 'privoxy saw only the tunnel');
  const session = await g.waitForLog((l) => l.msg === 'session' && l.inbound === 'socks');
  assert.equal(session.protocol, 'socks5');
  assert.equal(session.outbound, 'privoxy');
  assert.equal(session.result, 'ok');
  recordUpstream('privoxy (http://)', 'socks');
});

test('HTTP in, plain GET → privoxy: absolute-form, not CONNECT (4 MiB)', { skip }, async () => {
  const path = '/bulk?via=http-privoxy';
  const result = await curl(['-x', `http://127.0.0.1:${g.port('web')}`, `${origin.url}${path}`]);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(sha256(result.stdout), sha256(BULK));
  const seen = origin.requests.filter((r) => r.url === path);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.headers['proxy-authorization'], undefined);
  const asked = await privoxyAsked(path);
  const lines = asked.filter((line) => line.includes(path));
  assert.equal(lines.length, 1, asked.join('\n'));
  assert.match(
    lines[0] ?? '',
    new RegExp(
      `"GET http://127\\.0\\.0\\.1:${origin.port}/bulk\\?via=http-privoxy HTTP/1\\.1" 200 ${BULK_SIZE}$`,
    ),
  );
  recordUpstream('privoxy (http://)', 'http');
});

test(
  'HTTP in, plain POST → privoxy: the body goes up and comes back (1 MiB)',
  { skip },
  async () => {
    const body = patternBytes(1024 * 1024 + 3, 9);
    const dir = mkdtempSync(join(tmpdir(), 'junction-privoxy-upload-'));
    try {
      const file = join(dir, 'body.bin');
      writeFileSync(file, body);
      const path = '/echo?via=http-privoxy';
      const result = await curl([
        '-x',
        `http://127.0.0.1:${g.port('web')}`,
        '--data-binary',
        `@${file}`,
        '-H',
        'Content-Type: application/octet-stream',
        `${origin.url}${path}`,
      ]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(sha256(result.stdout), sha256(body));
      const seen = origin.requests.filter((r) => r.url === path);
      assert.equal(seen.length, 1);
      assert.equal(sha256(seen[0]?.body ?? Buffer.alloc(0)), sha256(body));
      const asked = await privoxyAsked(path);
      assert.ok(
        asked.some((line) =>
          line.includes(`"POST http://127.0.0.1:${origin.port}${path} HTTP/1.1" 200`),
        ),
        asked.join('\n'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

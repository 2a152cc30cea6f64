import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { proves } from '../helpers/matrix.js';
import { curl, patternBytes, sha256, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { selfSignedCertificate, unavailable } from '../helpers/peers.js';
import { CLIENT_USER, nextSession } from '../helpers/programs.js';

/**
 * curl with every proxy scheme it knows against each inbound the scheme applies to, with and
 * without --proxy-user, forwarding and --proxytunnel, HTTP/1.0 and HTTP/1.1. Each case POSTs a
 * payload to the origin's echo: the origin's record shows the request arrived once, without
 * proxy credentials, and curl gets the same bytes back.
 */

const skip = unavailable('curl', 'openssl');

const INBOUNDS = ['http', 'https', 'socks', 'mixed'] as const;
type Inbound = (typeof INBOUNDS)[number];

const SCHEMES = ['http', 'https', 'socks4', 'socks4a', 'socks5', 'socks5h'] as const;
type Scheme = (typeof SCHEMES)[number];

/** The inbounds each scheme applies to, and whether it can carry credentials. */
const APPLIES: Record<Scheme, { inbounds: readonly Inbound[]; auth: boolean }> = {
  http: { inbounds: ['http', 'mixed'], auth: true },
  https: { inbounds: ['https'], auth: true },
  // SOCKS4 has a user id but no password: an inbound with auth refuses it.
  socks4: { inbounds: ['socks', 'mixed'], auth: false },
  socks4a: { inbounds: ['socks', 'mixed'], auth: false },
  socks5: { inbounds: ['socks', 'mixed'], auth: true },
  socks5h: { inbounds: ['socks', 'mixed'], auth: true },
};

const PAYLOAD = patternBytes(64 * 1024 + 7, 13);

const inboundName = (type: Inbound, auth: boolean): string => (auth ? `${type}-auth` : type);

let dir: string;
let tls: { cert: string; key: string };
let payloadFile: string;
let origin: HttpOrigin;
let g: TestGateway;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'junction-curl-'));
  tls = selfSignedCertificate(dir);
  payloadFile = join(dir, 'payload');
  writeFileSync(payloadFile, PAYLOAD);
  origin = await startHttpOrigin();
  g = await startGateway({
    inbounds: INBOUNDS.flatMap((type) =>
      [false, true].map((auth) => ({
        name: inboundName(type, auth),
        type,
        listen: '127.0.0.1:0',
        ...(type === 'https' && { tls }),
        ...(auth && { auth: { users: [CLIENT_USER] } }),
      })),
    ),
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

function proxyArgs(scheme: Scheme, type: Inbound, auth: boolean): string[] {
  return [
    '--proxy',
    `${scheme}://127.0.0.1:${g.port(inboundName(type, auth))}`,
    ...(scheme === 'https' ? ['--proxy-cacert', tls.cert] : []),
    ...(auth ? ['--proxy-user', `${CLIENT_USER.username}:${CLIENT_USER.password}`] : []),
  ];
}

const pathOf = (url: string): string => url.replace(/^https?:\/\/[^/]+/, '');

interface Case {
  readonly scheme: Scheme;
  readonly type: Inbound;
  readonly auth: boolean;
  readonly tunnel: boolean;
  readonly version: '1.0' | '1.1';
}

const cases: Case[] = SCHEMES.flatMap((scheme) =>
  APPLIES[scheme].inbounds.flatMap((type) =>
    (APPLIES[scheme].auth ? [false, true] : [false]).flatMap((auth) =>
      (scheme.startsWith('http') ? [false, true] : [false]).flatMap((tunnel) =>
        (['1.0', '1.1'] as const).map((version) => ({ scheme, type, auth, tunnel, version })),
      ),
    ),
  ),
);

for (const { scheme, type, auth, tunnel, version } of cases) {
  const how = `${tunnel ? ' --proxytunnel' : ''} --http${version}`;
  const name = `curl --proxy ${scheme}://${how} on the ${type} inbound, ${auth ? 'with' : 'without'} --proxy-user`;
  const cell = { client: `curl ${scheme}://`, inbound: type, auth };
  test(
    name,
    { skip },
    proves(cell, async () => {
      const path = `/echo?curl=${scheme}-${type}-${auth ? 'auth' : 'open'}-${tunnel ? 'tunnel' : 'plain'}-${version}`;
      const out = join(dir, 'answer');
      const session = nextSession(g, inboundName(type, auth));
      const result = await curl([
        ...proxyArgs(scheme, type, auth),
        ...(tunnel ? ['--proxytunnel'] : []),
        `--http${version}`,
        '--data-binary',
        `@${payloadFile}`,
        '-H',
        'content-type: application/octet-stream',
        '-o',
        out,
        '-w',
        '%{http_code}',
        '--verbose',
        `${origin.url}${path}`,
      ]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout.toString(), '200');
      // What curl put on the wire: origin-form inside a tunnel, absolute-form to an HTTP proxy.
      const target = scheme.startsWith('http') && !tunnel ? `${origin.url}${path}` : path;
      assert.ok(
        result.stderr.includes(`> POST ${target} HTTP/${version}\r\n`),
        `curl sent POST ${target} HTTP/${version}`,
      );
      assert.equal(sha256(readFileSync(out)), sha256(PAYLOAD));
      const seen = origin.requests.filter((r) => pathOf(r.url) === path);
      const [request, ...more] = seen;
      assert.ok(request && more.length === 0, `origin saw ${path} once`);
      assert.equal(request.method, 'POST');
      // A tunnel carries curl's own request; forwarding speaks HTTP/1.1 to the origin.
      assert.equal(request.httpVersion, tunnel || !scheme.startsWith('http') ? version : '1.1');
      assert.equal(sha256(request.body), sha256(PAYLOAD));
      assert.equal(request.headers['proxy-authorization'], undefined);
      const line = await session;
      assert.equal(line.target, `127.0.0.1:${origin.port}`);
      assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
      assert.equal(line.result, 'ok');
    }),
  );
}

test(
  'without --proxy-user an inbound with auth answers 407 or refuses the SOCKS handshake',
  { skip },
  async () => {
    const path = '/tiny?curl=no-credentials';
    for (const scheme of ['http', 'https'] as const) {
      for (const tunnel of [false, true]) {
        const type = scheme === 'http' ? 'http' : 'https';
        const result = await curl([
          '--proxy',
          `${scheme}://127.0.0.1:${g.port(inboundName(type, true))}`,
          ...(scheme === 'https' ? ['--proxy-cacert', tls.cert] : []),
          ...(tunnel ? ['--proxytunnel'] : []),
          '-o',
          '/dev/null',
          '-w',
          tunnel ? '%{http_connect}' : '%{http_code}',
          `${origin.url}${path}`,
        ]);
        assert.equal(result.stdout.toString(), '407', `${scheme} tunnel=${String(tunnel)}`);
      }
    }
    for (const scheme of ['socks4', 'socks4a', 'socks5', 'socks5h'] as const) {
      const result = await curl([
        '--proxy',
        `${scheme}://127.0.0.1:${g.port(inboundName('socks', true))}`,
        `${origin.url}${path}`,
      ]);
      // CURLE_PROXY: the proxy handshake failed.
      assert.equal(result.exitCode, 97, `${scheme}: ${result.stderr}`);
    }
    const wrong = await curl([
      '--proxy',
      `socks5h://127.0.0.1:${g.port(inboundName('socks', true))}`,
      '--proxy-user',
      `${CLIENT_USER.username}:not-the-password`,
      `${origin.url}${path}`,
    ]);
    assert.equal(wrong.exitCode, 97, wrong.stderr);
    assert.equal(origin.requests.filter((r) => pathOf(r.url) === path).length, 0);
  },
);

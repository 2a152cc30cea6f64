import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { BULK, curl, refusedPort, sha256, startHttpOrigin } from '../helpers/net.js';
import type { HttpOrigin } from '../helpers/net.js';
import { unavailable } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction as the upstream of junction: no Debian peer needed, and the upstream's access log
 * shows exactly what it was asked (a name or an address, CONNECT or a plain request, which user).
 */

const skip = unavailable('curl');
const HOP = { username: 'hop', password: 'Hop-pw-44' };
const WRONG = 'not-the-hop-pw';

let origin: HttpOrigin;
let upstream: TestGateway;
let g: TestGateway;
let deadPort: number;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  deadPort = await refusedPort();
  upstream = await startGateway({
    inbounds: [
      { name: 'socks', type: 'socks', listen: '127.0.0.1:0', auth: { users: [HOP] } },
      { name: 'open', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'http', type: 'http', listen: '127.0.0.1:0', auth: { users: [HOP] } },
    ],
    rules: [{ domain: ['blocked.test'], outbound: 'reject' }],
  });
  const at = (inbound: string): string => `127.0.0.1:${upstream.port(inbound)}`;
  const creds = `${HOP.username}:${HOP.password}`;
  const routes = {
    s5h: `socks5h://${creds}@${at('socks')}`,
    s5: `socks5://${creds}@${at('socks')}`,
    s4a: `socks4a://${at('open')}`,
    s4: `socks4://${at('open')}`,
    h: `http://${creds}@${at('http')}`,
    'h-wrong': `http://${HOP.username}:${WRONG}@${at('http')}`,
    's-wrong': `socks5h://${HOP.username}:${WRONG}@${at('socks')}`,
  };
  const names = Object.keys(routes);
  g = await startGateway({
    inbounds: names.map((name) => ({ name, type: 'mixed', listen: '127.0.0.1:0' })),
    outbounds: Object.entries(routes).map(([name, url]) => ({ name, url })),
    rules: names.map((name) => ({ inbound: [name], outbound: name })),
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await upstream.stop();
  await origin.close();
});

const socksUrl = (inbound: string): string => `socks5h://127.0.0.1:${g.port(inbound)}`;
const httpUrl = (inbound: string): string => `http://127.0.0.1:${g.port(inbound)}`;

/** The upstream's access line for the request whose path carries `tag`. */
function upstreamLine(inbound: string, match: (l: LogLine) => boolean): Promise<LogLine> {
  return upstream.waitForLog((l) => l.msg === 'session' && l.inbound === inbound && match(l));
}

test('socks5h sends the name to the upstream, socks5 resolves it here', { skip }, async () => {
  const named = await curl(['-x', socksUrl('s5h'), `http://localhost:${origin.port}/tiny`]);
  assert.equal(named.stdout.toString(), 'ok\n', named.stderr);
  const byName = await upstreamLine('socks', (l) => l.target === `localhost:${origin.port}`);
  assert.equal(byName.user, HOP.username);
  const resolved = await curl(['-x', socksUrl('s5'), `http://localhost:${origin.port}/bulk`]);
  assert.equal(sha256(resolved.stdout), sha256(BULK), resolved.stderr);
  await upstreamLine('socks', (l) => l.target === `127.0.0.1:${origin.port}` && l.result === 'ok');
  recordUpstream('junction (socks5h://, username)', 'socks');
  recordUpstream('junction (socks5://, username)', 'socks');
});

test('socks4a sends the name, socks4 an address', { skip }, async () => {
  const named = await curl(['-x', socksUrl('s4a'), `http://localhost:${origin.port}/tiny?4a`]);
  assert.equal(named.stdout.toString(), 'ok\n', named.stderr);
  const line = await upstreamLine('open', (l) => l.target === `localhost:${origin.port}`);
  assert.equal(line.protocol, 'socks4');
  const resolved = await curl(['-x', socksUrl('s4'), `http://localhost:${origin.port}/tiny?4`]);
  assert.equal(resolved.stdout.toString(), 'ok\n', resolved.stderr);
  await upstreamLine(
    'open',
    (l) => l.target === `127.0.0.1:${origin.port}` && l.protocol === 'socks4',
  );
  recordUpstream('junction (socks4a://)', 'socks');
  recordUpstream('junction (socks4://)', 'socks');
});

test(
  'an upstream SOCKS5 reply reaches a SOCKS5 client unchanged (0x02 rule, 0x05 refused)',
  { skip },
  async () => {
    const refusedByRule = await socks5Connect(g.port('s5h'), 'blocked.test', 80);
    assert.equal(refusedByRule.reply, 0x02);
    refusedByRule.client.socket.destroy();
    const refused = await socks5Connect(g.port('s5h'), '127.0.0.1', deadPort);
    assert.equal(refused.reply, 0x05);
    refused.client.socket.destroy();
    const line = await g.waitForLog((l) => l.msg === 'session' && l.target === 'blocked.test:80');
    assert.equal(line.result, 'UPSTREAM_REFUSED');
    assert.match(String(line.error), /not allowed by its rules \(SOCKS5 reply 0x02\)$/);
    const viaHttp = await curl([
      '-x',
      httpUrl('s5h'),
      'http://blocked.test/',
      '-w',
      '%{http_code}',
    ]);
    assert.match(
      viaHttp.stdout.toString(),
      /^502 Bad Gateway: upstream proxy "s5h" could not connect to blocked\.test:80: not allowed by its rules \(SOCKS5 reply 0x02\)\n502$/,
    );
  },
);

test(
  'a SOCKS4 upstream refusal is a general failure (0x01) for a SOCKS5 client',
  { skip },
  async () => {
    const socks = await socks5Connect(g.port('s4a'), 'blocked.test', 80);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
  },
);

test(
  'through an HTTP upstream, plain requests arrive as plain requests and CONNECT as CONNECT',
  { skip },
  async () => {
    const forwarded = await curl(['-x', httpUrl('h'), `${origin.url}/tiny?plain`]);
    assert.equal(forwarded.stdout.toString(), 'ok\n', forwarded.stderr);
    const plain = await upstreamLine(
      'http',
      (l) => l.target === `127.0.0.1:${origin.port}` && l.protocol === 'http',
    );
    assert.equal(plain.user, HOP.username);
    const tunnelled = await curl(['-x', socksUrl('h'), `${origin.url}/bulk`]);
    assert.equal(sha256(tunnelled.stdout), sha256(BULK), tunnelled.stderr);
    await upstreamLine(
      'http',
      (l) => l.target === `127.0.0.1:${origin.port}` && l.protocol === 'connect',
    );
    recordUpstream('junction (http://, Basic)', 'http', 'socks');
  },
);

test('wrong credentials for the upstream junction: HTTP 502, SOCKS5 0x01', { skip }, async () => {
  const result = await curl(['-x', httpUrl('h-wrong'), `${origin.url}/tiny`, '-w', '%{http_code}']);
  assert.equal(
    result.stdout.toString(),
    '502 Bad Gateway: upstream proxy "h-wrong" authentication failed (Basic)\n502',
  );
  for (const inbound of ['h-wrong', 's-wrong']) {
    const socks = await socks5Connect(g.port(inbound), '127.0.0.1', origin.port);
    assert.equal(socks.reply, 0x01, inbound);
    socks.client.socket.destroy();
  }
});

test("no password reached either gateway's logs", { skip }, () => {
  const text = JSON.stringify(g.logs) + JSON.stringify(upstream.logs);
  for (const secret of [
    HOP.password,
    WRONG,
    Buffer.from(`${HOP.username}:${HOP.password}`).toString('base64'),
  ]) {
    assert.ok(!text.includes(secret), `${secret} in the logs`);
  }
});

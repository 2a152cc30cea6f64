import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { BULK, curl, rawConnect, refusedPort, sha256, startHttpOrigin } from '../helpers/net.js';
import type { HttpOrigin } from '../helpers/net.js';
import {
  OUTGOING,
  startDante,
  startMicrosocks,
  SYSTEM_USER,
  systemUserUnavailable,
  unavailable,
  type Peer,
} from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction in front of real SOCKS proxies: dante (SOCKS4 and 5, with and without username
 * auth against a system account) and microsocks (SOCKS5 with -u/-P). The origin's record of
 * peer addresses proves the path: dante connects out from 127.0.0.4, microsocks from 127.0.0.3.
 */

const skip = unavailable('dante', 'microsocks', 'curl') || systemUserUnavailable();
const MS = { name: 'msuser', password: 'Ms-pw-92' };
const WRONG = 'not-the-ms-pw';

let origin: HttpOrigin;
let dante: Peer;
let danteAuth: Peer;
let microsocks: Peer;
let g: TestGateway;
let deadPort: number;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  deadPort = await refusedPort();
  [dante, danteAuth, microsocks] = await Promise.all([
    startDante(),
    startDante({ auth: true }),
    startMicrosocks({ user: MS }),
  ]);
  const sys = `${SYSTEM_USER.name}:${SYSTEM_USER.password}`;
  const routes = {
    'dante-5h': `socks5h://127.0.0.1:${dante.port}`,
    'dante-5': `socks5://127.0.0.1:${dante.port}`,
    'dante-4': `socks4://127.0.0.1:${dante.port}`,
    'dante-auth': `socks5h://${sys}@127.0.0.1:${danteAuth.port}`,
    'dante-wrong': `socks5h://${SYSTEM_USER.name}:wrong-${SYSTEM_USER.password}@127.0.0.1:${danteAuth.port}`,
    'dante-none': `socks5h://127.0.0.1:${danteAuth.port}`,
    ms: `socks5h://${MS.name}:${MS.password}@127.0.0.1:${microsocks.port}`,
    'ms-wrong': `socks5h://${MS.name}:${WRONG}@127.0.0.1:${microsocks.port}`,
  };
  const names = Object.keys(routes);
  g = await startGateway({
    limits: { deny_destinations: ['169.254.0.0/16'] },
    inbounds: names.map((name) => ({ name, type: 'mixed', listen: '127.0.0.1:0' })),
    outbounds: Object.entries(routes).map(([name, url]) => ({ name, url })),
    rules: names.map((name) => ({ inbound: [name], outbound: name })),
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([dante.stop(), danteAuth.stop(), microsocks.stop(), origin.close()]);
});

const http = (inbound: string): string => `http://127.0.0.1:${g.port(inbound)}`;
const lastRequest = () => origin.requests.at(-1);

test(
  'HTTP in → dante (socks5h): a SOCKS proxy turned into an HTTP proxy, absolute-form and CONNECT',
  { skip },
  async () => {
    const forwarded = await curl(['-x', http('dante-5h'), `${origin.url}/bulk`]);
    assert.equal(forwarded.exitCode, 0, forwarded.stderr);
    assert.equal(sha256(forwarded.stdout), sha256(BULK));
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    const tunnelled = await curl(['-p', '-x', http('dante-5h'), `${origin.url}/tiny`]);
    assert.equal(tunnelled.stdout.toString(), 'ok\n', tunnelled.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    recordUpstream('dante (socks5h://)', 'http');
  },
);

test('HTTP in → microsocks with -u/-P (socks5h, username/password)', { skip }, async () => {
  const result = await curl(['-x', http('ms'), `${origin.url}/tiny?ms`]);
  assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
  assert.equal(lastRequest()?.remoteAddress, OUTGOING.microsocks);
  recordUpstream('microsocks (socks5h://, username)', 'http');
});

test(
  'dante with username auth (a system account) lets the right password through',
  { skip },
  async () => {
    const result = await curl([
      '-x',
      `socks5h://127.0.0.1:${g.port('dante-auth')}`,
      `${origin.url}/bulk`,
    ]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(sha256(result.stdout), sha256(BULK));
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    recordUpstream('dante (socks5h://, username)', 'socks');
  },
);

test(
  'socks5 resolves names locally, socks5h sends them: an unresolvable name fails here or at dante',
  { skip },
  async () => {
    // .invalid never resolves (RFC 6761): where the failure comes from shows who resolved.
    const local = await socks5Connect(g.port('dante-5'), 'nothing.invalid', 80);
    assert.equal(local.reply, 0x04);
    local.client.socket.destroy();
    const localLine = await g.waitForLog(
      (l) => l.msg === 'session' && l.inbound === 'dante-5' && l.target === 'nothing.invalid:80',
    );
    assert.equal(localLine.result, 'DNS_FAILED');
    assert.equal(localLine.error, 'connect to nothing.invalid:80: name not resolved');
    const remote = await socks5Connect(g.port('dante-5h'), 'nothing.invalid', 80);
    remote.client.socket.destroy();
    const remoteLine = await g.waitForLog(
      (l) => l.msg === 'session' && l.inbound === 'dante-5h' && l.target === 'nothing.invalid:80',
    );
    const rep = `0x${remote.reply.toString(16).padStart(2, '0')}`;
    assert.match(
      String(remoteLine.error),
      new RegExp(
        `^upstream proxy "dante-5h" could not connect to nothing\\.invalid:80: .* \\(SOCKS5 reply ${rep}\\)$`,
      ),
    );
    const named = await curl([
      '-x',
      http('dante-5'),
      `http://localhost:${origin.port}/tiny?socks5`,
    ]);
    assert.equal(named.stdout.toString(), 'ok\n', named.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    recordUpstream('dante (socks5://)', 'socks', 'http');
  },
);

test(
  'socks4 upstream (dante): the name is resolved locally and the request goes through',
  { skip },
  async () => {
    const result = await curl([
      '-x',
      http('dante-4'),
      `http://localhost:${origin.port}/tiny?socks4`,
    ]);
    assert.equal(result.stdout.toString(), 'ok\n', result.stderr);
    assert.equal(lastRequest()?.remoteAddress, OUTGOING.dante);
    recordUpstream('dante (socks4://)', 'http');
  },
);

test(
  "an upstream SOCKS5 reply is passed through unchanged: dante's 0x05 for a refused port",
  { skip },
  async () => {
    const socks = await socks5Connect(g.port('dante-5h'), '127.0.0.1', deadPort);
    assert.equal(socks.reply, 0x05);
    socks.client.socket.destroy();
    const line = await g.waitForLog(
      (l) =>
        l.msg === 'session' && l.target === `127.0.0.1:${deadPort}` && l.result === 'CONN_REFUSED',
    );
    assert.equal(
      line.error,
      `upstream proxy "dante-5h" could not connect to 127.0.0.1:${deadPort}: connection refused (SOCKS5 reply 0x05)`,
    );
    const viaHttp = await curl([
      '-x',
      http('dante-5h'),
      `http://127.0.0.1:${deadPort}/`,
      '-w',
      '%{http_code}',
    ]);
    assert.equal(
      viaHttp.stdout.toString(),
      `502 Bad Gateway: upstream proxy "dante-5h" could not connect to 127.0.0.1:${deadPort}: connection refused (SOCKS5 reply 0x05)\n502`,
    );
  },
);

test(
  'a wrong upstream SOCKS password: SOCKS5 0x01 and HTTP 502 "upstream proxy authentication failed"',
  { skip },
  async () => {
    for (const inbound of ['ms-wrong', 'dante-wrong']) {
      const socks = await socks5Connect(g.port(inbound), '127.0.0.1', origin.port);
      assert.equal(socks.reply, 0x01, inbound);
      socks.client.socket.destroy();
      const result = await curl(['-x', http(inbound), `${origin.url}/tiny`, '-w', '%{http_code}']);
      assert.equal(
        result.stdout.toString(),
        `502 Bad Gateway: upstream proxy "${inbound}" authentication failed\n502`,
      );
    }
    const none = await curl(['-x', http('dante-none'), `${origin.url}/tiny`, '-w', '%{http_code}']);
    assert.equal(
      none.stdout.toString(),
      '502 Bad Gateway: upstream proxy "dante-none" authentication failed: it wants credentials and none are configured\n502',
    );
  },
);

test(
  'deny_destinations applies to the target through a SOCKS upstream, not to the proxy',
  { skip },
  async () => {
    const client = await rawConnect(g.port('dante-5h'));
    client.write('CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = (await client.readToEnd()).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(answer, /connect to 169\.254\.169\.254:80: destination not allowed\n$/);
    const socks = await socks5Connect(g.port('dante-5'), '169.254.169.254', 80);
    assert.equal(socks.reply, 0x02);
    socks.client.socket.destroy();
  },
);

test('no password reached the logs', { skip }, () => {
  const text = JSON.stringify(g.logs);
  for (const secret of [MS.password, WRONG, SYSTEM_USER.password]) {
    assert.ok(!text.includes(secret), `${secret} in the logs`);
  }
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { curl, rawConnect, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { OUTGOING, startSquid, unavailable, type Squid } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction answering a real squid's 407: Digest through digest_file_auth, Basic negotiated after
 * the challenge or sent pre-emptively. The origin sees squid's outgoing address, squid's access
 * log the user name and every 407 it answered.
 */

const skip = unavailable('squid', 'curl');
const DIG = { name: 'dig', password: 'Dig-pw-47' };
const BAS = { name: 'bas', password: 'Bas-pw-83' };

let origin: HttpOrigin;
let digestSquid: Squid;
let basicSquid: Squid;
let g: TestGateway;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  [digestSquid, basicSquid] = await Promise.all([
    startSquid({ digest: DIG }),
    startSquid({ user: BAS }),
  ]);
  const at = (squid: Squid, user: { name: string; password: string }): string =>
    `http://${user.name}:${user.password}@127.0.0.1:${squid.port}`;
  const inbounds = ['digest', 'digest-wrong', 'basic-negotiated', 'basic-preemptive', 'web'];
  g = await startGateway({
    inbounds: inbounds.map((name) => ({ name, type: 'mixed', listen: '127.0.0.1:0' })),
    outbounds: [
      { name: 'corp-digest', url: at(digestSquid, DIG), auth: { preemptive: 'none' } },
      {
        name: 'corp-digest-wrong',
        url: at(digestSquid, { ...DIG, password: 'not-the-pw' }),
      },
      { name: 'corp-basic', url: at(basicSquid, BAS), auth: { preemptive: 'none' } },
      { name: 'corp-basic-pre', url: at(basicSquid, BAS), auth: { preemptive: 'basic' } },
    ],
    rules: [
      { inbound: ['digest', 'web'], outbound: 'corp-digest' },
      { inbound: ['digest-wrong'], outbound: 'corp-digest-wrong' },
      { inbound: ['basic-negotiated'], outbound: 'corp-basic' },
      { inbound: ['basic-preemptive'], outbound: 'corp-basic-pre' },
    ],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([digestSquid.stop(), basicSquid.stop(), origin.close()]);
});

/** SOCKS5 CONNECT to the origin through `inbound`, one GET in the tunnel; the origin's answer. */
async function getThrough(inbound: string, path: string): Promise<string> {
  const tunnel = await socks5Connect(g.port(inbound), '127.0.0.1', origin.port);
  assert.equal(tunnel.reply, 0x00, `SOCKS5 reply 0x0${tunnel.reply}`);
  tunnel.client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return (await tunnel.client.readToEnd(10_000)).toString('latin1');
}

const denied = (squid: Squid): string[] =>
  squid.accessLog().filter((line) => line.includes('TCP_DENIED/407'));

test('SOCKS5 in → squid with Digest (digest_file_auth) → origin', { skip }, async () => {
  const answer = await getThrough('digest', '/tiny?digest');
  assert.match(answer, /^HTTP\/1\.1 200 /);
  const reached = origin.requests.find((r) => r.url === '/tiny?digest');
  assert.equal(reached?.remoteAddress, OUTGOING.squid, 'the origin was reached by squid');
  const lines = await digestSquid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} ${DIG.name} `);
  assert.equal(lines.length, 1, digestSquid.accessLog().join('\n'));
  assert.match(lines[0] ?? '', /TCP_TUNNEL\/200/);
  // The 407 and the answer to it came on one connection: squid keeps it after a 407.
  const exchange = digestSquid
    .connectionLog()
    .filter((line) => line.includes(` CONNECT 127.0.0.1:${origin.port} `));
  assert.equal(exchange.length, 2, exchange.join('\n'));
  const [challenged = [], answered = []] = exchange.map((line) => line.split(' '));
  assert.equal(challenged[4], '407');
  assert.equal(answered[3], DIG.name);
  assert.equal(answered[4], '200');
  assert.equal(challenged[0], answered[0], 'the same client port: the same connection');
  recordUpstream('squid (http://, Digest)', 'socks');
});

test('the next tunnel through squid reuses the Digest nonce: no second 407', { skip }, async () => {
  const before407 = denied(digestSquid).length;
  const answer = await getThrough('digest', '/tiny?digest-again');
  assert.match(answer, /^HTTP\/1\.1 200 /);
  await digestSquid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} ${DIG.name} `, 2);
  assert.equal(denied(digestSquid).length, before407, digestSquid.accessLog().join('\n'));
});

test(
  'a wrong Digest password: SOCKS5 0x01, HTTP 502 naming the outbound and the scheme; the credentials then rest',
  { skip },
  async () => {
    const socks = await socks5Connect(g.port('digest-wrong'), '127.0.0.1', origin.port);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
    const client = await rawConnect(g.port('digest-wrong'));
    const authority = `127.0.0.1:${origin.port}`;
    client.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    const answer = (await client.readToEnd(10_000)).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    // The refused credentials are not sent again for a while: a directory would lock the account.
    assert.match(
      answer,
      /\r\n\r\n502 Bad Gateway: upstream proxy "corp-digest-wrong" authentication failed \(Digest\); the credentials are not sent again for \d+ s, so that the account is not locked out\n$/,
    );
    assert.equal(
      g.logs.filter((l) => String(l.msg).startsWith('upstream proxy refused our credentials'))
        .length,
      1,
      'one warning for the streak',
    );
  },
);

test(
  'Basic without pre-emption: squid asks once, then lets the tunnel through',
  { skip },
  async () => {
    const before407 = denied(basicSquid).length;
    const answer = await getThrough('basic-negotiated', '/tiny?negotiated');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    const lines = await basicSquid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} ${BAS.name} `);
    assert.equal(lines.length, 1);
    assert.equal(denied(basicSquid).length, before407 + 1, basicSquid.accessLog().join('\n'));
    recordUpstream('squid (http://, Basic)', 'socks');
  },
);

test('pre-emptive Basic: no 407 at all', { skip }, async () => {
  const before407 = denied(basicSquid).length;
  const beforeTunnels = basicSquid.accessLog().filter((l) => l.includes('TCP_TUNNEL')).length;
  const answer = await getThrough('basic-preemptive', '/tiny?preemptive');
  assert.match(answer, /^HTTP\/1\.1 200 /);
  await basicSquid.waitForAccess('TCP_TUNNEL', beforeTunnels + 1);
  assert.equal(denied(basicSquid).length, before407, basicSquid.accessLog().join('\n'));
});

test(
  'HTTP in, absolute-form GET through squid with Digest: sent again with Digest',
  { skip },
  async () => {
    const path = '/tiny?plain-digest';
    const result = await curl(['-x', `http://127.0.0.1:${g.port('web')}`, `${origin.url}${path}`]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout.toString(), 'ok\n');
    assert.equal(origin.requests.find((r) => r.url === path)?.remoteAddress, OUTGOING.squid);
    const lines = await digestSquid.waitForAccess(` GET ${origin.url}${path} ${DIG.name} `);
    assert.equal(lines.length, 1, digestSquid.accessLog().join('\n'));
    recordUpstream('squid (http://, Digest)', 'http');
  },
);

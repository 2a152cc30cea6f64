import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { curl, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { OUTGOING, startSquid, unavailable, type Squid } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * junction passing a real squid that asks for NTLM (ntlm_fake_auth: any user completing the
 * handshake is let in under the name it gave, which squid logs as DOMAIN\\user, its backslash
 * escaped). Squid's connection log gives each transaction's client port: the NEGOTIATE and the
 * AUTHENTICATE must come on the connection that got the CHALLENGE. The origin sees squid's
 * outgoing address.
 */

const skip = unavailable('squid');
const BAS = { name: 'bas', password: 'Bas-pw-83' };

let origin: HttpOrigin;
let ntlmSquid: Squid;
let bothSquid: Squid;
let g: TestGateway;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  [ntlmSquid, bothSquid] = await Promise.all([
    startSquid({ ntlm: true }),
    startSquid({ ntlm: true, user: BAS }),
  ]);
  const at = (squid: Squid, user: string, password: string): string =>
    `http://${user}:${password}@127.0.0.1:${squid.port}`;
  const inbounds = ['ntlm', 'both', 'both-basic'];
  g = await startGateway({
    inbounds: [
      ...inbounds.map((name) => ({ name, type: 'socks', listen: '127.0.0.1:0' })),
      { name: 'web', type: 'http', listen: '127.0.0.1:0' },
    ],
    outbounds: [
      {
        name: 'corp-ntlm',
        url: at(ntlmSquid, 'CORP%5Calice', 'Alice-pw-1'),
        auth: { preemptive: 'none' },
      },
      {
        name: 'corp-both',
        url: at(bothSquid, BAS.name, BAS.password),
        auth: { preemptive: 'none', domain: 'CORP' },
      },
      {
        name: 'corp-both-basic',
        url: at(bothSquid, BAS.name, BAS.password),
        auth: { schemes: ['basic'], preemptive: 'none', domain: 'CORP' },
      },
    ],
    rules: [
      { inbound: ['ntlm', 'web'], outbound: 'corp-ntlm' },
      { inbound: ['both'], outbound: 'corp-both' },
      { inbound: ['both-basic'], outbound: 'corp-both-basic' },
    ],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([ntlmSquid.stop(), bothSquid.stop(), origin.close()]);
});

/** SOCKS5 CONNECT to the origin through `inbound`, one GET in the tunnel; the origin's answer. */
async function getThrough(inbound: string, path: string): Promise<string> {
  const tunnel = await socks5Connect(g.port(inbound), '127.0.0.1', origin.port);
  assert.equal(tunnel.reply, 0x00, `SOCKS5 reply 0x0${tunnel.reply}`);
  tunnel.client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return (await tunnel.client.readToEnd(10_000)).toString('latin1');
}

/** connections.log lines of CONNECTs to the origin, split: [client port, method, URL, user, status]. */
function connects(squid: Squid): string[][] {
  return squid
    .connectionLog()
    .filter((line) => line.includes(` CONNECT 127.0.0.1:${origin.port} `))
    .map((line) => line.split(' '));
}

test(
  'SOCKS5 in → squid with NTLM only (ntlm_fake_auth) → origin, the handshake on one connection',
  { skip },
  async () => {
    const answer = await getThrough('ntlm', '/tiny?ntlm');
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok\n$/);
    const reached = origin.requests.find((r) => r.url === '/tiny?ntlm');
    assert.equal(reached?.remoteAddress, OUTGOING.squid, 'the origin was reached by squid');
    const lines = await ntlmSquid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} CORP\\\\alice `);
    assert.equal(lines.length, 1, ntlmSquid.accessLog().join('\n'));
    assert.match(lines[0] ?? '', /TCP_TUNNEL\/200/);
    // The challenge for NTLM, the CHALLENGE for the NEGOTIATE, the tunnel for the AUTHENTICATE.
    const exchange = connects(ntlmSquid);
    assert.deepEqual(
      exchange.map((line) => line[4]),
      ['407', '407', '200'],
      ntlmSquid.connectionLog().join('\n'),
    );
    assert.equal(
      new Set(exchange.map((line) => line[0])).size,
      1,
      'one client port: one connection',
    );
    recordUpstream('squid (http://, NTLM)', 'socks');
  },
);

test('squid offering NTLM and Basic: NTLM by default, with auth.domain', { skip }, async () => {
  const answer = await getThrough('both', '/tiny?both');
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  const lines = await bothSquid.waitForAccess(
    ` CONNECT 127.0.0.1:${origin.port} CORP\\\\${BAS.name} `,
  );
  assert.equal(lines.length, 1, bothSquid.accessLog().join('\n'));
});

test('squid offering NTLM and Basic: Basic with auth: { schemes: [basic] }', { skip }, async () => {
  const answer = await getThrough('both-basic', '/tiny?both-basic');
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  // Basic carries the user name as configured; NTLM would have added the domain.
  const lines = await bothSquid.waitForAccess(` CONNECT 127.0.0.1:${origin.port} ${BAS.name} `);
  assert.equal(lines.length, 1, bothSquid.accessLog().join('\n'));
});

test(
  'plain http:// requests through squid with NTLM: one handshake, then the authenticated connection carries the next requests',
  { skip },
  async () => {
    const proxy = `http://127.0.0.1:${g.port('web')}`;
    for (const n of [1, 2, 3]) {
      // A new client connection each time: the upstream connection is junction's to keep.
      const got = await curl(['-x', proxy, `http://127.0.0.1:${origin.port}/tiny?plain${n}`]);
      assert.equal(got.exitCode, 0, got.stderr);
      assert.equal(got.stdout.toString(), 'ok\n');
    }
    const reached = origin.requests.filter((r) => r.url.startsWith('/tiny?plain'));
    assert.deepEqual(
      reached.map((r) => r.remoteAddress),
      [OUTGOING.squid, OUTGOING.squid, OUTGOING.squid],
    );
    await ntlmSquid.waitForAccess(`/tiny?plain3 CORP\\\\alice `);
    const gets = ntlmSquid
      .connectionLog()
      .filter((line) => line.includes(` GET http://127.0.0.1:${origin.port}/tiny?plain`))
      .map((line) => line.split(' '));
    // NTLM, then the CHALLENGE, then three requests answered on the authenticated connection.
    assert.deepEqual(
      gets.map((line) => line[4]),
      ['407', '407', '200', '200', '200'],
      ntlmSquid.connectionLog().join('\n'),
    );
    assert.equal(new Set(gets.map((line) => line[0])).size, 1, 'one connection to squid');
    recordUpstream('squid (http://, NTLM)', 'http');
  },
);

test(
  'plain http:// uploads through squid with NTLM after those requests: a POST and one whose client waits for a 100 both get through',
  { skip },
  async () => {
    const proxy = `http://127.0.0.1:${g.port('web')}`;
    const posted = await curl([
      '-x',
      proxy,
      '--data-binary',
      'posted',
      `${origin.url}/echo?ntlm-post`,
    ]);
    assert.equal(posted.exitCode, 0, posted.stderr);
    assert.equal(posted.stdout.toString(), 'posted');
    const waited = await curl([
      '-x',
      proxy,
      '-H',
      'Expect: 100-continue',
      '--data-binary',
      'waited',
      `${origin.url}/echo?ntlm-continue`,
    ]);
    assert.equal(waited.exitCode, 0, waited.stderr);
    assert.equal(waited.stdout.toString(), 'waited');
    const bodies = origin.requests
      .filter((r) => r.url.startsWith('/echo?ntlm-'))
      .map((r) => r.body.toString());
    assert.deepEqual(bodies, ['posted', 'waited']);
  },
);

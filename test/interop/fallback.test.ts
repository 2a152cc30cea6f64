import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { configFrom, startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { eventually } from '../helpers/wait.js';
import {
  curl,
  refusedPort,
  startHttpOrigin,
  startTcpServer,
  type HttpOrigin,
} from '../helpers/net.js';
import { OUTGOING, startMicrosocks, unavailable, type Peer } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { createLogger } from '../../src/log.js';
import { createDirectOutbound } from '../../src/outbound/direct.js';
import { probe } from '../../src/outbound/health-check.js';
import { createDestinationPolicy } from '../../src/policy.js';

const silent = createLogger('silent');

/**
 * Failover groups: a dead first member is marked down at the first session that meets it and the
 * session goes on through the next one; the health checker brings a member back; a target's own
 * failure through a working member marks nothing down. The upstreams are junction gateways in
 * this process (their access logs count the sessions each one carried), plus microsocks.
 */

let origin: HttpOrigin;
const started: TestGateway[] = [];

before(async () => {
  origin = await startHttpOrigin();
});

after(async () => {
  await Promise.all(started.map((g) => g.stop()));
  await origin.close();
});

async function gateway(raw: Record<string, unknown>): Promise<TestGateway> {
  const g = await startGateway(raw);
  started.push(g);
  return g;
}

/** A plain SOCKS5 junction upstream on `listen`. */
function upstreamAt(listen = '127.0.0.1:0'): Promise<TestGateway> {
  return gateway({ inbounds: [{ name: 'in', type: 'socks', listen }] });
}

/** One GET /tiny to the origin through a SOCKS5 inbound; resolves with the SOCKS5 reply. */
async function getTiny(port: number, targetPort = origin.port): Promise<number> {
  const { client, reply } = await socks5Connect(port, '127.0.0.1', targetPort);
  try {
    if (reply !== 0) return reply;
    client.write('GET /tiny HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n');
    const answer = (await client.readToEnd()).toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 200 [^]*ok\n$/);
    return reply;
  } finally {
    client.socket.destroy();
  }
}

const memberLine =
  (msg: string, member: string) =>
  (line: LogLine): boolean =>
    line.msg === msg && line.member === member;

async function metricsText(g: TestGateway): Promise<string> {
  const port = g.gateway.adminAddress?.port;
  assert.ok(port, 'admin endpoint listening');
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(5000),
  });
  return res.text();
}

test('a dead first member is marked down at once; the session and the next ones go through the live one', async () => {
  const dead = await refusedPort();
  const live = await upstreamAt();
  const front = await gateway({
    admin: { listen: '127.0.0.1:0' },
    inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
    outbounds: [
      { name: 'dead', url: `socks5://127.0.0.1:${dead}` },
      { name: 'live', url: `socks5h://127.0.0.1:${live.port()}` },
      { name: 'grp', fallback: ['dead', 'live'] },
    ],
    rules: [{ outbound: 'grp' }],
  });
  assert.equal(await getTiny(front.port()), 0x00);
  const down = await front.waitForLog(memberLine('fallback member down', 'dead'));
  assert.equal(down.group, 'grp');
  assert.match(String(down.reason), /cannot reach upstream proxy/);
  await live.waitForLog((l) => l.msg === 'session');
  assert.equal(live.sessions().length, 1);

  // The next session goes straight to the live member: no second "down" line, one more session.
  assert.equal(await getTiny(front.port()), 0x00);
  await live.waitForLog(() => live.sessions().length === 2);
  const downs = front.logs.filter((l) => l.msg === 'fallback member down');
  assert.equal(downs.length, 1);
  await front.waitForLog(() => front.sessions().length === 2);
  assert.ok(front.sessions().every((s) => s.outbound === 'grp'));

  const text = await metricsText(front);
  assert.match(text, /junction_outbound_up\{outbound="grp",member="dead"\} 0/);
  assert.match(text, /junction_outbound_up\{outbound="grp",member="live"\} 1/);
});

test('the health checker brings a member back, and new sessions use it again', async () => {
  const laterPort = await refusedPort();
  const probe = await startTcpServer((socket) => socket.end());
  after(() => probe.close());
  const second = await upstreamAt();
  const front = await gateway({
    inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
    outbounds: [
      { name: 'first', url: `socks5h://127.0.0.1:${laterPort}` },
      { name: 'second', url: `socks5h://127.0.0.1:${second.port()}` },
      {
        name: 'grp',
        fallback: ['first', 'second'],
        check: { tcp: `127.0.0.1:${probe.port}`, interval: '200ms', timeout: '1s' },
      },
    ],
    rules: [{ outbound: 'grp' }],
  });
  // The checker finds `first` dead before any session meets it.
  const down = await front.waitForLog(memberLine('fallback member down', 'first'));
  assert.match(String(down.reason), /^health check failed: /);
  assert.equal(await getTiny(front.port()), 0x00);
  await second.waitForLog((l) => l.msg === 'session');

  const first = await upstreamAt(`127.0.0.1:${laterPort}`);
  const up = await front.waitForLog(memberLine('fallback member up', 'first'));
  assert.equal(up.group, 'grp');
  // The checker probes another target (`probe`), so a session to the origin is a client's.
  const toOrigin = (g: TestGateway): number =>
    g.sessions().filter((l) => l.target === `127.0.0.1:${origin.port}`).length;
  const secondBefore = toOrigin(second);
  assert.equal(await getTiny(front.port()), 0x00);
  await first.waitForLog((l) => l.msg === 'session' && l.target === `127.0.0.1:${origin.port}`);
  await front.waitForLog(() => front.sessions().length === 2);
  assert.equal(toOrigin(second), secondBefore);
});

test('a target-side failure through a healthy member does not mark it down', async () => {
  const refused = await refusedPort();
  const live = await upstreamAt();
  const front = await gateway({
    admin: { listen: '127.0.0.1:0' },
    inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
    outbounds: [
      { name: 'live', url: `socks5h://127.0.0.1:${live.port()}` },
      { name: 'grp', fallback: ['live', 'direct'] },
    ],
    rules: [{ outbound: 'grp' }],
  });
  assert.equal(await getTiny(front.port(), refused), 0x05);
  const session = await front.waitForLog((l) => l.msg === 'session');
  assert.equal(session.outbound, 'grp');
  await live.waitForLog((l) => l.msg === 'session');
  assert.equal(
    front.logs.filter((l) => l.msg === 'fallback member down').length,
    0,
    'no member marked down',
  );
  // Still the first member: the next session goes through it.
  assert.equal(await getTiny(front.port()), 0x00);
  await live.waitForLog(() => live.sessions().length === 2);
  assert.match(await metricsText(front), /junction_outbound_up\{outbound="grp",member="live"\} 1/);
});

const skipPeers = unavailable('microsocks', 'curl');

test(
  'HTTP in → fallback [dead squid port, microsocks]: the origin sees microsocks',
  { skip: skipPeers },
  async () => {
    const dead = await refusedPort();
    let microsocks: Peer | undefined;
    try {
      microsocks = await startMicrosocks();
      const front = await gateway({
        inbounds: [{ name: 'in', type: 'mixed', listen: '127.0.0.1:0' }],
        outbounds: [
          { name: 'squid', url: `http://127.0.0.1:${dead}` },
          { name: 'ms', url: `socks5h://127.0.0.1:${microsocks.port}` },
          { name: 'grp', fallback: ['squid', 'ms'] },
        ],
        rules: [{ outbound: 'grp' }],
      });
      const proxy = `http://127.0.0.1:${front.port()}`;
      const result = await curl(['-x', proxy, `${origin.url}/tiny`]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout.toString(), 'ok\n');
      assert.equal(origin.requests.at(-1)?.remoteAddress, OUTGOING.microsocks);
      await front.waitForLog(memberLine('fallback member down', 'squid'));
      const tunnelled = await curl(['-p', '-x', proxy, `${origin.url}/tiny`]);
      assert.equal(tunnelled.exitCode, 0, tunnelled.stderr);
      assert.equal(origin.requests.at(-1)?.remoteAddress, OUTGOING.microsocks);
    } finally {
      await microsocks?.stop();
    }
  },
);

test('check.url: any HTTP status line through the member is up; anything else is down', async () => {
  const direct = createDirectOutbound(createDestinationPolicy([]));
  const check = { interval: 1000, timeout: 2000 };
  await probe(direct, { ...check, url: `${origin.url}/tiny` }, silent);
  const notHttp = await startTcpServer((socket) => socket.end('SSH-2.0-x\r\n'));
  try {
    await assert.rejects(
      probe(direct, { ...check, url: `http://127.0.0.1:${notHttp.port}/` }, silent),
      /invalid response from origin \(HPE_/,
    );
  } finally {
    await notHttp.close();
  }
  const dead = await refusedPort();
  await assert.rejects(probe(direct, { ...check, tcp: `127.0.0.1:${dead}` }, silent), {
    code: 'CONN_REFUSED',
  });
});

test('a reload stops the old runtime health checker', async () => {
  const oldProbe = await startTcpServer((socket) => socket.end());
  const newProbe = await startTcpServer((socket) => socket.end());
  after(() => Promise.all([oldProbe.close(), newProbe.close()]));
  const group = (probePort: number) => ({
    inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
    outbounds: [
      {
        name: 'grp',
        fallback: ['direct'],
        check: { tcp: `127.0.0.1:${probePort}`, interval: '50ms', timeout: '1s' },
      },
    ],
    rules: [{ outbound: 'grp' }],
  });
  const front = await gateway(group(oldProbe.port));
  await eventually(
    () => oldProbe.sockets.length >= 2,
    () => `old probes: ${oldProbe.sockets.length}`,
  );
  front.gateway.reload(configFrom(group(newProbe.port)));
  const atReload = oldProbe.sockets.length;
  await eventually(
    () => newProbe.sockets.length >= 4,
    () => `new probes: ${newProbe.sockets.length}`,
  );
  // At most a round already under way when the reload came.
  assert.ok(oldProbe.sockets.length <= atReload + 1, `${oldProbe.sockets.length} > ${atReload}+1`);
});

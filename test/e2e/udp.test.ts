import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { SocksClient } from 'socks';
import { encodeUdpDatagram } from '../../src/inbound/socks-udp-codec.js';
import { MAX_TARGETS } from '../../src/inbound/socks5-udp/routes.js';
import { parseHost, type Target } from '../../src/target.js';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import {
  associate,
  dnsAnswer,
  dnsQuery,
  dnsServer,
  openFds,
  udpPeer,
  udpPortClosed,
  type Association,
  type UdpPeer,
} from '../helpers/udp.js';
import { eventually } from '../helpers/wait.js';

/**
 * SOCKS5 UDP ASSOCIATE end to end (RFC 1928 §4, §7): real datagrams on 127.0.0.1 and ::1
 * between a client (hand-built frames, and the `socks` package's client) and "DNS" servers,
 * through the gateway: direct, through another junction as an upstream SOCKS5, rejected, or
 * through an outbound that cannot carry UDP.
 */

const PASSWORD = 'udp-s3cret';

let dns4: UdpPeer;
let dns6: UdpPeer;
/** An "upstream SOCKS5 proxy" that accepts TCP and never answers. */
let silent: Server;
let upstream: TestGateway;
let g: TestGateway;
const controls: Association[] = [];
const peers: UdpPeer[] = [];

before(async () => {
  [dns4, dns6] = await Promise.all([dnsServer('127.0.0.1'), dnsServer('::1')]);
  silent = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    socket.on('end', () => socket.destroy());
    socket.resume();
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const silentPort = (silent.address() as { port: number }).port;
  upstream = await startGateway({
    inbounds: [{ name: 'up', type: 'socks', listen: '127.0.0.1:0' }],
  });
  g = await startGateway({
    limits: { connect_timeout: '1500ms', deny_destinations: ['127.0.0.2/32'] },
    inbounds: [
      { name: 's', type: 'socks', listen: '127.0.0.1:0' },
      { name: 's6', type: 'socks', listen: '[::1]:0' },
      { name: 'any', type: 'socks', listen: '0.0.0.0:0' },
      { name: 'any6', type: 'socks', listen: '[::]:0' },
      { name: 'm', type: 'mixed', listen: '127.0.0.1:0' },
      {
        name: 'auth',
        type: 'socks5',
        listen: '127.0.0.1:0',
        auth: { users: [{ username: 'alice', password: PASSWORD }] },
      },
      { name: 'no-udp', type: 'socks', listen: '127.0.0.1:0', udp: false },
      { name: 'adv', type: 'socks', listen: '127.0.0.1:0', udp_advertise: '192.0.2.7' },
      { name: 'via-http', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'via-chain', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'via-group', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'via-silent', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'via-junction', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'via-junction-h', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'lan-only', type: 'socks', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
    ],
    outbounds: [
      { name: 'corp', url: 'http://127.0.0.1:9' },
      { name: 'silent', url: `socks5://127.0.0.1:${silentPort}` },
      { name: 'junction', url: `socks5://127.0.0.1:${upstream.port('up')}` },
      { name: 'junction-h', url: `socks5h://127.0.0.1:${upstream.port('up')}` },
      { name: 'two-hops', chain: ['corp', 'junction'] },
      { name: 'group', fallback: ['junction', 'direct'] },
    ],
    rules: [
      { ip_cidr: ['127.0.0.3/32'], outbound: 'reject' },
      { inbound: ['via-http'], outbound: 'corp' },
      { inbound: ['via-chain'], outbound: 'two-hops' },
      { inbound: ['via-group'], outbound: 'group' },
      { inbound: ['via-silent'], outbound: 'silent' },
      { inbound: ['via-junction'], outbound: 'junction' },
      { inbound: ['via-junction-h'], outbound: 'junction-h' },
    ],
  });
});

after(async () => {
  for (const { control } of controls) control.socket.destroy();
  await Promise.all(peers.map((p) => p.close()));
  await g.stop();
  await upstream.stop();
  await Promise.all([dns4.close(), dns6.close()]);
  await new Promise<void>((resolve) => silent.close(() => resolve()));
});

const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s/g, ''), 'hex');
const port2 = (port: number): string => port.toString(16).padStart(4, '0');

async function open(port: number, options: Parameters<typeof associate>[1] = {}) {
  const association = await associate(port, options);
  controls.push(association);
  return association;
}

/**
 * Closes every control connection of the tests before and waits until the gateways hold none,
 * so an fd count taken now is a stable baseline.
 */
async function quiesce(): Promise<void> {
  for (const { control } of controls) control.socket.destroy();
  await eventually(
    () =>
      controls.every(({ control }) => control.socket.closed) &&
      g.gateway.activeConnections === 0 &&
      upstream.gateway.activeConnections === 0,
    () => `gateway connections ${g.gateway.activeConnections}`,
  );
}

/** Sends each frame, letting the gateway (in this process) read it before the next. */
async function sendPaced(client: UdpPeer, frames: Buffer[], port: number): Promise<void> {
  for (const frame of frames) {
    await client.send(frame, port, '127.0.0.1');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function peer(host = '127.0.0.1'): Promise<UdpPeer> {
  const p = await udpPeer(host);
  peers.push(p);
  return p;
}

/** The access-log line of the association whose control connection is `a`. */
const lineOf = (a: Association) => {
  const client = `127.0.0.1:${a.control.socket.localPort}`;
  return (line: LogLine) =>
    line.msg === 'session' && line.protocol === 'socks5-udp' && line.client === client;
};

/** Sends one query for `name` to `to` through the relay and returns the reply frame. */
async function roundTrip(
  client: UdpPeer,
  relay: Target,
  to: Target,
  id: number,
  name = 'example.test',
): Promise<{ query: Buffer; reply: Buffer }> {
  const query = dnsQuery(id, name);
  const relayHost = relay.host.kind === 'domain' ? relay.host.name : relay.host.ip;
  await client.send(encodeUdpDatagram(to, query), relay.port, relayHost);
  const { payload } = await client.next();
  return { query, reply: payload };
}

test('UDP ASSOCIATE answers with the relay on the address the client reached; a DNS query round trip is byte-exact (hand-built frames)', async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  assert.ok(a.relay, `reply ${a.reply.toString('hex')}`);
  assert.equal(a.reply.subarray(0, 8).toString('hex'), '050000017f000001');
  const relayPort = a.relay.port;
  assert.notEqual(relayPort, 0);

  const query = dnsQuery(0x1234, 'example.test');
  // RSV RSV FRAG ATYP=1 127.0.0.1 PORT DATA, written out by hand.
  const frame = Buffer.concat([hex(`0000 00 01 7f000001 ${port2(dns4.port)}`), query]);
  await client.send(frame, relayPort, '127.0.0.1');
  const { payload, address, port } = await client.next();
  assert.equal(address, '127.0.0.1');
  assert.equal(port, relayPort, 'replies come from the relay port');
  const expected = Buffer.concat([
    hex(`0000 00 01 7f000001 ${port2(dns4.port)}`),
    dnsAnswer(query),
  ]);
  assert.equal(payload.toString('hex'), expected.toString('hex'));
  assert.equal(dns4.seen.at(-1)?.payload.toString('hex'), query.toString('hex'));
});

test('the socks package client (SocksClient, command associate, createUDPFrame/parseUDPFrame) gets its answer', async () => {
  const client = await peer();
  // SocksClient.createConnection takes CONNECT only; an association is a client of its own.
  const socks = new SocksClient({
    proxy: { host: '127.0.0.1', port: g.port('s'), type: 5 },
    command: 'associate',
    destination: { host: '127.0.0.1', port: client.port },
    timeout: 5000,
  });
  const info = await new Promise<{
    remoteHost?: { host: string; port: number } | undefined;
    socket: { destroy(): void };
  }>((resolve, reject) => {
    socks.once('established', (established) => resolve(established));
    socks.once('error', reject);
    socks.connect();
  });
  try {
    const relay = info.remoteHost;
    assert.ok(relay);
    assert.equal(relay.host, '127.0.0.1');
    const query = dnsQuery(7, 'socks.package.test');
    const frame = SocksClient.createUDPFrame({
      remoteHost: { host: '127.0.0.1', port: dns4.port },
      data: query,
    });
    await client.send(frame, relay.port, relay.host);
    const parsed = SocksClient.parseUDPFrame((await client.next()).payload);
    assert.deepEqual(parsed.remoteHost, { host: '127.0.0.1', port: dns4.port });
    assert.equal(parsed.frameNumber, 0);
    assert.equal(parsed.data.toString('hex'), dnsAnswer(query).toString('hex'));
  } finally {
    info.socket.destroy();
  }
});

test('an IPv6 target: the reply header is ATYP 4 with ::1 and the server port', async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  const { query, reply } = await roundTrip(client, a.relay!, target('::1', dns6.port), 0x66);
  const head = `0000 00 04 ${'00'.repeat(15)}01 ${port2(dns6.port)}`;
  assert.equal(reply.toString('hex'), Buffer.concat([hex(head), dnsAnswer(query)]).toString('hex'));
});

test('an IPv6 client: the relay is bound on ::1 and BND.ADDR says so; IPv4 and IPv6 targets both answer', async () => {
  const client = await peer('::1');
  const a = await open(g.port('s6'), { proxyHost: '::1' });
  assert.equal(a.reply.subarray(0, 20).toString('hex'), `05000004${'00'.repeat(15)}01`);
  const v4 = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 1);
  assert.equal(
    v4.reply.subarray(0, 10).toString('hex'),
    `00000001 7f000001 ${port2(dns4.port)}`.replace(/ /g, ''),
  );
  const v6 = await roundTrip(client, a.relay!, target('::1', dns6.port), 2);
  assert.equal(v6.reply.subarray(22).toString('hex'), dnsAnswer(v6.query).toString('hex'));
});

test('a 0.0.0.0 listener binds the relay on the address the client connected to (127.0.0.9)', async () => {
  const a = await open(g.port('any'), { proxyHost: '127.0.0.9' });
  assert.equal(a.reply.subarray(0, 8).toString('hex'), '050000017f000009');
  const client = await peer();
  const { query, reply } = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 3);
  assert.equal(reply.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
});

test('a dual-stack [::] listener reached over IPv4 binds an IPv4 relay (no ::ffff: mapping)', async () => {
  const a = await open(g.port('any6'), { proxyHost: '127.0.0.1' });
  assert.equal(a.reply.subarray(0, 8).toString('hex'), '050000017f000001');
  const client = await peer();
  const { query, reply } = await roundTrip(client, a.relay!, target('::1', dns6.port), 4);
  assert.equal(reply.subarray(22).toString('hex'), dnsAnswer(query).toString('hex'));
});

test('a domain target is resolved by the gateway; the reply names the real source address', async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  const query = dnsQuery(9, 'by-name.test');
  await client.send(
    encodeUdpDatagram(target('localhost', dns4.port), query),
    a.relay!.port,
    '127.0.0.1',
  );
  const { payload } = await client.next();
  // IPv4 first: localhost is 127.0.0.1, where dns4 listens.
  assert.equal(
    payload.toString('hex'),
    Buffer.concat([hex(`0000 00 01 7f000001 ${port2(dns4.port)}`), dnsAnswer(query)]).toString(
      'hex',
    ),
  );
});

test('a declared port: datagrams from another port of the client IP are not relayed', async () => {
  const client = await peer();
  const intruder = await peer();
  const a = await open(g.port('s'), { declared: target('127.0.0.1', client.port) });
  const before = dns4.seen.length;
  const evil = dnsQuery(0xbad, 'evil.test');
  await intruder.send(
    encodeUdpDatagram(target('127.0.0.1', dns4.port), evil),
    a.relay!.port,
    '127.0.0.1',
  );
  const good = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 0x600d);
  assert.equal(good.reply.subarray(10).toString('hex'), dnsAnswer(good.query).toString('hex'));
  const seen = dns4.seen.slice(before).map((r) => r.payload.toString('hex'));
  assert.deepEqual(seen, [good.query.toString('hex')], 'the server saw only the good query');
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { foreign_source: 1 });
});

test('zero DST.ADDR/DST.PORT: the first datagram fixes the port; another port or another IP (127.0.0.2) is dropped', async () => {
  const client = await peer();
  const otherPort = await peer();
  const otherIp = await peer('127.0.0.2');
  const a = await open(g.port('s'));
  const first = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 1);
  assert.equal(first.reply.subarray(10).toString('hex'), dnsAnswer(first.query).toString('hex'));
  const before = dns4.seen.length;
  const frame = encodeUdpDatagram(target('127.0.0.1', dns4.port), dnsQuery(2, 'evil.test'));
  await otherPort.send(frame, a.relay!.port, '127.0.0.1');
  await otherIp.send(frame, a.relay!.port, '127.0.0.1');
  const good = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 3);
  assert.deepEqual(
    dns4.seen.slice(before).map((r) => r.payload.toString('hex')),
    [good.query.toString('hex')],
  );
  assert.equal(otherPort.seen.length + otherIp.seen.length, 0, 'nothing came back to them');
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { foreign_source: 2 });
});

test('direct UDP takes replies only from addresses the client sent to (address-dependent filtering): a stranger is dropped and counted, the target (any of its ports) gets through', async () => {
  const client = await peer();
  const server = await peer();
  const stranger = await peer('127.0.0.7');
  const serverOtherPort = await peer();
  const a = await open(g.port('s'));
  await client.send(
    encodeUdpDatagram(target('127.0.0.1', server.port), dnsQuery(0x51, 'filter.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  // Where the association's outbound socket is, as the target sees it.
  const outbound = await server.next();
  await stranger.send(Buffer.from('from a stranger'), outbound.port, outbound.address);
  await server.send(Buffer.from('from the target'), outbound.port, outbound.address);
  await serverOtherPort.send(Buffer.from('from another port'), outbound.port, outbound.address);
  const first = await client.next();
  assert.equal(
    first.payload.toString('hex'),
    Buffer.concat([
      hex(`0000 00 01 7f000001 ${port2(server.port)}`),
      Buffer.from('from the target'),
    ]).toString('hex'),
  );
  const second = await client.next();
  assert.equal(
    second.payload.toString('hex'),
    Buffer.concat([
      hex(`0000 00 01 7f000001 ${port2(serverOtherPort.port)}`),
      Buffer.from('from another port'),
    ]).toString('hex'),
  );
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { foreign_reply: 1 });
  assert.equal(line.datagrams_down, 2);
  const why = g.logs.filter((l) => l.drop === 'foreign_reply' && l.sid === line.sid);
  assert.equal(why.length, 1);
  const [logged] = why;
  assert.ok(logged);
  assert.equal(logged.level, 20, 'logged at debug: anyone on the network can cause it');
  assert.equal(logged.detail, `from 127.0.0.7:${stranger.port}`);
});

test('FRAG != 0 and malformed frames (RSV != 0, ATYP 2, truncated) are dropped and counted', async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  const before = dns4.seen.length;
  const relayPort = a.relay!.port;
  const to = `01 7f000001 ${port2(dns4.port)}`;
  await client.send(hex(`0000 01 ${to} 41`), relayPort, '127.0.0.1');
  await client.send(hex(`0000 80 ${to} 42`), relayPort, '127.0.0.1');
  await client.send(hex(`0100 00 ${to} 43`), relayPort, '127.0.0.1');
  await client.send(hex(`0000 00 02 7f000001 ${port2(dns4.port)} 44`), relayPort, '127.0.0.1');
  await client.send(hex('0000 00 01 7f00'), relayPort, '127.0.0.1');
  const good = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 5);
  assert.deepEqual(
    dns4.seen.slice(before).map((r) => r.payload.toString('hex')),
    [good.query.toString('hex')],
  );
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { fragmented: 2, malformed: 3 });
  assert.equal(line.datagrams_up, 1);
  assert.equal(line.datagrams_down, 1);
});

test('closing the control connection ends the association: relay port closed, fds back to baseline, one access line', async () => {
  const client = await peer();
  await quiesce();
  const baseline = openFds();
  const a = await associate(g.port('s'));
  const { query, reply } = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 42);
  const v6 = await roundTrip(client, a.relay!, target('::1', dns6.port), 43);
  assert.ok(openFds() >= baseline + 5, 'control (2), relay, direct udp4 and udp6 sockets');
  const localPort = a.control.socket.localPort;
  a.control.socket.end();
  await a.control.closed();
  a.control.socket.destroy();
  await eventually(
    () => openFds() === baseline,
    () => `fds ${openFds()}, baseline ${baseline}`,
  );
  assert.equal(await udpPortClosed(a.relay!.port), true, 'the relay port answers ICMP unreachable');
  const line = await g.waitForLog(
    (l) => l.msg === 'session' && l.client === `127.0.0.1:${localPort}`,
  );
  assert.equal(line.protocol, 'socks5-udp');
  assert.equal(line.target, '0.0.0.0:0');
  assert.equal(line.result, 'ok');
  assert.equal(line.datagrams_up, 2);
  assert.equal(line.datagrams_down, 2);
  assert.equal(line.up, query.length + v6.query.length);
  assert.equal(line.down, reply.length - 10 + v6.reply.length - 22);
  assert.deepEqual(line.outbounds, ['direct']);
  assert.equal(g.logs.filter((l) => l.msg === 'session' && l.client === line.client).length, 1);
});

test('udp_idle_timeout (300ms) ends a quiet association, closes its control connection and logs IDLE_TIMEOUT', async () => {
  const idle = await startGateway({
    limits: { udp_idle_timeout: '300ms' },
    inbounds: [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }],
  });
  try {
    const client = await peer();
    const a = await associate(idle.port('s'));
    const started = Date.now();
    await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 1);
    await a.control.closed(5000);
    assert.ok(Date.now() - started >= 250, 'not before the idle timeout');
    a.control.socket.destroy();
    const line = await idle.waitForLog((l) => l.msg === 'session' && l.protocol === 'socks5-udp');
    assert.equal(line.result, 'IDLE_TIMEOUT');
    assert.equal(line.datagrams_up, 1);
    assert.equal(await udpPortClosed(a.relay!.port), true);
  } finally {
    await idle.stop();
  }
});

test('gateway shutdown ends a live association: logged as SHUTDOWN, relay port closed', async () => {
  const gw = await startGateway({
    inbounds: [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }],
  });
  const client = await peer();
  const a = await associate(gw.port('s'));
  try {
    await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 1);
  } finally {
    await gw.stop();
  }
  await a.control.closed();
  a.control.socket.destroy();
  const line = await gw.waitForLog((l) => l.msg === 'session' && l.protocol === 'socks5-udp');
  assert.equal(line.result, 'SHUTDOWN');
  assert.equal(await udpPortClosed(a.relay!.port), true);
});

test('a reject rule drops the datagrams to that target; other targets of the association still answer', async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  const rejected = await peer('127.0.0.3');
  await client.send(
    encodeUdpDatagram(target('127.0.0.3', rejected.port), dnsQuery(1, 'x.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  const good = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 2);
  assert.equal(good.reply.subarray(10).toString('hex'), dnsAnswer(good.query).toString('hex'));
  assert.equal(rejected.seen.length, 0);
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { rejected: 1 });
  assert.deepEqual([...(line.outbounds as string[])].sort(), ['direct', 'reject']);
});

test('deny_destinations applies to UDP: 127.0.0.2 is dropped as denied', async () => {
  const client = await peer();
  const denied = await peer('127.0.0.2');
  const a = await open(g.port('s'));
  await client.send(
    encodeUdpDatagram(target('127.0.0.2', denied.port), dnsQuery(1, 'x.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 2);
  assert.equal(denied.seen.length, 0);
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { denied: 1 });
});

test('an http outbound cannot carry UDP: datagrams are dropped and that is logged once per association', async () => {
  const client = await peer();
  const a = await open(g.port('via-http'));
  for (let i = 0; i < 3; i++) {
    await client.send(
      encodeUdpDatagram(target('127.0.0.1', dns4.port), dnsQuery(i, 'x.test')),
      a.relay!.port,
      '127.0.0.1',
    );
  }
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.equal(line.result, 'ok');
  const counted = (line.dropped as Record<string, number> | undefined)?.no_udp ?? 0;
  assert.ok(counted >= 1 && counted <= 3, `no_udp ${counted}`);
  const why = g.logs.filter((l) => l.drop === 'no_udp' && l.sid === line.sid);
  assert.equal(why.length, 1);
  assert.equal(why[0]?.detail, 'outbound "corp" cannot carry UDP');
});

test('a chain of two proxies cannot carry UDP either', async () => {
  const client = await peer();
  const a = await open(g.port('via-chain'));
  await client.send(
    encodeUdpDatagram(target('127.0.0.1', dns4.port), dnsQuery(1, 'x.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  const why = await g.waitForLog(
    (l) => l.drop === 'no_udp' && l.detail === 'outbound "two-hops" cannot carry UDP',
  );
  assert.ok(why);
});

test('a fallback group carries no UDP, even when its members do', async () => {
  const client = await peer();
  const a = await open(g.port('via-group'));
  await client.send(
    encodeUdpDatagram(target('127.0.0.1', dns4.port), dnsQuery(1, 'x.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  const why = await g.waitForLog(
    (l) => l.drop === 'no_udp' && l.detail === 'outbound "group" cannot carry UDP',
  );
  assert.ok(why);
});

test('through another junction as the upstream SOCKS5 (socks5 and socks5h)', async () => {
  for (const [inbound, to] of [
    ['via-junction', target('127.0.0.1', dns4.port)],
    ['via-junction-h', target('localhost', dns4.port)],
  ] as const) {
    const client = await peer();
    const a = await open(g.port(inbound));
    const { query, reply } = await roundTrip(client, a.relay!, to, 0x4a);
    const head = `0000 00 01 7f000001 ${port2(dns4.port)}`;
    assert.equal(
      reply.toString('hex'),
      Buffer.concat([hex(head), dnsAnswer(query)]).toString('hex'),
      inbound,
    );
    a.control.socket.end();
    const line = await g.waitForLog(lineOf(a));
    assert.deepEqual(line.outbounds, [inbound.slice(4)]);
    assert.equal(line.datagrams_down, 1);
  }
  // The upstream junction relayed them too, as associations of its own.
  const upstreamLines = upstream.sessions().filter((l) => l.protocol === 'socks5-udp');
  assert.ok(upstreamLines.length >= 1);
});

test('an upstream that never answers UDP ASSOCIATE: datagrams queue within the cap, the rest are dropped; closing frees everything', async () => {
  const client = await peer();
  await quiesce();
  const baseline = openFds();
  const a = await associate(g.port('via-silent'));
  const frame = encodeUdpDatagram(target('127.0.0.1', dns4.port), Buffer.alloc(1400, 0x61));
  await sendPaced(client, Array<Buffer>(100).fill(frame), a.relay!.port);
  const localPort = a.control.socket.localPort;
  a.control.socket.end();
  await a.control.closed();
  a.control.socket.destroy();
  const line = await g.waitForLog(
    (l) => l.msg === 'session' && l.client === `127.0.0.1:${localPort}`,
  );
  const queueFull = (line.dropped as Record<string, number> | undefined)?.queue_full ?? 0;
  // 64 KiB holds 43 such datagrams (1400 bytes + 96 for each entry).
  assert.equal(line.datagrams_up, 100);
  assert.equal(queueFull, 100 - 43);
  await eventually(
    () => openFds() === baseline,
    () => `fds ${openFds()}, baseline ${baseline}`,
  );
});

test('an upstream that never answers ends the association after connect_timeout', async () => {
  const client = await peer();
  const a = await open(g.port('via-silent'));
  await client.send(
    encodeUdpDatagram(target('127.0.0.1', dns4.port), dnsQuery(1, 'x.test')),
    a.relay!.port,
    '127.0.0.1',
  );
  await a.control.closed(5000);
  const line = await g.waitForLog(lineOf(a));
  assert.equal(line.result, 'CONNECT_TIMEOUT');
  assert.match(String(line.error), /UDP ASSOCIATE timed out/);
});

test(`past ${MAX_TARGETS} distinct targets, datagrams to new targets are dropped and counted; known ones still answer`, async () => {
  const client = await peer();
  const a = await open(g.port('s'));
  const relayPort = a.relay!.port;
  const address = (i: number) => `127.1.${Math.floor(i / 200)}.${(i % 200) + 1}`;
  // One server per target address: replies come from the address the client sent to.
  const servers = await Promise.all(
    Array.from({ length: MAX_TARGETS }, (_, i) => dnsServer(address(i))),
  );
  peers.push(...servers);
  const port = (i: number) => servers[i]?.port ?? servers[0]!.port;
  for (let i = 0; i < MAX_TARGETS; i++) {
    await client.send(
      encodeUdpDatagram(target(address(i), port(i)), dnsQuery(i, 'n.test')),
      relayPort,
      '127.0.0.1',
    );
    await client.next();
  }
  for (let i = MAX_TARGETS; i < MAX_TARGETS + 5; i++) {
    await client.send(
      encodeUdpDatagram(target(address(i), port(i)), dnsQuery(i, 'n.test')),
      relayPort,
      '127.0.0.1',
    );
  }
  await client.send(
    encodeUdpDatagram(target(address(0), port(0)), dnsQuery(1, 'again.test')),
    relayPort,
    '127.0.0.1',
  );
  const again = await client.next();
  assert.equal(
    again.payload.subarray(10).toString('hex'),
    dnsAnswer(dnsQuery(1, 'again.test')).toString('hex'),
  );
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.deepEqual(line.dropped, { too_many_targets: 5 });
});

test('the mixed inbound serves UDP ASSOCIATE', async () => {
  const client = await peer();
  const a = await open(g.port('m'));
  const { query, reply } = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 11);
  assert.equal(reply.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
});

test('with auth, UDP ASSOCIATE needs the username/password first, as CONNECT does', async () => {
  const client = await peer();
  const a = await open(g.port('auth'), { credentials: { username: 'alice', password: PASSWORD } });
  const { query, reply } = await roundTrip(client, a.relay!, target('127.0.0.1', dns4.port), 12);
  assert.equal(reply.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
  a.control.socket.end();
  const line = await g.waitForLog(lineOf(a));
  assert.equal(line.user, 'alice');
  await assert.rejects(open(g.port('auth')), /method ff|05ff/);
});

test('udp: false answers UDP ASSOCIATE with 0x07; a client outside `allow` gets 0x02', async () => {
  const off = await open(g.port('no-udp'));
  assert.equal(off.reply[1], 0x07);
  const outside = await open(g.port('lan-only'));
  assert.equal(outside.reply[1], 0x02);
});

test('udp_advertise replaces BND.ADDR in the reply; the relay still listens on the real address', async () => {
  const a = await open(g.port('adv'));
  assert.equal(a.reply.subarray(0, 8).toString('hex'), '05000001c0000207');
  const client = await peer();
  const { query, reply } = await roundTrip(
    client,
    target('127.0.0.1', a.relay!.port),
    target('127.0.0.1', dns4.port),
    13,
  );
  assert.equal(reply.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
});

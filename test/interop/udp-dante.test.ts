import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SocksClient } from 'socks';
import { encodeUdpDatagram } from '../../src/inbound/socks-udp-codec.js';
import { parseHost, type Target } from '../../src/target.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  OUTGOING,
  startDante,
  startMicrosocks,
  SYSTEM_USER,
  systemUserUnavailable,
  unavailable,
  type Peer,
} from '../helpers/peers.js';
import {
  associate,
  dnsAnswer,
  dnsQuery,
  dnsServer,
  openFds,
  udpPeer,
  type UdpPeer,
} from '../helpers/udp.js';
import { eventually } from '../helpers/wait.js';

/**
 * junction's UDP through dante-server as the upstream SOCKS5 (command udpassociate, and a
 * udpreply pass rule: research/peers.md). dante sends from its `external:` address 127.0.0.4,
 * so the DNS server's record of where each query came from proves the path.
 */

const skip = unavailable('dante', 'microsocks') || systemUserUnavailable();

let dante: Peer;
let danteAuth: Peer;
/** SOCKS5 CONNECT only: it has no UDP ASSOCIATE. */
let microsocks: Peer;
let dns: UdpPeer;
let g: TestGateway;
const peers: UdpPeer[] = [];

before(async () => {
  if (skip) return;
  dns = await dnsServer('127.0.0.1');
  [dante, danteAuth, microsocks] = await Promise.all([
    startDante(),
    startDante({ auth: true }),
    startMicrosocks(),
  ]);
  const sys = `${SYSTEM_USER.name}:${SYSTEM_USER.password}`;
  g = await startGateway({
    inbounds: [
      { name: 'd5', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'd5h', type: 'mixed', listen: '127.0.0.1:0' },
      { name: 'd-auth', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'ms', type: 'socks', listen: '127.0.0.1:0' },
    ],
    outbounds: [
      { name: 'dante-5', url: `socks5://127.0.0.1:${dante.port}` },
      { name: 'dante-5h', url: `socks5h://127.0.0.1:${dante.port}` },
      { name: 'dante-auth', url: `socks5h://${sys}@127.0.0.1:${danteAuth.port}` },
      { name: 'microsocks', url: `socks5://127.0.0.1:${microsocks.port}` },
    ],
    rules: [
      { inbound: ['d5'], outbound: 'dante-5' },
      { inbound: ['d5h'], outbound: 'dante-5h' },
      { inbound: ['d-auth'], outbound: 'dante-auth' },
      { inbound: ['ms'], outbound: 'microsocks' },
    ],
  });
});

after(async () => {
  if (skip) return;
  await Promise.all(peers.map((p) => p.close()));
  await g.stop();
  await Promise.all([dante.stop(), danteAuth.stop(), microsocks.stop(), dns.close()]);
});

const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s/g, ''), 'hex');
const port2 = (port: number): string => port.toString(16).padStart(4, '0');

async function peer(): Promise<UdpPeer> {
  const p = await udpPeer('127.0.0.1');
  peers.push(p);
  return p;
}

for (const [inbound, host] of [
  ['d5', '127.0.0.1'],
  ['d5h', 'localhost'],
] as const) {
  test(
    `a DNS query through junction → dante (${inbound === 'd5' ? 'socks5' : 'socks5h'}, target ${host}) comes back byte-exact`,
    { skip },
    async () => {
      const client = await peer();
      const a = await associate(g.port(inbound));
      try {
        assert.ok(a.relay, a.reply.toString('hex'));
        const query = dnsQuery(0xda, `${inbound}.dante.test`);
        await client.send(
          encodeUdpDatagram(target(host, dns.port), query),
          a.relay.port,
          '127.0.0.1',
        );
        const { payload } = await client.next(5000);
        const head = hex(`0000 00 01 7f000001 ${port2(dns.port)}`);
        assert.equal(
          payload.toString('hex'),
          Buffer.concat([head, dnsAnswer(query)]).toString('hex'),
        );
        const seen = dns.seen.at(-1);
        assert.equal(seen?.payload.toString('hex'), query.toString('hex'));
        assert.equal(seen.address, OUTGOING.dante, 'the query came out of dante');
      } finally {
        a.control.socket.end();
      }
      const line = await g.waitForLog(
        (l) =>
          l.msg === 'session' &&
          l.protocol === 'socks5-udp' &&
          l.client === `127.0.0.1:${a.control.socket.localPort}`,
      );
      assert.equal(line.datagrams_up, 1);
      assert.equal(line.datagrams_down, 1);
      assert.deepEqual(line.outbounds, [inbound === 'd5' ? 'dante-5' : 'dante-5h']);
    },
  );
}

test(
  'the socks package client through junction → dante: several round trips on one association',
  { skip },
  async () => {
    const client = await peer();
    const socks = new SocksClient({
      proxy: { host: '127.0.0.1', port: g.port('d5'), type: 5 },
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
      const relay = info.remoteHost!;
      for (let id = 1; id <= 3; id++) {
        const query = dnsQuery(id, `q${id}.dante.test`);
        const frame = SocksClient.createUDPFrame({
          remoteHost: { host: '127.0.0.1', port: dns.port },
          data: query,
        });
        await client.send(frame, relay.port, relay.host);
        const parsed = SocksClient.parseUDPFrame((await client.next(5000)).payload);
        assert.deepEqual(parsed.remoteHost, { host: '127.0.0.1', port: dns.port });
        assert.equal(parsed.data.toString('hex'), dnsAnswer(query).toString('hex'));
      }
    } finally {
      info.socket.destroy();
    }
  },
);

test(
  "closing the client association closes junction's association with dante: fds back to baseline",
  { skip },
  async () => {
    const client = await peer();
    await eventually(
      () => g.gateway.activeConnections === 0,
      () => `gateway connections ${g.gateway.activeConnections}`,
    );
    const baseline = openFds();
    const a = await associate(g.port('d5'));
    await client.send(
      encodeUdpDatagram(target('127.0.0.1', dns.port), dnsQuery(1, 'fd.test')),
      a.relay!.port,
      '127.0.0.1',
    );
    await client.next(5000);
    // Ours: control (2) and relay; towards dante: its control connection and our dgram socket.
    assert.ok(openFds() >= baseline + 5, `fds ${openFds()}, baseline ${baseline}`);
    a.control.socket.end();
    await a.control.closed();
    a.control.socket.destroy();
    await eventually(
      () => openFds() === baseline,
      () => `fds ${openFds()}, baseline ${baseline}`,
    );
  },
);

test('dante with username auth (RFC 1929) carries the association too', { skip }, async () => {
  const client = await peer();
  const a = await associate(g.port('d-auth'));
  try {
    const query = dnsQuery(0xa1, 'auth.dante.test');
    await client.send(
      encodeUdpDatagram(target('127.0.0.1', dns.port), query),
      a.relay!.port,
      '127.0.0.1',
    );
    const { payload } = await client.next(5000);
    assert.equal(payload.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
    assert.equal(dns.seen.at(-1)?.address, OUTGOING.dante);
  } finally {
    a.control.socket.destroy();
  }
});

test(
  'an upstream without UDP (microsocks) refuses UDP ASSOCIATE: the association ends and says why',
  { skip },
  async () => {
    const client = await peer();
    const a = await associate(g.port('ms'));
    const from = `127.0.0.1:${a.control.socket.localPort}`;
    await client.send(
      encodeUdpDatagram(target('127.0.0.1', dns.port), dnsQuery(1, 'ms.test')),
      a.relay!.port,
      '127.0.0.1',
    );
    await a.control.closed(5000);
    a.control.socket.destroy();
    const line = await g.waitForLog(
      (l) => l.msg === 'session' && l.protocol === 'socks5-udp' && l.client === from,
    );
    assert.equal(line.result, 'UPSTREAM_FAILED');
    assert.match(String(line.error), /command not supported \(SOCKS5 reply 0x07\)/);
    assert.equal(line.datagrams_down, 0);
  },
);

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeUdpDatagram } from '../../src/inbound/socks-udp-codec.js';
import { parseHost, type Target } from '../../src/target.js';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { socks5Connect } from '../helpers/socks-client.js';
import {
  associate,
  dnsAnswer,
  dnsQuery,
  dnsServer,
  udpPeer,
  type Association,
  type UdpPeer,
} from '../helpers/udp.js';

/**
 * `deny_destinations` over SOCKS5 CONNECT (REP 0x02) and UDP ASSOCIATE (the datagram dropped as
 * `denied`): multicast, broadcast and reserved IPv4, and the IPv6 prefixes that lead to an IPv4
 * address through a translator or a tunnel (NAT64, 6to4, Teredo), which also answer for the IPv4
 * address they carry.
 */

/** In `private` since multicast, NAT64 and 6to4 joined it; one address per range. */
const PRIVATE = [
  '224.0.0.1',
  '239.255.255.250',
  '240.0.0.1',
  '255.255.255.255',
  '192.0.0.170',
  'fec0::1',
  'ff02::1',
  '64:ff9b::808:808',
  '64:ff9b::7f00:1',
  '64:ff9b:1::1',
  '2002:7f00:1::',
  '2002:808:808::1',
  '2001:0:4136:e378:8000:63bf:3fff:fdd2',
];

/** IPv6 addresses that carry 127.0.0.1: NAT64, 6to4, IPv4-translated, IPv4-compatible. */
const CARRYING_127_0_0_1 = ['64:ff9b::7f00:1', '2002:7f00:1::', '::ffff:0:7f00:1', '::7f00:1'];

const PORT = 53;

let dns: UdpPeer;
/** Outside 127.0.0.1/32, for the gateway that denies only that. */
let dns2: UdpPeer;
let privateGw: TestGateway;
let oneAddressGw: TestGateway;

before(async () => {
  [dns, dns2] = await Promise.all([dnsServer('127.0.0.1'), dnsServer('127.0.0.2')]);
  const gateway = (deny: string[]) =>
    startGateway({
      limits: { connect_timeout: '1s', deny_destinations: deny },
      inbounds: [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }],
    });
  [privateGw, oneAddressGw] = await Promise.all([gateway(['private']), gateway(['127.0.0.1/32'])]);
});

after(async () => {
  await Promise.all([privateGw.stop(), oneAddressGw.stop()]);
  await Promise.all([dns.close(), dns2.close()]);
});

const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });

/** CONNECT to each address and the REP byte of each reply. */
async function connectReplies(g: TestGateway, addresses: readonly string[]) {
  const replies: Record<string, number> = {};
  for (const ip of addresses) {
    const { client, reply } = await socks5Connect(g.port('s'), ip, PORT);
    client.socket.destroy();
    replies[ip] = reply;
  }
  return replies;
}

/**
 * One datagram to each address on one association, then a DNS round trip to `allowed` that
 * proves the association works; returns its access-log line.
 */
async function datagramsTo(
  g: TestGateway,
  addresses: readonly string[],
  allowed: UdpPeer,
): Promise<LogLine> {
  const client = await udpPeer('127.0.0.1');
  let a: Association | undefined;
  try {
    a = await associate(g.port('s'));
    const relayPort = a.relay!.port;
    for (const ip of addresses) {
      await client.send(
        encodeUdpDatagram(target(ip, PORT), Buffer.from('x')),
        relayPort,
        '127.0.0.1',
      );
    }
    const query = dnsQuery(0x7e57, 'allowed.test');
    await client.send(
      encodeUdpDatagram(target(allowed.socket.address().address, allowed.port), query),
      relayPort,
      '127.0.0.1',
    );
    const { payload } = await client.next();
    assert.equal(payload.subarray(10).toString('hex'), dnsAnswer(query).toString('hex'));
    const localPort = a.control.socket.localPort;
    a.control.socket.end();
    return await g.waitForLog(
      (l) =>
        l.msg === 'session' && l.protocol === 'socks5-udp' && l.client === `127.0.0.1:${localPort}`,
    );
  } finally {
    a?.control.socket.destroy();
    await client.close();
  }
}

const everyReply = (addresses: readonly string[], rep: number) =>
  Object.fromEntries(addresses.map((ip) => [ip, rep]));

test('deny_destinations [private]: SOCKS5 CONNECT to multicast, broadcast, reserved, NAT64, 6to4 and Teredo addresses answers 0x02', async () => {
  assert.deepEqual(await connectReplies(privateGw, PRIVATE), everyReply(PRIVATE, 0x02));
});

test('deny_destinations [private]: a UDP datagram to each of them is dropped as denied', async () => {
  const line = await datagramsTo(privateGw, PRIVATE, dns);
  assert.deepEqual(line.dropped, { denied: PRIVATE.length });
  assert.equal(line.datagrams_down, 1);
});

test('deny_destinations [127.0.0.1/32]: NAT64, 6to4, IPv4-translated and IPv4-compatible addresses carrying 127.0.0.1 are refused, TCP (0x02) and UDP (denied)', async () => {
  assert.deepEqual(
    await connectReplies(oneAddressGw, CARRYING_127_0_0_1),
    everyReply(CARRYING_127_0_0_1, 0x02),
  );
  const line = await datagramsTo(oneAddressGw, CARRYING_127_0_0_1, dns2);
  assert.deepEqual(line.dropped, { denied: CARRYING_127_0_0_1.length });
});

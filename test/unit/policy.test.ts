import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, type Cidr } from '../../src/cidr.js';
import { embeddedIpv4 } from '../../src/ipv4-in-ipv6.js';
import { createDestinationPolicy } from '../../src/policy.js';

/** One address inside each range `private` covers, with what it is. */
const PRIVATE_SAMPLES: readonly (readonly [string, string])[] = [
  ['10.1.2.3', 'RFC 1918'],
  ['172.31.255.254', 'RFC 1918'],
  ['192.168.0.1', 'RFC 1918'],
  ['100.64.0.1', 'shared address space (CGN)'],
  ['169.254.169.254', 'link-local (cloud metadata)'],
  ['192.0.0.170', 'IETF protocol assignments (NAT64 discovery)'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast (SSDP)'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'limited broadcast'],
  ['fd00::1', 'unique local'],
  ['fe80::1', 'link-local'],
  ['fec0::1', 'site-local'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['64:ff9b::808:808', 'NAT64 well-known prefix, whatever it embeds'],
  ['64:ff9b:1::1', 'NAT64 local-use prefix'],
  ['2002:808:808::1', '6to4, whatever it embeds'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo'],
  ['::ffff:10.0.0.1', 'IPv4-mapped private'],
  ['::ffff:e000:1', 'IPv4-mapped multicast, in hex'],
  ['::ffff:0:a00:1', 'IPv4-translated private'],
  ['::a00:1', 'IPv4-compatible private'],
];

const GLOBAL = ['8.8.8.8', '1.1.1.1', '2001:4860:4860::8888', '2606:4700::1111', '192.0.2.1'];

test('`private` denies every range it names, multicast, reserved, NAT64, 6to4 and Teredo included', () => {
  const policy = createDestinationPolicy(['private']);
  for (const [ip, what] of PRIVATE_SAMPLES) {
    assert.equal(policy.allows(ip), false, `${ip} (${what})`);
  }
  for (const ip of GLOBAL) assert.equal(policy.allows(ip), true, ip);
  // Loopback has a word of its own.
  assert.equal(policy.allows('127.0.0.1'), true);
  assert.equal(policy.allows('::1'), true);
});

test('an IPv6 address that carries a denied IPv4 address is denied: NAT64, 6to4, Teredo, mapped, translated, compatible', () => {
  const loopback = createDestinationPolicy(['loopback']);
  for (const ip of [
    '64:ff9b::7f00:1',
    '64:ff9b::127.0.0.1',
    '64:ff9b:1:7f00:0:100::',
    '2002:7f00:1::',
    '2002:7f00:1:ffff::1',
    '2001:0:7f00:1::1',
    '2001:0:4136:e378:8000:63bf:80ff:fffe',
    '::ffff:7f00:1',
    '::ffff:0:7f00:1',
    '::7f00:1',
    '::1',
  ]) {
    assert.equal(loopback.allows(ip), false, ip);
  }
  for (const ip of ['64:ff9b::808:808', '2002:808:808::1', '::ffff:8.8.8.8', '2001:db8::1']) {
    assert.equal(loopback.allows(ip), true, ip);
  }
  const tenNet = createDestinationPolicy([parseCidr('10.0.0.0/8') as Cidr]);
  assert.equal(tenNet.allows('64:ff9b::a00:1'), false);
  assert.equal(tenNet.allows('2002:a00:1::'), false);
  assert.equal(tenNet.allows('64:ff9b::b00:1'), true);
});

test('embeddedIpv4 reads the IPv4 address at the place each prefix puts it', () => {
  assert.deepEqual(embeddedIpv4('64:ff9b::c000:221'), ['192.0.2.33']);
  // RFC 6052 §2.4: 192.0.2.33 in a /48 prefix skips the u octet (bits 64-71).
  assert.deepEqual(embeddedIpv4('64:ff9b:1:c000:2:2100::'), ['192.0.2.33']);
  assert.deepEqual(embeddedIpv4('2002:c000:221::1'), ['192.0.2.33']);
  // RFC 4380 §4: server 65.54.227.120, client 192.0.2.45 with every bit inverted.
  assert.deepEqual(embeddedIpv4('2001:0:4136:e378:8000:63bf:3fff:fdd2'), [
    '65.54.227.120',
    '192.0.2.45',
  ]);
  assert.deepEqual(embeddedIpv4('::ffff:192.0.2.33'), ['192.0.2.33']);
  assert.deepEqual(embeddedIpv4('::ffff:0:c000:221'), ['192.0.2.33']);
  assert.deepEqual(embeddedIpv4('2001:db8::1'), []);
  assert.deepEqual(embeddedIpv4('192.0.2.33'), []);
});

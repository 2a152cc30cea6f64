import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SocksClient } from 'socks';
import {
  encodeUdpDatagram,
  encodeUdpHeader,
  parseUdpDatagram,
} from '../../src/inbound/socks-udp-codec.js';
import { parseHost, type Target } from '../../src/target.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s/g, ''), 'hex');

/** Valid targets of the three address types, normalised as parseHost would give them. */
const targetArbitrary: fc.Arbitrary<Target> = fc
  .tuple(
    fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.domain().filter((d) => Buffer.byteLength(d) <= 255),
    ),
    fc.integer({ min: 1, max: 65535 }),
  )
  .map(([text, port]) => ({ host: parseHost(text), port }))
  .filter((t): t is Target => t.host !== undefined);

/** Mostly frames that start plausibly (RSV 0, a known ATYP), so the fuzzer reaches the address. */
const bytesArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc
    .tuple(
      fc.constantFrom(0x00, 0x01, 0x80),
      fc.constantFrom(0x01, 0x02, 0x03, 0x04, 0x05, 0xff),
      fc.uint8Array({ maxLength: 300 }),
    )
    .map(([frag, atyp, rest]) => Uint8Array.from([0, 0, frag, atyp, ...rest])),
);

test('random bytes never throw and always parse to ok or error, never beyond the frame', () => {
  fc.assert(
    fc.property(bytesArbitrary, (raw) => {
      const frame = Buffer.from(raw);
      const result = parseUdpDatagram(frame);
      if (result.kind === 'error') {
        assert.equal(typeof result.reason, 'string');
        return;
      }
      assert.equal(result.kind, 'ok');
      const { target, payload } = result.value;
      assert.ok(payload.length <= frame.length - 4);
      assert.ok(target.port >= 1 && target.port <= 65535);
      // What parsed encodes back to the same header (names are normalised: compare re-parsed).
      const again = parseUdpDatagram(encodeUdpDatagram(target, payload, result.value.frag));
      assert.equal(again.kind, 'ok');
      assert.deepEqual(again.value.target, target);
    }),
    { numRuns: 5000 },
  );
});

test('encode then parse gives back the target, payload and FRAG', () => {
  fc.assert(
    fc.property(
      targetArbitrary,
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: 0, max: 255 }),
      (target, raw, frag) => {
        const payload = Buffer.from(raw);
        const result = parseUdpDatagram(encodeUdpDatagram(target, payload, frag));
        assert.equal(result.kind, 'ok');
        assert.deepEqual(result.value.target, target);
        assert.equal(result.value.frag, frag);
        assert.equal(result.value.payload.toString('hex'), payload.toString('hex'));
      },
    ),
    { numRuns: 2000 },
  );
});

test('every frame the socks package builds (createUDPFrame) parses to what it was given', () => {
  fc.assert(
    fc.property(targetArbitrary, fc.uint8Array({ maxLength: 100 }), (target, raw) => {
      const host = target.host.kind === 'domain' ? target.host.name : target.host.ip;
      const data = Buffer.from(raw);
      const frame = SocksClient.createUDPFrame({ remoteHost: { host, port: target.port }, data });
      const result = parseUdpDatagram(frame);
      assert.equal(result.kind, 'ok');
      assert.deepEqual(result.value.target, target);
      assert.equal(result.value.payload.toString('hex'), data.toString('hex'));
      // And our header is byte for byte the package's.
      assert.equal(
        Buffer.concat([encodeUdpHeader(target), data]).toString('hex'),
        frame.toString('hex'),
      );
    }),
    { numRuns: 1000 },
  );
});

test('every truncation of a valid header is an error, never a short read', () => {
  for (const target of [
    { host: parseHost('192.0.2.1')!, port: 53 },
    { host: parseHost('2001:db8::1')!, port: 53 },
    { host: parseHost('dns.example')!, port: 53 },
  ]) {
    const header = encodeUdpHeader(target);
    for (let length = 0; length < header.length; length++) {
      const result = parseUdpDatagram(header.subarray(0, length));
      assert.equal(result.kind, 'error', header.subarray(0, length).toString('hex'));
    }
    // The whole header with no data is a valid, empty datagram.
    const whole = parseUdpDatagram(header);
    assert.equal(whole.kind === 'ok' && whole.value.payload.length, 0);
  }
});

test('strict: RSV must be zero, ATYP 1, 3 or 4, a valid name, a port other than 0', () => {
  const cases: [string, string][] = [
    ['0100 00 01 c0000201 0035 aa', 'RSV is not zero'],
    ['0001 00 01 c0000201 0035 aa', 'RSV is not zero'],
    ['0000 00 02 c0000201 0035 aa', 'address type 2 is not supported'],
    ['0000 00 05 c0000201 0035 aa', 'address type 5 is not supported'],
    ['0000 00 03 00 0035 aa', 'invalid host name'],
    ['0000 00 03 03 612062 0035', 'invalid host name'],
    ['0000 00 01 c0000201 0000 aa', 'port 0 is not a destination'],
    ['0000 00', 'datagram shorter than the SOCKS5 UDP header'],
    ['0000 00 03 10 6162', 'datagram truncated inside its address'],
  ];
  for (const [frame, reason] of cases) {
    assert.deepEqual(parseUdpDatagram(hex(frame)), { kind: 'error', reason }, frame);
  }
});

test('exact bytes: the header names IPv4, IPv6 and name sources as RFC 1928 §7 lays them out', () => {
  assert.equal(
    encodeUdpHeader({ host: parseHost('127.0.0.1')!, port: 53 }).toString('hex'),
    '000000017f0000010035',
  );
  assert.equal(
    encodeUdpHeader({ host: parseHost('::1')!, port: 443 }).toString('hex'),
    `00000004${'00'.repeat(15)}0101bb`,
  );
  assert.equal(
    encodeUdpHeader({ host: parseHost('a.bc')!, port: 65535 }).toString('hex'),
    '0000000304612e6263ffff',
  );
  const parsed = parseUdpDatagram(hex('0000 00 04 20010db8000000000000000000000001 0035 ff'));
  assert.deepEqual(parsed, {
    kind: 'ok',
    value: {
      frag: 0,
      target: { host: { kind: 'ipv6', ip: '2001:db8::1' }, port: 53 },
      payload: Buffer.from([0xff]),
    },
  });
});

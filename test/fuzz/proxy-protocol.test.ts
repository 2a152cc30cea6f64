import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeProxyHeader,
  MAX_HEADER_BYTES,
  parseProxyHeader,
  V1_MAX_BYTES,
  V2_SIGNATURE,
  type Endpoint,
} from '../../src/inbound/proxy-protocol.js';

const V1_PREFIX = Buffer.from('PROXY ');

/** Mostly plausible starts, so the fuzzer gets past the prefix and signature often. */
const bytesArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc
    .tuple(
      fc.constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN', 'TCP4 1.2.3.4 5.6.7.8 ', ''),
      fc.stringMatching(/^[0-9a-fA-F.: \r\n]{0,120}$/),
    )
    .map(([kind, rest]) => Uint8Array.from(Buffer.from(`PROXY ${kind}${rest}`, 'latin1'))),
  fc
    .tuple(
      fc.constantFrom(0x20, 0x21, 0x22, 0x11),
      fc.constantFrom(0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x13, 0x40),
      fc.integer({ min: 0, max: 300 }),
      fc.uint8Array({ maxLength: 400 }),
    )
    .map(([vc, fam, len, rest]) =>
      Uint8Array.from([...V2_SIGNATURE, vc, fam, len >> 8, len & 0xff, ...rest]),
    ),
);

const ipv4 = fc.ipV4();
const ipv6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((groups) => groups.map((g) => g.toString(16)).join(':'));
const port = fc.integer({ min: 0, max: 65535 });
const endpoint = (ip: fc.Arbitrary<string>): fc.Arbitrary<Endpoint> => fc.record({ ip, port });

test('random bytes never throw, and every result is bounded and consistent', () => {
  fc.assert(
    fc.property(bytesArbitrary, (raw) => {
      const bytes = Buffer.from(raw);
      const result = parseProxyHeader(bytes);
      if (result.kind === 'ok') {
        assert.ok(result.consumed <= bytes.length);
        assert.ok(result.consumed <= MAX_HEADER_BYTES);
        if (result.value === undefined) assert.equal(result.consumed, 0);
        else assert.ok(result.consumed > 0);
      }
      if (bytes.length >= MAX_HEADER_BYTES) assert.notEqual(result.kind, 'incomplete');
      if (bytes.subarray(0, 6).equals(V1_PREFIX) && bytes.length >= V1_MAX_BYTES)
        assert.notEqual(result.kind, 'incomplete', 'v1 must decide by 107 bytes');
    }),
    { numRuns: 3000 },
  );
});

test('a prefix of a valid header is incomplete, never an error or a different header', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1 as const, 2 as const),
      fc.oneof(fc.tuple(endpoint(ipv4), endpoint(ipv4)), fc.tuple(endpoint(ipv6), endpoint(ipv6))),
      (version, [source, destination]) => {
        const header = encodeProxyHeader(version, source, destination);
        for (let n = 0; n < header.length; n++) {
          assert.equal(parseProxyHeader(header.subarray(0, n)).kind, 'incomplete', `at ${n}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('encode then parse gives back the addresses, and the bytes after the header stay', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1 as const, 2 as const),
      fc.oneof(fc.tuple(endpoint(ipv4), endpoint(ipv4)), fc.tuple(endpoint(ipv6), endpoint(ipv6))),
      fc.uint8Array({ maxLength: 40 }),
      (version, [source, destination], after) => {
        const header = encodeProxyHeader(version, source, destination);
        const result = parseProxyHeader(Buffer.concat([header, after]));
        if (result.kind !== 'ok' || result.value?.command !== 'proxy') assert.fail('no address');
        assert.equal(result.consumed, header.length);
        assert.equal(result.value.version, version);
        assert.deepEqual(result.value.source, { ...source, ip: canonical(source.ip) });
        assert.deepEqual(result.value.destination, {
          ...destination,
          ip: canonical(destination.ip),
        });
      },
    ),
    // Seeds kept: an IPv4-mapped IPv6 source comes back as IPv4, as the listener spells it;
    // a v1 header once gave back the zero address as spelt ("0:0:0:0:0:0:0:0", not "::").
    {
      numRuns: 1000,
      examples: [
        [
          1,
          [
            { ip: '0:0:0:0:0:0:0:0', port: 0 },
            { ip: '0:0:0:0:0:0:0:0', port: 0 },
          ],
          new Uint8Array(),
        ],
        [
          2,
          [
            { ip: '0:0:0:0:0:ffff:a00:1', port: 1 },
            { ip: '::1', port: 2 },
          ],
          new Uint8Array(),
        ],
      ],
    },
  );
});

/** How the parser spells an address: the shortest IPv6 text, IPv4-mapped as IPv4. */
function canonical(ip: string): string {
  if (!ip.includes(':')) return ip;
  const url = new URL(`http://[${ip}]/`);
  const text = url.hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(text);
  if (!mapped) return text;
  const hi = parseInt(mapped[1] ?? '0', 16);
  const lo = parseInt(mapped[2] ?? '0', 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

test('the inbound protocols are never taken for a header', () => {
  for (const start of [
    'GET / HTTP/1.1\r\n',
    'POST / HTTP/1.1\r\n',
    'PUT x',
    'PATCH x',
    '\r\nGET',
  ]) {
    assert.deepEqual(parseProxyHeader(Buffer.from(start)), {
      kind: 'ok',
      value: undefined,
      consumed: 0,
    });
  }
  for (const start of [
    [0x05, 0x01, 0x00],
    [0x04, 0x01],
    [0x16, 0x03, 0x01],
  ]) {
    assert.equal(parseProxyHeader(Buffer.from(start)).kind, 'ok');
  }
  // "P" could still be "PROXY ": the parser waits for the byte that tells.
  assert.equal(parseProxyHeader(Buffer.from('PRO')).kind, 'incomplete');
});

test('v1 and v2 headers from the specification, UNKNOWN and LOCAL', () => {
  const v1 = parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET'));
  assert.deepEqual(v1, {
    kind: 'ok',
    value: {
      version: 1,
      command: 'proxy',
      source: { ip: '192.0.2.7', port: 56324 },
      destination: { ip: '198.51.100.1', port: 443 },
    },
    consumed: 45,
  });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN whatever\r\n')), {
    kind: 'ok',
    value: { version: 1, command: 'local' },
    consumed: 24,
  });
  const local = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  assert.deepEqual(parseProxyHeader(local), {
    kind: 'ok',
    value: { version: 2, command: 'local' },
    consumed: 16,
  });
  // A v2 header with a TLV (PP2_TYPE_AUTHORITY "a.b") after its IPv4 addresses.
  const tlv = Buffer.from([0x02, 0x00, 0x03, 0x61, 0x2e, 0x62]);
  const addresses = Buffer.from([10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x01, 0xbb]);
  const v2 = Buffer.concat([
    V2_SIGNATURE,
    Buffer.from([0x21, 0x11, 0x00, addresses.length + tlv.length]),
    addresses,
    tlv,
  ]);
  assert.deepEqual(parseProxyHeader(v2), {
    kind: 'ok',
    value: {
      version: 2,
      command: 'proxy',
      source: { ip: '10.0.0.1', port: 8080 },
      destination: { ip: '10.0.0.2', port: 443 },
    },
    consumed: v2.length,
  });
});

test('malformed headers are errors: bad fields, overlong lines, TLVs past the end, bad family', () => {
  const bad = [
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n',
    'PROXY TCP4 1.2.3.4 ::1 1 2\r\n',
    'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
    `PROXY UNKNOWN ${'x'.repeat(120)}\r\n`,
  ];
  for (const text of bad) assert.equal(parseProxyHeader(Buffer.from(text)).kind, 'error', text);
  const v2 = (vc: number, fam: number, body: number[]): Buffer =>
    Buffer.concat([V2_SIGNATURE, Buffer.from([vc, fam, 0, body.length, ...body])]);
  const ipv4Body = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
  assert.equal(parseProxyHeader(v2(0x21, 0x11, [...ipv4Body, 0x01, 0x00, 0x05, 0])).kind, 'error');
  assert.equal(parseProxyHeader(v2(0x21, 0x13, ipv4Body)).kind, 'error');
  assert.equal(parseProxyHeader(v2(0x22, 0x11, ipv4Body)).kind, 'error');
  assert.equal(parseProxyHeader(v2(0x11, 0x11, ipv4Body)).kind, 'error');
  assert.equal(parseProxyHeader(v2(0x21, 0x11, [1, 2, 3])).kind, 'error');
  const huge = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
  assert.equal(parseProxyHeader(huge).kind, 'error', 'a 64 KiB header is refused at once');
});

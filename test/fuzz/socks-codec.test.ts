import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeSocks4Reply,
  encodeSocks5Reply,
  encodeSocks5Request,
  parseCredentials,
  parseSocks4Request,
  parseSocks5Address,
  parseSocks5Greeting,
  parseSocks5Request,
  peekVersion,
  type Parsed,
  type Parser,
  type SocksCommand,
} from '../../src/inbound/socks-codec.js';
import { parseHost, type Target } from '../../src/target.js';

/** Each parser with the size past which it must have decided (the bound its reader uses). */
const PARSERS: readonly (readonly [string, Parser<unknown>, number])[] = [
  ['peekVersion', peekVersion, 1],
  ['parseSocks5Greeting', parseSocks5Greeting, 2 + 255],
  ['parseCredentials', parseCredentials, 3 + 255 + 255],
  ['parseSocks5Request', parseSocks5Request, 4 + 1 + 255 + 2],
  ['parseSocks4Request', parseSocks4Request, 8 + 256 + 256],
  ['parseSocks5Address', (bytes) => parseSocks5Address(bytes, 0), 1 + 1 + 255 + 2],
];

/** Mostly plausible prefixes, so the fuzzer gets past the version byte often. */
const bytesArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .tuple(
      fc.constantFrom(0x01, 0x03, 0x04, 0x05),
      fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0x09),
      fc.uint8Array({ maxLength: 600 }),
    )
    .map(([a, b, rest]) => Uint8Array.from([a, b, ...rest])),
);

function assertWellFormed(name: string, bytes: Buffer, result: Parsed<unknown>): void {
  if (result.kind === 'ok') {
    assert.ok(result.consumed <= bytes.length, `${name}: consumed more than it was given`);
  } else if (result.kind === 'error') {
    assert.equal(typeof result.reason, 'string');
  } else {
    assert.equal(result.kind, 'incomplete', `${name}: unknown result kind`);
  }
}

test('random bytes never throw and always parse to incomplete, ok or error', () => {
  fc.assert(
    fc.property(bytesArbitrary, (raw) => {
      const bytes = Buffer.from(raw);
      for (const [name, parse, max] of PARSERS) {
        const result = parse(bytes);
        assertWellFormed(name, bytes, result);
        if (bytes.length >= max)
          assert.notEqual(result.kind, 'incomplete', `${name} still incomplete at its bound`);
      }
    }),
    { numRuns: 2000 },
  );
});

test('parsers decide on the bytes seen: more bytes never change an answer, fewer give incomplete', () => {
  fc.assert(
    fc.property(bytesArbitrary, fc.uint8Array({ minLength: 1, maxLength: 32 }), (raw, more) => {
      const bytes = Buffer.from(raw);
      const extended = Buffer.concat([bytes, more]);
      for (const [name, parse] of PARSERS) {
        const result = parse(bytes);
        if (result.kind === 'incomplete') continue;
        assert.deepEqual(parse(extended), result, `${name}: extra bytes changed the answer`);
        if (result.kind === 'ok' && result.consumed > 0) {
          const prefix = parse(bytes.subarray(0, result.consumed - 1));
          assert.equal(prefix.kind, 'incomplete', `${name}: decided before the message was whole`);
        }
      }
    }),
    { numRuns: 1000 },
  );
});

const hostArbitrary = fc
  .oneof(fc.ipV4(), fc.ipV6(), fc.domain())
  .map(parseHost)
  .filter((h) => h !== undefined);
const portArbitrary = fc.integer({ min: 0, max: 65535 });
// A tuple, not fc.record: record objects have a null prototype, which deepStrictEqual tells apart.
const targetArbitrary = fc
  .tuple(hostArbitrary, portArbitrary)
  .map(([host, port]): Target => ({ host, port }));
const commandArbitrary = fc.constantFrom<SocksCommand>('connect', 'bind', 'udp-associate');

test('an encoded SOCKS5 request parses back to the same command and target', () => {
  fc.assert(
    fc.property(commandArbitrary, targetArbitrary, (command, target) => {
      const bytes = encodeSocks5Request(command, target);
      assert.deepEqual(parseSocks5Request(bytes), {
        kind: 'ok',
        value: { command, target },
        consumed: bytes.length,
      });
    }),
    { numRuns: 1000 },
  );
});

test('an encoded SOCKS5 reply carries its bound address back', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), targetArbitrary, (reply, bound) => {
      const bytes = encodeSocks5Reply(reply, bound);
      assert.deepEqual([...bytes.subarray(0, 3)], [0x05, reply, 0x00]);
      assert.deepEqual(parseSocks5Address(bytes, 3), {
        kind: 'ok',
        value: bound,
        consumed: bytes.length - 3,
      });
    }),
  );
});

/** SOCKS4 for an IPv4 target, SOCKS4a (DSTIP 0.0.0.1) for a name. */
function encodeSocks4Request(target: Target, userId: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head[0] = 0x04;
  head[1] = 0x01;
  head.writeUInt16BE(target.port, 2);
  const { host } = target;
  if (host.kind === 'ipv4') Buffer.from(host.ip.split('.').map(Number)).copy(head, 4);
  else head[7] = 1;
  const name = host.kind === 'domain' ? Buffer.from(`${host.name}\0`) : Buffer.alloc(0);
  return Buffer.concat([head, userId, Buffer.from([0]), name]);
}

const socks4TargetArbitrary = fc
  .tuple(
    fc
      .oneof(fc.ipV4(), fc.domain())
      .map(parseHost)
      .filter((h) => h !== undefined),
    portArbitrary,
  )
  .map(([host, port]): Target => ({ host, port }));
const userIdArbitrary = fc
  .uint8Array({ maxLength: 255 })
  .map((a) => Buffer.from(a.map((b) => b || 1)));

test('an encoded SOCKS4/4a request parses back to the same target whatever the user id', () => {
  fc.assert(
    fc.property(socks4TargetArbitrary, userIdArbitrary, (target, userId) => {
      fc.pre(
        target.host.kind !== 'ipv4' ||
          !target.host.ip.startsWith('0.0.0.') ||
          target.host.ip === '0.0.0.0',
      );
      const bytes = encodeSocks4Request(target, userId);
      assert.deepEqual(parseSocks4Request(bytes), {
        kind: 'ok',
        value: { command: 'connect', target },
        consumed: bytes.length,
      });
    }),
    { numRuns: 1000 },
  );
});

test('fixed cases at the edges of the formats', () => {
  const v4 = (hex: string) => parseSocks4Request(Buffer.from(hex.replace(/\s/g, ''), 'hex'));
  const id = (n: number) => '61'.repeat(n);
  assert.equal(v4(`04 01 0050 7f000001 ${id(255)} 00`).kind, 'ok');
  assert.equal(v4(`04 01 0050 7f000001 ${id(256)} 00`).kind, 'error');
  assert.equal(v4(`04 01 0050 7f000001 ${id(256)}`).kind, 'error');
  assert.equal(v4(`04 01 0050 7f000001 ${id(255)}`).kind, 'incomplete');
  assert.equal(v4('04 01 0050 00000001 00 00').kind, 'error', 'an empty 4a host name');
  assert.equal(v4('04 03').kind, 'error', 'SOCKS4 has no command 3');
  const v5 = (hex: string) => parseSocks5Request(Buffer.from(hex.replace(/\s/g, ''), 'hex'));
  assert.equal(v5('05 01 00 03 00 0050').kind, 'error', 'an empty name');
  assert.equal(v5('05 01 00 03 04 2e2e2e2e 0050').kind, 'error', 'a name of dots');
  assert.equal(v5('05 01 00 03 03 612062 0050').kind, 'error', 'a name with a space');
  assert.deepEqual(v5('05 01 00 03 09 3132372e302e302e31 0050'), {
    kind: 'ok',
    value: { command: 'connect', target: { host: { kind: 'ipv4', ip: '127.0.0.1' }, port: 80 } },
    consumed: 16,
  });
  assert.deepEqual(parseSocks5Greeting(Buffer.from([5, 0])), {
    kind: 'ok',
    value: [],
    consumed: 2,
  });
  assert.equal(
    encodeSocks4Reply(0x5a, { host: { kind: 'ipv6', ip: '::1' }, port: 80 }).toString('hex'),
    '005a000000000000',
  );
});

test('an IPv4-mapped IPv6 address in a SOCKS5 request becomes the IPv4 target', () => {
  const bytes = Buffer.from(
    `050100 04 ${'00'.repeat(10)}ffff 7f000001 0050`.replace(/\s/g, ''),
    'hex',
  );
  const parsed = parseSocks5Request(bytes);
  assert.deepEqual(parsed.kind === 'ok' && parsed.value.target.host, {
    kind: 'ipv4',
    ip: '127.0.0.1',
  });
});

test('a UDP ASSOCIATE naming the placeholder host "0" (PySocks) means an unspecified address', () => {
  const parsed = parseSocks5Request(Buffer.from('05030003013004d2', 'hex'));
  assert.ok(parsed.kind === 'ok', JSON.stringify(parsed));
  assert.equal(parsed.value.command, 'udp-associate');
  assert.deepEqual(parsed.value.target, { host: { kind: 'ipv4', ip: '0.0.0.0' }, port: 1234 });
  assert.equal(parsed.consumed, 8);
  // In a CONNECT the same name is what the resolver makes of it, 0.0.0.0 (inet_aton), which
  // deny_destinations' "loopback" covers.
  const connect = parseSocks5Request(Buffer.from('05010003013004d2', 'hex'));
  assert.ok(connect.kind === 'ok');
  assert.deepEqual(connect.value.target, { host: { kind: 'ipv4', ip: '0.0.0.0' }, port: 1234 });
});

import assert from 'node:assert/strict';
import { lookup } from 'node:dns';
import { test } from 'node:test';
import fc from 'fast-check';
import { maskUrl, parseInboundUrl, parseOutboundUrl } from '../../src/config/url.js';
import { formatTarget, parseHost, parseHostPort } from '../../src/target.js';

test('parseHost never throws and whatever it accepts formats back to itself', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.ipV4(), fc.ipV6(), fc.domain()), (text) => {
      const host = parseHost(text);
      if (!host) return;
      const again = parseHostPort(formatTarget({ host, port: 80 }));
      assert.deepEqual(again, { host, port: 80 });
    }),
    { numRuns: 3000 },
  );
});

test('parseHostPort accepts every IPv4, IPv6 and domain with a port, and normalises IPv6', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()),
      fc.integer({ min: 1, max: 65535 }),
      (host, port) => {
        const text = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        const target = parseHostPort(text);
        assert.ok(target, text);
        assert.equal(target.port, port);
      },
    ),
    { numRuns: 2000 },
  );
});

test('proxy URL parsers never throw, and a rejected URL never echoes its password', () => {
  fc.assert(
    fc.property(fc.string(), fc.string({ minLength: 6 }), (junk, password) => {
      fc.pre(!password.includes('@') && !password.includes('/') && !/[\s:]/.test(password));
      // A password that is also the host or port text shows up as that text, legitimately.
      fc.pre(!junk.includes(password));
      for (const text of [
        junk,
        `http://user:${password}@${junk}`,
        `socks5://u:${password}@h:${junk}`,
      ]) {
        const outbound = parseOutboundUrl(text);
        const inbound = parseInboundUrl(text);
        for (const error of [outbound.error, inbound.error]) {
          if (error !== undefined && text !== junk) assert.ok(!error.includes(password), error);
        }
      }
      assert.ok(!maskUrl(`https://user:${password}@host:1`).includes(password));
    }),
    // A seed that once broke the property (the password was also the port text), kept.
    { numRuns: 2000, examples: [['length', 'length-secret']] },
  );
});

test('known hostile spellings are refused', () => {
  for (const text of [
    '',
    '.',
    '..',
    'a..b',
    '-a.com',
    'a b.com',
    'a\u0000b',
    '1.2.3.999',
    '[1.2.3.4]',
    '[::1',
    'x'.repeat(256),
  ]) {
    assert.equal(parseHost(text), undefined, JSON.stringify(text));
  }
  assert.deepEqual(parseHost('::ffff:7f00:1'), { kind: 'ipv4', ip: '127.0.0.1' });
  assert.deepEqual(parseHost('[::FFFF:127.0.0.1]'), { kind: 'ipv4', ip: '127.0.0.1' });
  assert.deepEqual(parseHost('Example.COM.'), { kind: 'domain', name: 'example.com' });
});

/**
 * inet_aton(3) as glibc's getaddrinfo applies it to a host before any DNS, checked on this
 * machine's resolver: every spelling here connects to the address on the right.
 */
const INET_ATON: [string, string | undefined][] = [
  ['0x7f.1', '127.0.0.1'],
  ['0x7F.1', '127.0.0.1'],
  ['0x7f000001', '127.0.0.1'],
  ['127.1', '127.0.0.1'],
  ['2130706433', '127.0.0.1'],
  ['0177.0.0.1', '127.0.0.1'],
  ['0x7f.0.0.1', '127.0.0.1'],
  ['0x0000000000007f.1', '127.0.0.1'],
  ['017777777777', '127.255.255.255'],
  ['127.16777215', '127.255.255.255'],
  ['1.1.65535', '1.1.255.255'],
  ['1.0X1', '1.0.0.1'],
  ['1.2.3.0377', '1.2.3.255'],
  ['0', '0.0.0.0'],
  ['00', '0.0.0.0'],
  ['0x0', '0.0.0.0'],
  ['4294967295', '255.255.255.255'],
  ['0xffffffff', '255.255.255.255'],
  ['169.254.169.254', '169.254.169.254'],
  ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254'],
  ['0251.0376.0251.0376', '169.254.169.254'],
  ['0x7f.1.', '127.0.0.1'],
  // Not numbers: names for the resolver (or garbage), never an address.
  ['0x.1', undefined],
  ['08.1', undefined],
  ['09', undefined],
  ['0.09', undefined],
  ['0xg', undefined],
  ['1.0x', undefined],
  ['0x100.1', undefined],
  ['127.16777216', undefined],
  ['1.1.65536', undefined],
  ['4294967296', undefined],
  ['1.2.3.0400', undefined],
  ['1.2.3.4.5', undefined],
  ['1..2', undefined],
  ['.1', undefined],
  ['99999999999999999999', undefined],
];

test('every IPv4 spelling the resolver accepts is that IPv4 address', () => {
  for (const [text, ip] of INET_ATON) {
    const host = parseHost(text);
    if (ip === undefined) {
      assert.notEqual(host?.kind, 'ipv4', text);
    } else {
      assert.deepEqual(host, { kind: 'ipv4', ip }, text);
      assert.deepEqual(parseHostPort(`${text}:80`), { host: { kind: 'ipv4', ip }, port: 80 });
    }
  }
});

/** What the system resolver makes of `text` (numeric forms never leave the machine). */
function resolve4(text: string): Promise<string | undefined> {
  return new Promise((done) => {
    lookup(text, { family: 4 }, (err, address) => done(err ? undefined : address));
  });
}

/** A 32-bit address spelt as inet_aton reads it: 1 to 4 parts, each decimal, octal or hex. */
const atonSpelling = fc
  .tuple(
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.integer({ min: 1, max: 4 }),
    fc.array(fc.constantFrom('dec', 'oct', 'hex', 'HEX'), { minLength: 4, maxLength: 4 }),
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 4, maxLength: 4 }),
  )
  .map(([address, count, radixes, zeros]) => {
    const bytes = [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256);
    const values = [...bytes.slice(0, count - 1), address % 2 ** (8 * (5 - count))];
    const text = values
      .map((value, i) => {
        const pad = '0'.repeat(zeros[i] ?? 0);
        switch (radixes[i]) {
          case 'oct':
            return `0${pad}${value.toString(8)}`;
          case 'hex':
            return `0x${pad}${value.toString(16)}`;
          case 'HEX':
            return `0X${pad}${value.toString(16).toUpperCase()}`;
          default:
            return String(value);
        }
      })
      .join('.');
    return { text, ip: bytes.join('.') };
  });

test('parseHost reads every inet_aton spelling as the resolver does', async () => {
  await fc.assert(
    fc.asyncProperty(atonSpelling, async ({ text, ip }) => {
      assert.deepEqual(parseHost(text), { kind: 'ipv4', ip }, text);
      assert.equal(await resolve4(text), ip, text);
    }),
    { numRuns: 500 },
  );
});

test('whatever numeric-looking text parseHost takes for IPv4, the resolver takes for the same', async () => {
  const numeric = fc
    .array(fc.constantFrom(...Array.from('0123456789abcdefxX.')), { minLength: 1, maxLength: 14 })
    .map((chars) => chars.join(''));
  await fc.assert(
    fc.asyncProperty(numeric, async (text) => {
      const host = parseHost(text);
      // Only what parses as an address is looked up: a name would be a DNS query.
      if (host?.kind !== 'ipv4') return;
      assert.equal(await resolve4(text.replace(/\.$/, '')), host.ip, text);
    }),
    { numRuns: 2000 },
  );
});

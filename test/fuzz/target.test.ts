import assert from 'node:assert/strict';
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

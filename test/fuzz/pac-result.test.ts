import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parsePacResult, type PacEntry } from '../../src/outbound/pac/result.js';
import { formatTarget } from '../../src/target.js';

/** Entries as `SCHEME host:port` (or DIRECT), for asserts that read like the PAC answer. */
const shown = (entries: readonly PacEntry[]): string[] =>
  entries.map((e) => (e.kind === 'direct' ? 'DIRECT' : `${e.scheme} ${formatTarget(e.server)}`));

test('PROXY a:1; SOCKS5 b:2; DIRECT is an http proxy, a socks5h proxy and direct, in that order', () => {
  const result = parsePacResult('PROXY a:1; SOCKS5 b:2; DIRECT');
  assert.deepEqual(shown(result.entries), ['http a:1', 'socks5h b:2', 'DIRECT']);
  assert.deepEqual(result.ignored, []);
});

test('every keyword: HTTP is PROXY, HTTPS is TLS to the proxy, SOCKS and SOCKS4 are socks4', () => {
  const result = parsePacResult(
    'HTTP h:8080;HTTPS s:8443;SOCKS k:1081;SOCKS4 f:1082;SOCKS5 [::1]:1083;PROXY 10.0.0.1:3128',
  );
  assert.deepEqual(shown(result.entries), [
    'http h:8080',
    'https s:8443',
    'socks4 k:1081',
    'socks4 f:1082',
    'socks5h [::1]:1083',
    'http 10.0.0.1:3128',
  ]);
  assert.deepEqual(
    result.entries.map((e) => e.text),
    [
      'PROXY h:8080',
      'HTTPS s:8443',
      'SOCKS k:1081',
      'SOCKS f:1082',
      'SOCKS5 [::1]:1083',
      'PROXY 10.0.0.1:3128',
    ],
  );
});

test('keywords in lower case, extra spaces, tabs and empty entries are accepted', () => {
  const result = parsePacResult('  proxy   Proxy.Corp.Example:3128 ;; \tsocks5\tb:2\t;  direct  ;');
  assert.deepEqual(shown(result.entries), [
    'http proxy.corp.example:3128',
    'socks5h b:2',
    'DIRECT',
  ]);
  assert.deepEqual(result.ignored, []);
});

test('an entry without a port takes the port a browser assumes', () => {
  assert.deepEqual(shown(parsePacResult('PROXY p; HTTPS s; SOCKS k; SOCKS5 f').entries), [
    'http p:80',
    'https s:443',
    'socks4 k:1080',
    'socks5h f:1080',
  ]);
});

test('junk entries are ignored and reported; the usable ones stay in order', () => {
  const result = parsePacResult(
    'FTP a:1; PROXY; PROXY a b:2; DIRECT x:1; PROXY bad host:1; PROXY a:99999; PROXY ok:3',
  );
  assert.deepEqual(shown(result.entries), ['http ok:3']);
  assert.deepEqual(result.ignored, [
    'FTP a:1',
    'PROXY',
    'PROXY a b:2',
    'DIRECT x:1',
    'PROXY bad host:1',
    'PROXY a:99999',
  ]);
});

test('an empty answer has no entries and nothing ignored', () => {
  for (const text of ['', '   ', ';', ' ; ;\t']) {
    assert.deepEqual(parsePacResult(text), { entries: [], ignored: [] }, JSON.stringify(text));
  }
});

test('a proxy named twice is tried once, at its first place', () => {
  const result = parsePacResult('PROXY a:1; DIRECT; proxy A:1; HTTP a:1; DIRECT');
  assert.deepEqual(shown(result.entries), ['http a:1', 'DIRECT']);
});

const keyword = fc.constantFrom(
  'PROXY',
  'HTTP',
  'HTTPS',
  'SOCKS',
  'SOCKS4',
  'SOCKS5',
  'proxy',
  'Socks5',
  'https',
);
const space = fc.constantFrom(' ', '  ', '\t', ' \t ');
const server = fc.tuple(
  fc.oneof(
    fc.domain(),
    fc.ipV4(),
    fc.ipV6().map((ip) => `[${ip}]`),
  ),
  fc.integer({ min: 1, max: 65535 }),
);
const entry = fc.oneof(
  fc.constant({ text: 'DIRECT', direct: true }),
  fc
    .tuple(keyword, space, server)
    .map(([k, s, [host, port]]) => ({ text: `${k}${s}${host}:${port}`, direct: false })),
);

test('generated answers: each entry is read back, in order, none ignored', () => {
  fc.assert(
    fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), space, (entries, gap) => {
      const result = parsePacResult(entries.map((e) => e.text).join(`;${gap}`));
      assert.deepEqual(result.ignored, []);
      // Repeats are dropped, so the result is the distinct entries in order of first appearance.
      const texts = result.entries.map((e) => e.text);
      assert.equal(new Set(texts).size, texts.length);
      assert.ok(result.entries.length >= 1 && result.entries.length <= entries.length);
      assert.equal(
        result.entries.some((e) => e.kind === 'direct'),
        entries.some((e) => e.direct),
      );
    }),
    { numRuns: 2000 },
  );
});

test('any text: the parser never throws, and every entry it returns reads back as itself', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string({ unit: 'binary' }),
        fc.array(entry).map((es) => es.map((e) => e.text).join(';')),
      ),
      (text) => {
        const result = parsePacResult(text);
        for (const e of result.entries) {
          assert.deepEqual(parsePacResult(e.text).entries, [e]);
        }
      },
    ),
    { numRuns: 3000 },
  );
});

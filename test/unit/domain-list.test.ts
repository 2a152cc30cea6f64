import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DomainListError,
  parseDomainList,
  parseDomainListInSlices,
} from '../../src/route/domain-list.js';
import { domainTableOf, EXACT, SUFFIX } from '../../src/route/domain-table.js';

/** Which of `names` the list matches. */
function matched(list: string, names: readonly string[]): string[] {
  const table = parseDomainList(list);
  return names.filter((name) => table.matches(name));
}

test('a bare name, ".name", "*.name" and "domain:name" match the name and its subdomains', () => {
  for (const line of ['example.com', '.example.com', '*.example.com', 'domain:example.com']) {
    assert.deepEqual(
      matched(`${line}\n`, ['example.com', 'a.example.com', 'a.b.example.com']),
      ['example.com', 'a.example.com', 'a.b.example.com'],
      line,
    );
    assert.deepEqual(matched(`${line}\n`, ['badexample.com', 'com', 'example.co']), [], line);
  }
});

test('"full:name" matches that name only', () => {
  const names = ['www.example.com', 'a.www.example.com', 'example.com', 'xwww.example.com'];
  assert.deepEqual(matched('full:www.example.com\n', names), ['www.example.com']);
});

test('a name listed both exact and as a suffix matches as a suffix', () => {
  for (const list of ['full:a.example\na.example\n', 'a.example\nfull:a.example\n']) {
    const table = parseDomainList(list);
    assert.equal(table.size, 1, list);
    assert.equal(table.matches('a.example'), true, list);
    assert.equal(table.matches('x.a.example'), true, list);
  }
});

test('names are case-insensitive and may end with one dot', () => {
  const list = 'Ads.EXAMPLE.com.\nfull:WWW.Example.ORG.\n';
  assert.deepEqual(matched(list, ['ads.example.com', 'x.ads.example.com', 'www.example.org']), [
    'ads.example.com',
    'x.ads.example.com',
    'www.example.org',
  ]);
});

test('comments, blank lines, CRLF, tabs and a byte order mark are ignored', () => {
  const list =
    '\uFEFF# header\r\n\r\n\tads.example \t# trailing comment\r\n   \r\nfull:x.example#tight\r\n';
  const table = parseDomainList(list);
  assert.equal(table.size, 2);
  assert.equal(table.matches('a.ads.example'), true);
  assert.equal(table.matches('x.example'), true);
  assert.equal(table.matches('a.x.example'), false);
});

test('a list without a final newline keeps its last line', () => {
  assert.deepEqual(matched('a.example\nb.example', ['b.example']), ['b.example']);
});

test('an empty list, or one of comments only, matches nothing', () => {
  for (const list of ['', '\n\n', '# nothing\n  # here\n']) {
    const table = parseDomainList(list);
    assert.equal(table.size, 0);
    assert.equal(table.matches('example.com'), false);
  }
});

test('underscores and inner hyphens are names; a name may be a single label', () => {
  assert.deepEqual(
    matched('_dmarc.example\nmy-host.example\nlocalhost\n', [
      'x._dmarc.example',
      'my-host.example',
      'localhost',
    ]),
    ['x._dmarc.example', 'my-host.example', 'localhost'],
  );
});

test('a bad line refuses the list with its line number and how many more there are', () => {
  const bad = (list: string): string => {
    try {
      parseDomainList(list);
    } catch (err) {
      assert.ok(err instanceof DomainListError);
      return err.message;
    }
    assert.fail(`accepted ${JSON.stringify(list)}`);
  };
  assert.equal(bad('ok.example\n\nbad..example\n'), 'line 3: bad domain "bad..example"');
  assert.equal(
    bad('# x\n-lead.example\nok.example\ntrail-.example\n0.0.0.0 hosts.example\n'),
    'line 2: bad domain "-lead.example" (and 2 more bad lines)',
  );
  assert.equal(
    bad('a b.example\nx-.example\n'),
    'line 1: bad domain "a b.example" (and 1 more bad line)',
  );
  assert.equal(
    bad('keyword:ads\n'),
    'line 1: unknown entry type "keyword:" in "keyword:ads" (a list holds names, full: and domain: entries)',
  );
  for (const line of [
    '.',
    '*.',
    '**.example',
    '*example.com',
    'full:',
    'full:*.example.com',
    'full:.example.com',
    'domain:.example.com',
    'example.com..',
    'ex ample.com',
    'bücher.example',
    'http://example.com/',
    'a'.repeat(256),
  ]) {
    assert.match(bad(`${line}\n`), /^line 1: /, line);
  }
});

test('IP addresses in any spelling are not names', () => {
  for (const line of ['10.0.0.1', '127.1', '0x7f.1', '2130706433', '1.2.3.999', '[::1]', '::1']) {
    assert.throws(() => parseDomainList(`${line}\n`), DomainListError, line);
  }
  assert.equal(parseDomainList('1.2.example\nexample.1a\n').size, 2);
});

test('a list parsed in slices is the same list, and the event loop runs between slices', async () => {
  const lines = Array.from({ length: 50_000 }, (_, i) =>
    i % 3 === 0 ? `full:host${i}.example` : `host${i}.example`,
  );
  const text = lines.join('\n');
  let turns = 0;
  const ticker = setInterval(() => turns++, 0);
  try {
    const sliced = await parseDomainListInSlices(text, 0);
    assert.ok(turns > 0, 'no timer ran while the list was parsed');
    const whole = parseDomainList(text);
    assert.equal(sliced.size, whole.size);
    for (const name of ['host0.example', 'a.host0.example', 'host1.example', 'a.host1.example']) {
      assert.equal(sliced.matches(name), whole.matches(name), name);
    }
    assert.equal(sliced.matches('a.host3.example'), false);
    assert.equal(sliced.matches('a.host4.example'), true);
  } finally {
    clearInterval(ticker);
  }
});

test('a list parsed in slices rejects a bad line as the whole parse does', async () => {
  await assert.rejects(
    parseDomainListInSlices('a.example\nb..example\n', 0),
    new DomainListError('line 2: bad domain "b..example"'),
  );
});

test('a table of configured names matches as its kind says', () => {
  const suffixes = domainTableOf(['example.com', 'corp.example'], SUFFIX);
  assert.equal(suffixes.matches('a.example.com'), true);
  assert.equal(suffixes.matches('corp.example'), true);
  assert.equal(suffixes.matches('example'), false);
  const exact = domainTableOf(['example.com'], EXACT);
  assert.equal(exact.matches('example.com'), true);
  assert.equal(exact.matches('a.example.com'), false);
  assert.equal(domainTableOf([], SUFFIX).matches('example.com'), false);
});

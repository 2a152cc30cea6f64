import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4 } from 'node:net';
import { createLogger } from '../../src/log.js';
import { compilePac, RUN_LIMIT_MS, type PacScriptOptions } from '../../src/outbound/pac/sandbox.js';

const log = createLogger('silent');

/** A script whose FindProxyForURL returns `body`'s value. */
async function answerOf(
  body: string,
  host = 'www.example.com',
  options: Partial<PacScriptOptions> = {},
): Promise<string> {
  const script = await compilePac(`function FindProxyForURL(url, host) { ${body} }`, {
    log,
    ...options,
  });
  try {
    return await script.findProxy(`https://${host}/`, host);
  } finally {
    script.close();
  }
}

test('the script sees nothing of Node: no require, process, fetch, timers or console', async () => {
  const answer = await answerOf(
    'return [typeof require, typeof process, typeof fetch, typeof setTimeout, typeof console, typeof WebAssembly].join();',
  );
  assert.equal(answer, 'undefined,undefined,undefined,undefined,undefined,undefined');
});

test('the PAC functions are there and behave as in browsers', async () => {
  const answer = await answerOf(
    `return [
      shExpMatch(host, '*.example.com'), shExpMatch(host, 'www.example.co?'),
      shExpMatch('a.b', 'a?b'), shExpMatch('axb', 'a.b'), shExpMatch('(x)', '(*)'),
      dnsDomainIs(host, '.example.com'), dnsDomainLevels(host), isPlainHostName(host),
      localHostOrDomainIs('www', 'www.example.com'), isInNet('10.1.2.3', '10.0.0.0', '255.0.0.0'),
      isInNet('11.1.2.3', '10.0.0.0', '255.0.0.0'), convert_addr('1.2.3.4'),
      typeof weekdayRange('MON', 'SUN'), typeof dateRange(1, 31), typeof timeRange(0, 23),
    ].join();`,
  );
  assert.equal(
    answer,
    'true,true,true,false,true,true,2,false,true,true,false,16909060,boolean,boolean,boolean',
  );
});

test('dnsResolve, isResolvable and isInNet get names resolved outside the sandbox', async () => {
  const asked: string[] = [];
  const resolve = (name: string): Promise<string | undefined> => {
    asked.push(name);
    return Promise.resolve(name === 'intranet.corp' ? '10.9.8.7' : undefined);
  };
  const answer = await answerOf(
    `return [dnsResolve(host), isResolvable('nowhere.corp'), isInNet(host, '10.0.0.0', '255.0.0.0'),
      dnsResolve('not a name'), dnsResolve('192.0.2.1')].join();`,
    'intranet.corp',
    { resolve },
  );
  assert.equal(answer, '10.9.8.7,false,true,,192.0.2.1');
  // Each name once, however often the script asks; junk and IP literals never.
  assert.deepEqual(asked.sort(), ['intranet.corp', 'nowhere.corp']);
});

test('myIpAddress is an IPv4 address of this host', async () => {
  assert.ok(isIPv4(await answerOf('return myIpAddress();')));
});

test(`a script that loops for ever is stopped after ${RUN_LIMIT_MS} ms, and the sandbox still answers`, async () => {
  const script = await compilePac(
    'function FindProxyForURL(url, host) { if (host === "loop") for (;;) {} return "DIRECT"; }',
    { log },
  );
  try {
    const started = Date.now();
    await assert.rejects(script.findProxy('http://loop/', 'loop'), {
      name: 'PacError',
      message: `FindProxyForURL ran longer than ${RUN_LIMIT_MS} ms and was stopped`,
    });
    assert.ok(Date.now() - started < RUN_LIMIT_MS * 4);
    assert.equal(await script.findProxy('http://ok/', 'ok'), 'DIRECT');
  } finally {
    script.close();
  }
});

test('a pattern that backtracks for ever is stopped too: shExpMatch runs in the sandbox', async () => {
  await assert.rejects(
    answerOf(
      `return shExpMatch('${'a'.repeat(40)}b', '${'*a'.repeat(20)}c') ? 'DIRECT' : 'DIRECT';`,
    ),
    { message: /ran longer than/ },
  );
});

test('a script that allocates without end is stopped at the heap limit', async () => {
  await assert.rejects(
    answerOf('var kept = []; for (;;) kept.push("x".repeat(65536) + kept.length);'),
    { name: 'PacError', message: /out of memory|ran longer than/ },
  );
});

test('a catch in the script cannot hold the run limit off', async () => {
  await assert.rejects(answerOf('for (;;) { try { for (;;) {} } catch (e) {} }'), {
    message: /ran longer than/,
  });
});

test('an answer that is not a string is an error', async () => {
  await assert.rejects(answerOf('return 42;'), {
    message: 'FindProxyForURL returned number, not a string',
  });
});

test('a file that does not compile, throws, loops or defines no FindProxyForURL is refused', async () => {
  const cases: [string, RegExp][] = [
    ['function FindProxyForURL(url, host) { return ', /^the PAC file failed: SyntaxError/],
    ['throw new Error("no")', /^the PAC file failed: Error: no$/],
    ['for (;;) {}', /^the PAC file ran longer than/],
    ['var FindProxyForURL = 1;', /^the PAC file defines no function FindProxyForURL$/],
  ];
  for (const [text, expected] of cases) {
    await assert.rejects(compilePac(text, { log }), { name: 'PacError', message: expected }, text);
  }
});

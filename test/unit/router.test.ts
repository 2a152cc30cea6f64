import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { parseHost } from '../../src/target.js';
import { createRouter } from '../../src/route/router.js';
import type { Resolver, RouteInput } from '../../src/route/types.js';

const listDir = mkdtempSync(join(tmpdir(), 'junction-router-'));
writeFileSync(
  join(listDir, 'blocked.txt'),
  '# ad servers\nads.example\n*.tracker.example\n.metrics.example  # leading dot\n\n',
);

/** Rules go through the real schema, exactly as they would from a config file. */
function rulesFrom(rules: unknown[]) {
  return configSchema(listDir).parse({
    inbounds: [
      { name: 'lan', type: 'mixed', listen: '127.0.0.1:1080' },
      { name: 'wan', type: 'socks', listen: '127.0.0.1:1081' },
    ],
    outbounds: [
      { name: 'corp', url: 'http://proxy.corp.example:3128' },
      { name: 'tor', url: 'socks5h://127.0.0.1:9050' },
    ],
    rules,
  }).rules;
}

function session(host: string, port = 443, extra: Partial<RouteInput> = {}): RouteInput {
  const parsed = parseHost(host);
  assert.ok(parsed, `test host ${host} must parse`);
  return {
    inbound: 'lan',
    source: { ip: '127.0.0.1', port: 50000 },
    user: undefined,
    target: { host: parsed, port },
    ...extra,
  };
}

/** The outbound the given rules pick for a session; anything unmatched lands on `direct`. */
async function route(rules: unknown[], input: RouteInput, resolver?: Resolver): Promise<string> {
  return (await createRouter(rulesFrom(rules), resolver).decide(input)).outbound;
}

/** A resolver that answers from a table, counts its calls, and fails for unknown names. */
function fakeResolver(answers: Record<string, string[]>) {
  const calls: string[] = [];
  const resolver: Resolver = (name) => {
    calls.push(name);
    const addresses = answers[name];
    return addresses ? Promise.resolve(addresses) : Promise.reject(new Error(`ENOTFOUND ${name}`));
  };
  return { resolver, calls };
}

test('no rules: every target goes direct and no rule is named', async () => {
  const decision = await createRouter([]).decide(session('example.com'));
  assert.deepEqual(decision, { rule: undefined, outbound: 'direct' });
});

test('no rule matches: the default is direct', async () => {
  const rules = [{ domain: ['a.example'], outbound: 'corp' }];
  assert.equal(await route(rules, session('b.example')), 'direct');
});

test('domain matches the name itself only, not its subdomains', async () => {
  const rules = [{ domain: ['api.example.com'], outbound: 'tor' }];
  assert.equal(await route(rules, session('api.example.com')), 'tor');
  assert.equal(await route(rules, session('x.api.example.com')), 'direct');
  assert.equal(await route(rules, session('example.com')), 'direct');
});

test('domain matching is case-insensitive and ignores one trailing dot', async () => {
  const rules = [
    { domain: ['API.Example.com'], domain_suffix: ['Corp.Example.'], outbound: 'tor' },
  ];
  assert.equal(await route(rules, session('api.EXAMPLE.com.')), 'tor');
  assert.equal(await route(rules, session('WWW.CORP.EXAMPLE.')), 'tor');
  const handBuilt: RouteInput = {
    ...session('x.example'),
    target: { host: { kind: 'domain', name: 'Host.Corp.Example.' }, port: 443 },
  };
  assert.equal(await route(rules, handBuilt), 'tor');
});

test('domain_suffix example.com matches a.example.com but not badexample.com', async () => {
  const rules = [{ domain_suffix: ['example.com'], outbound: 'corp' }];
  assert.equal(await route(rules, session('example.com')), 'corp');
  assert.equal(await route(rules, session('a.example.com')), 'corp');
  assert.equal(await route(rules, session('a.b.c.example.com')), 'corp');
  assert.equal(await route(rules, session('badexample.com')), 'direct');
  assert.equal(await route(rules, session('example.com.evil')), 'direct');
  assert.equal(await route(rules, session('com')), 'direct');
});

test('domain_suffix with a 200k-entry list matches each entry and its subdomains only', async () => {
  // How fast such lists are is measured by npm run bench:rules, not asserted here.
  const suffixes = Array.from({ length: 200_000 }, (_, i) => `host${i}.example`);
  const router = createRouter(rulesFrom([{ domain_suffix: suffixes, outbound: 'reject' }]));
  for (let i = 0; i < 200_000; i += 997) {
    assert.equal((await router.decide(session(`a.b.host${i}.example`))).outbound, 'reject');
    assert.equal((await router.decide(session(`host${i}.example`))).outbound, 'reject');
    assert.equal((await router.decide(session(`xhost${i}.example`))).outbound, 'direct');
  }
  assert.equal((await router.decide(session('a.b.host200000.example'))).outbound, 'direct');
  assert.equal((await router.decide(session('example'))).outbound, 'direct');
});

test('domain_keyword matches a substring anywhere in the name', async () => {
  const rules = [{ domain_keyword: ['DoubleClick'], outbound: 'reject' }];
  assert.equal(await route(rules, session('doubleclick.net')), 'reject');
  assert.equal(await route(rules, session('stats.g.doubleclick.net')), 'reject');
  assert.equal(await route(rules, session('ad.mydoubleclicks.example')), 'reject');
  assert.equal(await route(rules, session('double.click.example')), 'direct');
});

test('domain_regex is case-insensitive and tests the whole normalised name', async () => {
  const rules = [
    { domain_regex: ['^cdn\\d+\\.example\\.net$'], outbound: 'direct' },
    { outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('cdn12.example.net')), 'direct');
  assert.equal(await route(rules, session('CDN3.Example.NET.')), 'direct');
  assert.equal(await route(rules, session('cdn.example.net')), 'corp');
  assert.equal(await route(rules, session('xcdn1.example.net.evil')), 'corp');
});

test('domain_list entries match as suffixes, whether written bare, "*." or "."', async () => {
  const rules = [{ domain_list: 'blocked.txt', outbound: 'reject' }];
  for (const host of ['ads.example', 'x.ads.example', 'tracker.example', 'a.tracker.example']) {
    assert.equal(await route(rules, session(host)), 'reject', host);
  }
  assert.equal(await route(rules, session('eu.metrics.example')), 'reject');
  assert.equal(await route(rules, session('badads.example')), 'direct');
  assert.equal(await route(rules, session('example')), 'direct');
});

test('domain_list "full:" entries match the name only, bare and "domain:" ones its subdomains too', async () => {
  writeFileSync(
    join(listDir, 'mixed.txt'),
    'full:www.shop.example\ndomain:cdn.example\nFULL.Example  # a suffix, in capitals\nfull:Api.Full.Example.\n',
  );
  const rules = [{ domain_list: 'mixed.txt', outbound: 'reject' }];
  assert.equal(await route(rules, session('www.shop.example')), 'reject');
  assert.equal(await route(rules, session('WWW.Shop.Example.')), 'reject');
  assert.equal(await route(rules, session('a.www.shop.example')), 'direct');
  assert.equal(await route(rules, session('shop.example')), 'direct');
  assert.equal(await route(rules, session('cdn.example')), 'reject');
  assert.equal(await route(rules, session('img.cdn.example')), 'reject');
  assert.equal(await route(rules, session('x.full.example')), 'reject');
  assert.equal(await route(rules, session('api.full.example')), 'reject');
});

test('domain keys never match an IP target', async () => {
  const rules = [
    {
      domain_keyword: ['1', ':'],
      domain_regex: ['.*'],
      domain_suffix: ['arpa'],
      outbound: 'reject',
    },
  ];
  assert.equal(await route(rules, session('10.1.2.3')), 'direct');
  assert.equal(await route(rules, session('[2001:db8::1]')), 'direct');
  assert.equal(await route(rules, session('a1.example')), 'reject');
});

test('ip_cidr matches IPv4 and IPv6 literals inside its subnets', async () => {
  const rules = [
    { ip_cidr: ['10.0.0.0/8', '192.168.0.0/16', 'fd00::/8', '203.0.113.7'], outbound: 'direct' },
    { outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('10.255.0.1')), 'direct');
  assert.equal(await route(rules, session('192.168.1.1')), 'direct');
  assert.equal(await route(rules, session('203.0.113.7')), 'direct');
  assert.equal(await route(rules, session('203.0.113.8')), 'corp');
  assert.equal(await route(rules, session('11.0.0.1')), 'corp');
  assert.equal(await route(rules, session('[fd12:3456::1]')), 'direct');
  assert.equal(await route(rules, session('[FD00::ABCD]')), 'direct');
  assert.equal(await route(rules, session('[fe80::1]')), 'corp');
});

test('ip_cidr matches an IPv4-mapped IPv6 target against IPv4 subnets', async () => {
  const rules = [{ ip_cidr: ['10.0.0.0/8'], outbound: 'direct' }, { outbound: 'corp' }];
  assert.equal(await route(rules, session('[::ffff:10.1.2.3]')), 'direct');
  assert.equal(await route(rules, session('::ffff:a01:203')), 'direct');
  assert.equal(await route(rules, session('[::ffff:11.1.2.3]')), 'corp');
});

test('ip_cidr never matches a domain target without resolve, and no DNS is asked', async () => {
  const { resolver, calls } = fakeResolver({ 'intranet.example': ['10.0.0.5'] });
  const rules = [{ ip_cidr: ['10.0.0.0/8'], outbound: 'direct' }, { outbound: 'corp' }];
  assert.equal(await route(rules, session('intranet.example'), resolver), 'corp');
  assert.deepEqual(calls, []);
});

test('port matches single ports and inclusive ranges', async () => {
  const rules = [{ port: [443, '8000-8999'], outbound: 'tor' }];
  for (const port of [443, 8000, 8500, 8999]) {
    assert.equal(await route(rules, session('example.com', port)), 'tor', String(port));
  }
  for (const port of [80, 442, 444, 7999, 9000]) {
    assert.equal(await route(rules, session('example.com', port)), 'direct', String(port));
  }
  assert.equal(await route([{ port: 22, outbound: 'tor' }], session('10.0.0.1', 22)), 'tor');
});

test('source_cidr matches the client address, including v4-mapped sockets', async () => {
  const rules = [{ source_cidr: ['10.1.0.0/16'], outbound: 'corp' }];
  const from = (ip: string) => session('example.com', 443, { source: { ip, port: 40000 } });
  assert.equal(await route(rules, from('10.1.2.3')), 'corp');
  assert.equal(await route(rules, from('::ffff:10.1.2.3')), 'corp');
  assert.equal(await route(rules, from('10.2.0.1')), 'direct');
  assert.equal(await route(rules, from('::1')), 'direct');
});

test('inbound matches the name of the inbound the session arrived on', async () => {
  const rules = [{ inbound: ['lan'], outbound: 'corp' }];
  assert.equal(await route(rules, session('example.com', 443, { inbound: 'lan' })), 'corp');
  assert.equal(await route(rules, session('example.com', 443, { inbound: 'wan' })), 'direct');
});

test('user matches only an authenticated user with a listed name', async () => {
  const rules = [{ user: ['bob'], outbound: 'tor' }];
  assert.equal(await route(rules, session('example.com', 443, { user: 'bob' })), 'tor');
  assert.equal(await route(rules, session('example.com', 443, { user: 'alice' })), 'direct');
  assert.equal(await route(rules, session('example.com', 443, { user: 'Bob' })), 'direct');
  assert.equal(await route(rules, session('example.com', 443, { user: undefined })), 'direct');
});

test('destination keys are one group: (a.com or 10/8) and 443', async () => {
  const rules = [
    { domain_suffix: ['a.com'], ip_cidr: ['10.0.0.0/8'], port: [443], outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('a.com', 443)), 'corp');
  assert.equal(await route(rules, session('x.a.com', 443)), 'corp');
  assert.equal(await route(rules, session('10.9.8.7', 443)), 'corp');
  assert.equal(await route(rules, session('a.com', 80)), 'direct');
  assert.equal(await route(rules, session('10.9.8.7', 80)), 'direct');
  assert.equal(await route(rules, session('b.com', 443)), 'direct');
  assert.equal(await route(rules, session('11.0.0.1', 443)), 'direct');
});

test('every non-destination key present must match as well', async () => {
  const rules = [
    {
      inbound: ['lan'],
      source_cidr: ['10.1.0.0/16'],
      user: ['bob'],
      port: [443],
      outbound: 'corp',
    },
  ];
  const all = { inbound: 'lan', source: { ip: '10.1.0.9', port: 1 }, user: 'bob' };
  assert.equal(await route(rules, session('example.com', 443, all)), 'corp');
  assert.equal(
    await route(rules, session('example.com', 443, { ...all, inbound: 'wan' })),
    'direct',
  );
  assert.equal(
    await route(
      rules,
      session('example.com', 443, { ...all, source: { ip: '10.2.0.9', port: 1 } }),
    ),
    'direct',
  );
  assert.equal(
    await route(rules, session('example.com', 443, { ...all, user: 'alice' })),
    'direct',
  );
  assert.equal(await route(rules, session('example.com', 80, all)), 'direct');
});

test('a key with an empty list is a configuration error, not a rule that silently never fires', () => {
  assert.throws(
    () => rulesFrom([{ domain: [], outbound: 'reject' }]),
    /an empty list would never match/,
  );
  assert.throws(
    () => rulesFrom([{ port: [], outbound: 'reject' }]),
    /an empty list would never match/,
  );
});

test('first match wins, and the decision names the rule by its index', async () => {
  const router = createRouter(
    rulesFrom([
      { domain_suffix: ['corp.example'], outbound: 'direct' },
      { domain: ['www.corp.example'], outbound: 'reject' },
      { domain_keyword: ['corp'], outbound: 'tor' },
      { outbound: 'corp' },
    ]),
  );
  const first = await router.decide(session('www.corp.example'));
  assert.equal(first.outbound, 'direct');
  assert.equal(first.rule?.index, 0);
  const third = await router.decide(session('corporate.example'));
  assert.equal(third.outbound, 'tor');
  assert.equal(third.rule?.index, 2);
  const last = await router.decide(session('[2001:db8::1]', 22));
  assert.equal(last.outbound, 'corp');
  assert.equal(last.rule?.index, 3);
  assert.equal(last.rule, router.rules[3]);
});

test('resolve: true tests ip_cidr against the resolved addresses of a domain target', async () => {
  const { resolver, calls } = fakeResolver({
    'git.corp': ['192.0.2.1', '10.3.2.1'],
    'v6.corp': ['fd00::5'],
  });
  const rules = [
    { ip_cidr: ['10.0.0.0/8', 'fd00::/8'], resolve: true, outbound: 'direct' },
    { outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('git.corp'), resolver), 'direct');
  assert.equal(await route(rules, session('v6.corp'), resolver), 'direct');
  assert.deepEqual(calls, ['git.corp', 'v6.corp']);
});

test('resolve: true resolves a v4-mapped answer into IPv4 subnets', async () => {
  const { resolver } = fakeResolver({ 'mapped.corp': ['::ffff:10.0.0.1'] });
  const rules = [
    { ip_cidr: ['10.0.0.0/8'], resolve: true, outbound: 'direct' },
    { outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('mapped.corp'), resolver), 'direct');
});

test('resolve: true looks up at most once per decision, with the name and signal', async () => {
  const seen: { name: string; signal: AbortSignal | undefined }[] = [];
  const resolver: Resolver = (name, signal) => {
    seen.push({ name, signal });
    return Promise.resolve(['172.16.0.1']);
  };
  const router = createRouter(
    rulesFrom([
      { ip_cidr: ['10.0.0.0/8'], resolve: true, outbound: 'tor' },
      { ip_cidr: ['192.168.0.0/16'], resolve: true, outbound: 'reject' },
      { ip_cidr: ['172.16.0.0/12'], resolve: true, outbound: 'corp' },
    ]),
    resolver,
  );
  const controller = new AbortController();
  const decision = await router.decide(session('db.corp'), controller);
  assert.equal(decision.outbound, 'corp');
  assert.deepEqual(seen, [{ name: 'db.corp', signal: controller.signal }]);
  await router.decide(session('db.corp'));
  assert.equal(seen.length, 2, 'the cache lives for one decision only');
});

test('resolve: true asks DNS only once the rule is reached and its other keys match', async () => {
  const { resolver, calls } = fakeResolver({ 'app.example': ['10.0.0.1'] });
  const resolving = {
    ip_cidr: ['10.0.0.0/8'],
    resolve: true,
    port: [443],
    user: ['bob'],
    outbound: 'direct',
  };
  const bob = { user: 'bob' };
  // An earlier rule wins first.
  assert.equal(
    await route(
      [{ domain: ['app.example'], outbound: 'tor' }, resolving],
      session('app.example', 443, bob),
      resolver,
    ),
    'tor',
  );
  // The port or the user rule it out without asking DNS.
  assert.equal(await route([resolving], session('app.example', 80, bob), resolver), 'direct');
  assert.equal(await route([resolving], session('app.example', 443), resolver), 'direct');
  // An IP target needs no lookup.
  assert.equal(await route([resolving], session('10.0.0.1', 443, bob), resolver), 'direct');
  // A domain key of the same rule already matches.
  const withDomain = { ...resolving, domain_suffix: ['example'], outbound: 'corp' };
  assert.equal(await route([withDomain], session('app.example', 443, bob), resolver), 'corp');
  assert.deepEqual(calls, []);
  assert.equal(await route([resolving], session('app.example', 443, bob), resolver), 'direct');
  assert.deepEqual(calls, ['app.example']);
});

test('a DNS failure under resolve: true is no ip_cidr match, and routing goes on', async () => {
  const { resolver, calls } = fakeResolver({});
  const rules = [
    { ip_cidr: ['10.0.0.0/8'], resolve: true, outbound: 'direct' },
    { ip_cidr: ['0.0.0.0/0', '::/0'], resolve: true, outbound: 'reject' },
    { outbound: 'corp' },
  ];
  assert.equal(await route(rules, session('nxdomain.example'), resolver), 'corp');
  assert.deepEqual(calls, ['nxdomain.example'], 'a failure is cached for the decision too');
});

test('an aborted decision rejects instead of routing on without the answer', async () => {
  const controller = new AbortController();
  const resolver: Resolver = (_name, signal) =>
    new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => {
        reject(new Error('lookup cancelled'));
      });
    });
  const router = createRouter(
    rulesFrom([{ ip_cidr: ['10.0.0.0/8'], resolve: true, outbound: 'direct' }]),
    resolver,
  );
  const pending = router.decide(session('slow.example'), controller);
  controller.abort(new Error('session closed'));
  await assert.rejects(pending, /session closed/);
});

test('the default resolver is the system one: localhost resolves to loopback', async () => {
  const router = createRouter(
    rulesFrom([{ ip_cidr: ['127.0.0.0/8', '::1/128'], resolve: true, outbound: 'reject' }]),
  );
  assert.equal((await router.decide(session('localhost'))).outbound, 'reject');
});

test('rule text is rebuilt from the config in compact flow form, keys in config order', () => {
  const router = createRouter(
    rulesFrom([
      { domain_suffix: ['corp.example', 'intranet'], outbound: 'direct' },
      { ip_cidr: ['10.0.0.0/8', '192.168.0.0/16', 'fd00::/8'], outbound: 'direct' },
      { domain_keyword: ['doubleclick'], outbound: 'reject' },
      { domain: ['api.example.com'], port: [443, '8000-8999'], outbound: 'tor' },
      { domain_regex: ['^cdn\\d+\\.example\\.net$'], outbound: 'direct' },
      { user: ['bob'], outbound: 'tor' },
      { inbound: ['lan'], source_cidr: ['10.1.0.0/16'], outbound: 'corp' },
      { domain_list: 'blocked.txt', outbound: 'reject' },
      { ip_cidr: ['10.0.0.0/8'], resolve: true, outbound: 'direct' },
      { user: ['jo smith', 'a,b'], domain_regex: ['^a{2}$'], outbound: 'corp' },
      { outbound: 'corp' },
    ]),
  );
  assert.deepEqual(
    router.rules.map((rule) => rule.text),
    [
      '{ domain_suffix: [corp.example, intranet], outbound: direct }',
      '{ ip_cidr: [10.0.0.0/8, 192.168.0.0/16, fd00::/8], outbound: direct }',
      '{ domain_keyword: [doubleclick], outbound: reject }',
      '{ domain: [api.example.com], port: [443, 8000-8999], outbound: tor }',
      '{ domain_regex: [^cdn\\d+\\.example\\.net$], outbound: direct }',
      '{ user: [bob], outbound: tor }',
      '{ source_cidr: [10.1.0.0/16], inbound: [lan], outbound: corp }',
      '{ domain_list: blocked.txt, outbound: reject }',
      '{ ip_cidr: [10.0.0.0/8], resolve: true, outbound: direct }',
      '{ domain_regex: ["^a{2}$"], user: ["jo smith", "a,b"], outbound: corp }',
      '{ outbound: corp }',
    ],
  );
  assert.deepEqual(
    router.rules.map((rule) => [rule.index, rule.outbound, rule.resolve]),
    [
      [0, 'direct', false],
      [1, 'direct', false],
      [2, 'reject', false],
      [3, 'tor', false],
      [4, 'direct', false],
      [5, 'tor', false],
      [6, 'corp', false],
      [7, 'reject', false],
      [8, 'direct', true],
      [9, 'corp', false],
      [10, 'corp', false],
    ],
  );
});

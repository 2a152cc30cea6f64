import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';

const dir = mkdtempSync(join(tmpdir(), 'junction-config-'));

/** Writes `text` to a file and returns every problem the loader reports, as printed. */
function problemsOf(text: string): string[] {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  try {
    loadConfigFile(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').map((line) => line.slice(file.length + 1));
  }
  return [];
}

test('an empty file is a valid configuration with every default', () => {
  const config = loadConfigText('', 'empty.yaml', dir);
  assert.equal(config.log.level, 'info');
  assert.equal(config.log.access, true);
  assert.equal(config.limits.connect_timeout, 10_000);
  assert.equal(config.limits.idle_timeout, 300_000);
  assert.equal(config.limits.max_connections, 10_000);
  assert.deepEqual(config.inbounds, []);
  assert.deepEqual(config.rules, []);
});

test('durations are 500ms, 10s, 5m, 1h and sums of them', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('10'), undefined);
  assert.equal(parseDuration('5 minutes'), undefined);
});

test('an unknown key is reported at the key itself', () => {
  assert.deepEqual(problemsOf('limits:\n  idle_timeout: 5m\n  idle_timout: 5m\n'), [
    '3:3: limits: unknown key "idle_timout"',
  ]);
});

test('a wrong type is reported at the value', () => {
  assert.deepEqual(problemsOf('limits:\n  max_connections: many\n'), [
    '2:20: limits.max_connections: expected number',
  ]);
  assert.deepEqual(problemsOf('log:\n  access: "yes"\n'), ['2:11: log.access: expected boolean']);
});

test('a bad duration says which forms are accepted', () => {
  assert.deepEqual(problemsOf('limits:\n  connect_timeout: 10 seconds\n'), [
    '2:20: limits.connect_timeout: bad duration "10 seconds" (use 500ms, 10s, 5m or 1h)',
  ]);
});

test('a bad enum value lists the choices', () => {
  assert.deepEqual(problemsOf('log: { level: loud }\n'), [
    '1:15: log.level: expected one of "trace", "debug", "info", "warn", "error"',
  ]);
});

test('a duplicate key is a YAML error with its position', () => {
  assert.deepEqual(problemsOf('log:\n  level: info\n  level: debug\n'), ['3:3: duplicate key']);
});

test('a YAML syntax error is reported with its position', () => {
  const [problem] = problemsOf('inbounds:\n  - name: a\n   type: [http\n');
  assert.match(problem ?? '', /^\d+:\d+: /);
});

const inbound = (name: string, listen = '127.0.0.1:0'): string =>
  `  - { name: ${name}, type: mixed, listen: "${listen}" }\n`;

test('duplicate inbound names are reported at the second name', () => {
  assert.deepEqual(problemsOf(`inbounds:\n${inbound('a')}${inbound('a')}`), [
    '3:13: inbounds.1.name: duplicate inbound name "a"',
  ]);
});

test('a bad listen address is reported at the value', () => {
  assert.deepEqual(problemsOf(`inbounds:\n${inbound('a', 'localhost')}`), [
    '2:37: inbounds.0.listen: bad listen address "localhost" (use IP:PORT or [IPv6]:PORT)',
  ]);
  assert.deepEqual(problemsOf(`inbounds:\n${inbound('a', '127.0.0.1:70000')}`), [
    '2:37: inbounds.0.listen: bad listen address "127.0.0.1:70000" (use IP:PORT or [IPv6]:PORT)',
  ]);
});

test('IPv6 listen addresses are written in brackets', () => {
  const config = loadConfigText(`inbounds:\n${inbound('a', '[::1]:1080')}`, 'v6.yaml', dir);
  assert.deepEqual(config.inbounds[0]?.listen, { host: { kind: 'ipv6', ip: '::1' }, port: 1080 });
});

test('a rule naming an unknown outbound is reported at the name', () => {
  assert.deepEqual(problemsOf('rules:\n  - { domain: [a.com], outbound: corp }\n'), [
    '2:34: rules.0.outbound: unknown outbound "corp"',
  ]);
});

test('a rule naming an unknown inbound is reported at the name', () => {
  assert.deepEqual(
    problemsOf(`inbounds:\n${inbound('a')}rules:\n  - { inbound: [a, b], outbound: direct }\n`),
    ['4:20: rules.0.inbound.1: unknown inbound "b"'],
  );
});

test('bad CIDRs are reported at the item', () => {
  assert.deepEqual(
    problemsOf('rules:\n  - { ip_cidr: [10.0.0.0/8, 10.0.0.0/33], outbound: direct }\n'),
    ['2:29: rules.0.ip_cidr.1: bad CIDR "10.0.0.0/33"'],
  );
  assert.deepEqual(
    problemsOf(`inbounds:\n  - { name: a, type: http, listen: "127.0.0.1:0", allow: [nope] }\n`),
    ['2:59: inbounds.0.allow.0: bad CIDR "nope"'],
  );
});

test('a bad regex is reported with the reason', () => {
  assert.deepEqual(problemsOf("rules:\n  - { domain_regex: ['(['], outbound: direct }\n"), [
    '2:22: rules.0.domain_regex.0: bad regex: Invalid regular expression: /([/i: Unterminated character class',
  ]);
});

test('a bad port range is reported at the item', () => {
  assert.deepEqual(problemsOf("rules:\n  - { port: [443, '9000-8000'], outbound: direct }\n"), [
    '2:19: rules.0.port.1: bad port range "9000-8000" (use 8000-8999)',
  ]);
});

test('a single value is accepted where a list is expected', () => {
  const config = loadConfigText(
    'rules:\n  - { port: 443, domain_suffix: example.com, outbound: reject }\n',
    'one.yaml',
    dir,
  );
  assert.deepEqual(config.rules[0]?.port, [443]);
  assert.deepEqual(config.rules[0].domain_suffix, ['example.com']);
});

test('domains in rules are lower-cased and lose one trailing dot', () => {
  const config = loadConfigText(
    'rules:\n  - { domain: [WWW.Example.COM.], outbound: direct }\n',
    'd.yaml',
    dir,
  );
  assert.deepEqual(config.rules[0]?.domain, ['www.example.com']);
});

test('a missing domain list file is reported at the rule key', () => {
  const [problem] = problemsOf('rules:\n  - { domain_list: ./nope.txt, outbound: reject }\n');
  assert.match(
    problem ?? '',
    /^2:20: rules\.0\.domain_list: cannot use domain list .*nope\.txt: no such file$/,
  );
});

test('a domain list file is read relative to the configuration file', () => {
  writeFileSync(
    join(dir, 'blocked.txt'),
    '# ads\nAds.Example.com\n*.tracker.test\n\n.other.test # comment\n',
  );
  const config = loadConfigFile(
    (() => {
      const file = join(dir, 'with-list.yaml');
      writeFileSync(file, 'rules:\n  - { domain_list: ./blocked.txt, outbound: reject }\n');
      return file;
    })(),
  );
  const domains = config.rules[0]?.domain_list?.domains;
  assert.equal(domains?.size, 3);
  for (const name of ['ads.example.com', 'tracker.test', 'other.test']) {
    assert.equal(domains.matches(name), true, name);
  }
});

test('outbounds: url, chain or fallback, exactly one', () => {
  assert.deepEqual(problemsOf('outbounds:\n  - { name: x }\n'), [
    '2:5: outbounds.0: an outbound has exactly one of url, chain, fallback or pac',
  ]);
  assert.deepEqual(problemsOf('outbounds:\n  - { name: x, url: "ftp://h:1" }\n'), [
    '2:21: outbounds.0.url: unsupported scheme "ftp" (use http, https, socks4, socks4a, socks5, socks5h)',
  ]);
});

test('direct and reject cannot be redefined, and names are unique', () => {
  assert.deepEqual(problemsOf('outbounds:\n  - { name: direct, url: "socks5://127.0.0.1:1" }\n'), [
    '2:13: outbounds.0.name: "direct" is built in and cannot be redefined',
  ]);
});

test('a chain that reaches itself is a configuration error', () => {
  const problems = problemsOf(
    'outbounds:\n  - { name: a, chain: [b] }\n  - { name: b, chain: [a] }\n',
  );
  assert.deepEqual(problems, [
    '2:13: outbounds.0.name: outbound "a" refers to itself: a -> b -> a',
  ]);
});

test('a chain member that does not exist is reported at the member', () => {
  assert.deepEqual(problemsOf('outbounds:\n  - { name: a, chain: [direct, nope] }\n'), [
    '2:32: outbounds.0.chain.1: unknown outbound "nope"',
  ]);
});

test('an upstream URL error never shows the password', () => {
  const problems = problemsOf('outbounds:\n  - { name: a, url: "http://u:hunter2@bad host:1" }\n');
  assert.equal(problems.length, 1);
  assert.ok(!problems.join('').includes('hunter2'), problems.join('\n'));
});

test('every problem of a file is reported, sorted by position', () => {
  const problems = problemsOf('log: { level: loud }\nlimits: { idle_timeout: x, bogus: 1 }\n');
  assert.deepEqual(problems, [
    '1:15: log.level: expected one of "trace", "debug", "info", "warn", "error"',
    '2:25: limits.idle_timeout: bad duration "x" (use 500ms, 10s, 5m or 1h)',
    '2:28: limits: unknown key "bogus"',
  ]);
});

test('users have one of password, password_hash, password_env or password_file', () => {
  const problems = problemsOf(
    `inbounds:\n  - name: a\n    type: socks\n    listen: 127.0.0.1:0\n    auth: { users: [{ username: bob, pass: x }] }\n`,
  );
  assert.deepEqual(problems, [
    '5:21: inbounds.0.auth.users.0: a user has exactly one of password, password_hash, password_env or password_file',
    '5:38: inbounds.0.auth.users.0: unknown key "pass"',
  ]);
});

test('a missing file is reported as such', () => {
  assert.throws(
    () => loadConfigFile(join(dir, 'missing.yaml')),
    /missing\.yaml:1:1: cannot read config: no such file/,
  );
});

test('a duration beyond a 32-bit millisecond timer is a configuration error at its value', () => {
  assert.deepEqual(problemsOf('limits:\n  connect_timeout: 596h31m23s647ms\n'), []);
  const tooLong =
    'is longer than the longest timer, 2147483647 ms (about 24.8 days); use 596h31m23s647ms or less';
  assert.deepEqual(problemsOf('limits:\n  connect_timeout: 600h\n'), [
    `2:20: limits.connect_timeout: "600h" ${tooLong}`,
  ]);
  assert.deepEqual(problemsOf('limits:\n  idle_timeout: 596h31m23s648ms\n'), [
    `2:17: limits.idle_timeout: "596h31m23s648ms" ${tooLong}`,
  ]);
  const keys = ['handshake_timeout', 'connect_timeout', 'idle_timeout', 'udp_idle_timeout'];
  const problems = problemsOf(
    [
      'limits:',
      ...[...keys, 'shutdown_grace'].map((key) => `  ${key}: 9999h`),
      'outbounds:',
      '  - name: group',
      '    fallback: [direct]',
      '    check: { tcp: "127.0.0.1:1", interval: 100000h, timeout: 25000h }',
    ].join('\n'),
  );
  assert.deepEqual(
    problems.map((p) => p.replace(/ ".*$/, '')),
    [
      '2:22: limits.handshake_timeout:',
      '3:20: limits.connect_timeout:',
      '4:17: limits.idle_timeout:',
      '5:21: limits.udp_idle_timeout:',
      '6:19: limits.shutdown_grace:',
      '10:44: outbounds.0.check.interval:',
      '10:62: outbounds.0.check.timeout:',
    ],
  );
});

test('references to unknown names are reported in the same pass as every other problem', () => {
  const problems = problemsOf(
    [
      'limits: { connect_timeout: soon }',
      'inbounds:',
      '  - { name: lan, type: socks, listen: "nowhere" }',
      'outbounds:',
      '  - { name: corp, url: "ftp://proxy:21" }',
      '  - { name: both, chain: [corp, tor] }',
      '  - { name: both, fallback: [corp] }',
      'rules:',
      '  - { domain: [bad..domain], outbound: corp }',
      '  - { inbound: wan, outbound: nowhere }',
      '  - { port: 99999, outbound: tor }',
    ].join('\n'),
  );
  assert.deepEqual(problems, [
    '1:28: limits.connect_timeout: bad duration "soon" (use 500ms, 10s, 5m or 1h)',
    '3:39: inbounds.0.listen: bad listen address "nowhere" (use IP:PORT or [IPv6]:PORT)',
    '5:24: outbounds.0.url: unsupported scheme "ftp" (use http, https, socks4, socks4a, socks5, socks5h)',
    '6:33: outbounds.1.chain.1: unknown outbound "tor"',
    '7:13: outbounds.2.name: duplicate outbound name "both"',
    '9:16: rules.0.domain.0: bad domain "bad..domain"',
    '10:16: rules.1.inbound: unknown inbound "wan"',
    '10:31: rules.1.outbound: unknown outbound "nowhere"',
    '11:13: rules.2.port.0: bad port 99999 (use 1-65535)',
    '11:30: rules.2.outbound: unknown outbound "tor"',
  ]);
});

test('what the outbounds cannot be built from is a configuration error too', () => {
  assert.deepEqual(
    problemsOf(
      [
        'outbounds:',
        '  - { name: g, fallback: [direct], check: { tcp: "no port", url: "ftp://x/" } }',
        '  - { name: c, chain: [g] }',
      ].join('\n'),
    ),
    [
      '2:50: outbounds.0.check.tcp: expected host:port',
      '2:66: outbounds.0.check.url: expected an http:// or https:// URL',
      '3:24: outbounds.1.chain.0: fallback group "g" cannot be part of a chain',
    ],
  );
});

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { parseSize } from '../../src/config/size.js';

const dir = mkdtempSync(join(tmpdir(), 'junction-size-'));

/** Loads `text` from a file; every problem as printed, without the file name. */
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

test('sizes are decimal (KB, MB, GB) or binary (KiB, MiB, GiB) bytes', () => {
  assert.equal(parseSize('500KB'), 500_000);
  assert.equal(parseSize('500kB'), 500_000);
  assert.equal(parseSize('10MB'), 10_000_000);
  assert.equal(parseSize('1GB'), 1_000_000_000);
  assert.equal(parseSize('512KiB'), 524_288);
  assert.equal(parseSize('1MiB'), 1_048_576);
  assert.equal(parseSize('2GiB'), 2_147_483_648);
  assert.equal(parseSize('1.5MB'), 1_500_000);
  assert.equal(parseSize('64 MiB'), 67_108_864);
  assert.equal(parseSize('2000'), 2000);
  assert.equal(parseSize('2000B'), 2000);
  assert.equal(parseSize('10MB/s'), 10_000_000);
});

test('anything else is not a size: bits, unknown units, signs, empty', () => {
  for (const junk of ['', 'MB', '10mb', '10Mb', '10 megabytes', '-1MB', '1e6', '10TB', '1..5MB'])
    assert.equal(parseSize(junk), undefined, junk);
});

test('limits.rate, an inbound rate and a user rate are read as bytes per second', () => {
  const config = loadConfigText(
    [
      'limits:',
      '  rate: { up: 10MB, down: 50MB }',
      '  max_sessions_per_user: 3',
      'inbounds:',
      '  - name: a',
      '    type: socks',
      '    listen: 127.0.0.1:1080',
      '    rate: { down: 200KiB }',
      '    auth: { users: [{ username: u, password: p, rate: { up: 4000 } }] }',
    ].join('\n'),
    'rate.yaml',
    dir,
  );
  assert.deepEqual(config.limits.rate, { up: 10_000_000, down: 50_000_000 });
  assert.equal(config.limits.max_sessions_per_user, 3);
  const [inbound] = config.inbounds;
  assert.ok(inbound);
  assert.deepEqual(inbound.rate, { down: 204_800 });
  assert.deepEqual(inbound.auth?.users[0]?.rate, { up: 4000 });
});

test('a bad rate is refused at its position, saying which forms are accepted', () => {
  assert.deepEqual(problemsOf('limits:\n  rate: { up: 10 megs, down: 0 }\n'), [
    '2:15: limits.rate.up: bad rate "10 megs" (use 500KB, 10MB, 1GB, 512KiB, 1MiB or a number of bytes)',
    '2:30: limits.rate.down: 0 is below the lowest rate, 1KB per second; leave the key out for no limit',
  ]);
  assert.deepEqual(problemsOf('limits:\n  rate: { upload: 1MB }\n'), [
    '2:11: limits.rate: unknown key "upload"',
  ]);
  assert.deepEqual(problemsOf('limits:\n  max_sessions_per_user: 0\n'), [
    '2:26: limits.max_sessions_per_user: Too small: expected number to be >=1',
  ]);
});

test('one user name with two different rates on two inbounds is refused', () => {
  const inbound = (name: string, port: number, rate: string) =>
    [
      `  - name: ${name}`,
      '    type: socks',
      `    listen: 127.0.0.1:${port}`,
      `    auth: { users: [{ username: alice, password: p, rate: { down: ${rate} } }] }`,
    ].join('\n');
  assert.deepEqual(
    problemsOf(`inbounds:\n${inbound('a', 1080, '1MB')}\n${inbound('b', 1081, '2MB')}\n`),
    [
      '9:59: inbounds.1.auth.users.0.rate: user "alice" has another rate on inbound "a": a user\'s rate is shared by all its sessions, give it once or the same',
    ],
  );
  assert.deepEqual(
    problemsOf(`inbounds:\n${inbound('a', 1080, '1MB')}\n${inbound('b', 1081, '1000KB')}\n`),
    [],
  );
});

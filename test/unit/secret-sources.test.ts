import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createAuthenticator } from '../../src/auth.js';
import { ConfigError, loadConfigFile } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'junction-secrets-'));
const ENV = 'JUNCTION_TEST_SECRET_PW';

after(() => {
  Reflect.deleteProperty(process.env, ENV);
});

function writeConfig(text: string): string {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Every problem the loader reports, without the file name. */
function problemsOf(file: string): string[] {
  try {
    loadConfigFile(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').map((line) => line.slice(file.length + 1));
  }
  return [];
}

function secretFile(name: string, text: string, mode: number): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const userConfig = (entry: string): string =>
  `inbounds:\n  - name: in\n    type: socks5\n    listen: 127.0.0.1:0\n    auth:\n      users:\n        - ${entry}\n`;

test('an inbound user’s password may come from an environment variable', async () => {
  process.env[ENV] = 's3cret from env';
  const config = loadConfigFile(
    writeConfig(userConfig(`{ username: alice, password_env: ${ENV} }`)),
  );
  const users = config.inbounds[0]?.auth?.users ?? [];
  const auth = createAuthenticator(users);
  assert.equal(await auth.verify('alice', 's3cret from env'), true);
  assert.equal(await auth.verify('alice', 'wrong'), false);
});

test('a missing environment variable is reported at its key with FILE:LINE:COL', () => {
  Reflect.deleteProperty(process.env, ENV);
  const problems = problemsOf(writeConfig(userConfig(`{ username: alice, password_env: ${ENV} }`)));
  assert.deepEqual(problems, [
    `7:44: inbounds.0.auth.users.0.password_env: environment variable ${ENV} is not set`,
  ]);
});

test('a password file gives its first line; a world-readable, missing or empty one is refused', async () => {
  const good = secretFile('alice.pw', 'from a file\nsecond line ignored\n', 0o600);
  const config = loadConfigFile(
    writeConfig(userConfig(`{ username: alice, password_file: ${good} }`)),
  );
  const auth = createAuthenticator(config.inbounds[0]?.auth?.users ?? []);
  assert.equal(await auth.verify('alice', 'from a file'), true);

  const open = secretFile('open.pw', 'everyone\n', 0o644);
  assert.deepEqual(problemsOf(writeConfig(userConfig(`{ username: a, password_file: ${open} }`))), [
    `7:41: inbounds.0.auth.users.0.password_file: ${open} is readable by every user of this machine (chmod o-r, e.g. 600 or 640)`,
  ]);
  const missing = join(dir, 'nothing.pw');
  assert.match(
    problemsOf(writeConfig(userConfig(`{ username: a, password_file: ${missing} }`)))[0] ?? '',
    /password_file: cannot read .*nothing\.pw: no such file$/,
  );
  const empty = secretFile('empty.pw', '\n', 0o600);
  assert.match(
    problemsOf(writeConfig(userConfig(`{ username: a, password_file: ${empty} }`)))[0] ?? '',
    /password_file: .*empty\.pw is empty$/,
  );
});

test('a password file is found relative to the configuration file', async () => {
  secretFile('relative.pw', 'relative\n', 0o640);
  const config = loadConfigFile(
    writeConfig(userConfig('{ username: bob, password_file: relative.pw }')),
  );
  const auth = createAuthenticator(config.inbounds[0]?.auth?.users ?? []);
  assert.equal(await auth.verify('bob', 'relative'), true);
});

test('a user has exactly one password source', () => {
  process.env[ENV] = 'x';
  assert.deepEqual(
    problemsOf(writeConfig(userConfig(`{ username: a, password: p, password_env: ${ENV} }`))),
    [
      '7:11: inbounds.0.auth.users.0: a user has exactly one of password, password_hash, password_env or password_file',
    ],
  );
});

test('an outbound’s password may come from a file or a variable, for the URL’s user only', () => {
  process.env[ENV] = 'upstream pw';
  const pw = secretFile('corp.pw', 'corp pw\n', 0o600);
  const config = loadConfigFile(
    writeConfig(
      `outbounds:\n  - { name: a, url: "http://svc@127.0.0.1:3128", password_file: ${pw} }\n` +
        `  - { name: b, url: "socks5://svc@127.0.0.1:1080", password_env: ${ENV} }\n`,
    ),
  );
  assert.equal(config.outbounds[0]?.password, 'corp pw');
  assert.equal(config.outbounds[1]?.password, 'upstream pw');
  const problems = problemsOf(
    writeConfig(
      `outbounds:\n  - { name: a, url: "http://127.0.0.1:3128", password_env: ${ENV} }\n` +
        `  - { name: b, url: "http://u:inline@127.0.0.1:3128", password_env: ${ENV} }\n` +
        `  - { name: c, chain: [a], password_env: ${ENV} }\n`,
    ),
  );
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0] ?? '', /^2:\d+: outbounds\.0\.password_env: .*needs a user in the URL/);
  assert.match(
    problems[1] ?? '',
    /^3:\d+: outbounds\.1\.password_env: the URL has a password already/,
  );
  assert.match(problems[2] ?? '', /^4:\d+: outbounds\.2\.password_env: .*url: outbounds only/);
  assert.ok(!problems.join('\n').includes('inline'), 'the inline password is never printed');
});

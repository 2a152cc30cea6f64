import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { createAuthenticator } from '../../src/auth.js';
import { curl, startHttpOrigin, startTcpServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';

const MAIN = join(import.meta.dirname, '../../src/main.ts');
const dir = mkdtempSync(join(tmpdir(), 'junction-cli-'));
const children = new Set<ChildProcess>();

after(() => {
  for (const child of children) child.kill('SIGKILL');
});

function spawnCli(args: readonly string[]): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function runCli(args: readonly string[], stdin = ''): Promise<Finished> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin?.end(stdin);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Resolves with the first JSON log line on stdout that satisfies `predicate`. */
function waitForLine(
  child: ChildProcess,
  predicate: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error('no matching log line in 10 s')), 10_000);
    lines.on('line', (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      if (predicate(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

const listenPort = (line: Record<string, unknown>): number =>
  Number(String(line.listen).split(':').pop());

test('--version prints the package version and exits 0', async () => {
  const { version } = JSON.parse(
    readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8'),
  ) as { version: string };
  const result = await runCli(['--version']);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), version);
});

test('--help shows the options of the default command next to the commands', async () => {
  const result = await runCli(['--help']);
  assert.equal(result.code, 0);
  assert.equal(result.stderr, '');
  const help = result.stdout;
  assert.match(help, /^Usage: junction \[run\] \[options\]$/m);
  assert.match(help, /^Options of run, the default command:$/m);
  for (const option of [
    '-c, --config <file>',
    '-L, --listen <url>',
    '-F, --forward <url>',
    '--log-level <level>',
  ]) {
    assert.match(help, new RegExp(`^  ${option.replace(/[[\]]/g, '\\$&')}  `, 'm'), option);
  }
  for (const command of ['run', 'check', 'route', 'hash-password']) {
    assert.match(help, new RegExp(`^  ${command} `, 'm'), command);
  }
  // `junction help` says the same.
  assert.equal((await runCli(['help'])).stdout, help);
});

test('check accepts config.example.yaml', async () => {
  const result = await runCli([
    'check',
    '-c',
    join(import.meta.dirname, '../../config.example.yaml'),
  ]);
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0);
  assert.match(result.stdout, /config\.example\.yaml: ok \(3 inbounds, 3 outbounds, 10 rules\)/);
});

test('check prints every problem as FILE:LINE:COL and exits 2, with no stack trace', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'log:\n  level: loud\nrules:\n  - { outbound: nowhere }\n');
  const result = await runCli(['check', '-c', file]);
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
  assert.equal(
    result.stderr,
    `${file}:2:10: log.level: expected one of "trace", "debug", "info", "warn", "error"\n` +
      `${file}:4:17: rules.0.outbound: unknown outbound "nowhere"\n`,
  );
});

test('check reports a cross-reference alone when it is the only problem', async () => {
  const file = join(dir, 'xref.yaml');
  writeFileSync(file, 'rules:\n  - { outbound: nowhere }\n');
  const result = await runCli(['check', '-c', file]);
  assert.equal(result.code, 2);
  assert.equal(result.stderr, `${file}:2:17: rules.0.outbound: unknown outbound "nowhere"\n`);
});

test('route prints the rule index, its text and the outbound', async () => {
  const example = join(import.meta.dirname, '../../config.example.yaml');
  const matched = await runCli(['route', '-c', example, 'x.ads.example.net:443']);
  assert.equal(matched.code, 0);
  assert.equal(
    matched.stdout,
    'rules[1] { domain_suffix: [ads.example.net], port: [80, 443], outbound: reject }\noutbound: reject\n',
  );
  const byUser = await runCli([
    'route',
    '-c',
    example,
    '--inbound',
    'lan',
    '--user',
    'bob',
    '[2001:db8::1]:8080',
  ]);
  assert.equal(byUser.code, 0);
  assert.match(byUser.stdout, /^rules\[7\] .*user: \[bob\].*\noutbound: reject\n$/);
  const file = join(dir, 'norules.yaml');
  writeFileSync(file, '');
  const none = await runCli(['route', '-c', file, 'example.com:80']);
  assert.equal(none.stdout, 'no rule matched (default)\noutbound: direct\n');
});

test('route refuses a malformed target with exit 2', async () => {
  const result = await runCli([
    'route',
    '-c',
    join(import.meta.dirname, '../../config.example.yaml'),
    'example.com',
  ]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /bad target "example\.com"/);
});

test('hash-password prints a scrypt hash that verifies the password from stdin', async () => {
  const result = await runCli(['hash-password'], 'correct horse\n');
  assert.equal(result.code, 0);
  const hash = result.stdout.trim();
  assert.match(hash, /^scrypt\$16384\$8\$1\$/);
  const auth = createAuthenticator([{ username: 'u', password_hash: hash }]);
  assert.equal(await auth.verify('u', 'correct horse'), true);
  assert.equal(await auth.verify('u', 'correct horse\n'), false);
});

test('an unknown option is a usage error: exit 2', async () => {
  const result = await runCli(['--no-such-option']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown option '--no-such-option'/);
});

test('a bad -L URL is one line on stderr and exit 2', async () => {
  const result = await runCli(['-L', 'ftp://127.0.0.1:1']);
  assert.equal(result.code, 2);
  assert.equal(
    result.stderr,
    '-L ftp://127.0.0.1:1: unsupported scheme "ftp" (use http, https, socks, socks4, socks5, mixed)\n',
  );
});

test('an address in use is a runtime failure: one line, exit 1', async () => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const { port } = blocker.address() as AddressInfo;
  try {
    const result = await runCli(['-L', `socks5://127.0.0.1:${port}`]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `junction: cannot listen on 127.0.0.1:${port}: address already in use\n`,
    );
  } finally {
    blocker.close();
  }
});

test('run -L serves curl, logs one access line per session, and stops on SIGTERM with exit 0', async () => {
  const origin = await startHttpOrigin();
  try {
    const child = spawnCli(['-L', 'socks5://alice:pw%40x@:0', '-L', 'http://127.0.0.1:0']);
    const socks = await waitForLine(child, (l) => l.msg === 'listening' && l.type === 'socks5');
    const accessLine = waitForLine(child, (l) => l.msg === 'session');
    accessLine.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    const result = await curl([
      '-x',
      `socks5h://127.0.0.1:${listenPort(socks)}`,
      '--proxy-user',
      'alice:pw@x',
      `${origin.url}/tiny`,
    ]);
    assert.equal(result.stderr, '');
    assert.equal(result.stdout.toString(), 'ok\n');
    const line = await accessLine;
    assert.equal(line.user, 'alice');
    assert.equal(line.result, 'ok');
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
  } finally {
    await origin.close();
  }
});

test('with no arguments the embedded default is a mixed inbound on 127.0.0.1:1080', async (t) => {
  const probe = createServer().listen(1080, '127.0.0.1');
  const busy = await new Promise<boolean>((resolve) => {
    probe.once('listening', () => resolve(false));
    probe.once('error', () => resolve(true));
  });
  await new Promise<void>((resolve) => (busy ? resolve() : probe.close(() => resolve())));
  if (busy) {
    if (process.env.CI) assert.fail('port 1080 is taken on this machine');
    t.skip('port 1080 is taken on this machine');
    return;
  }
  const child = spawnCli([]);
  const line = await waitForLine(child, (l) => l.msg === 'listening');
  assert.equal(line.type, 'mixed');
  assert.equal(line.listen, '127.0.0.1:1080');
  child.kill('SIGINT');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
});

test('SIGHUP re-reads the file: new sessions follow the new rules; an invalid file is refused', async () => {
  const echo = await startTcpServer((socket) => socket.pipe(socket));
  const file = join(dir, 'reload.yaml');
  const inbound = 'inbounds:\n  - { name: s, type: socks, listen: "127.0.0.1:0" }\n';
  writeFileSync(file, inbound);
  const child = spawnCli(['-c', file]);
  try {
    const port = listenPort(await waitForLine(child, (l) => l.msg === 'listening'));
    assert.equal((await socks5Connect(port, '127.0.0.1', echo.port)).reply, 0x00);

    writeFileSync(file, `${inbound}rules:\n  - { ip_cidr: [127.0.0.0/8], outbound: reject }\n`);
    const reloaded = waitForLine(child, (l) => l.msg === 'configuration reloaded');
    child.kill('SIGHUP');
    await reloaded;
    assert.equal((await socks5Connect(port, '127.0.0.1', echo.port)).reply, 0x02);

    writeFileSync(file, `${inbound}rules:\n  - { outbound: nowhere }\n`);
    const refused = waitForLine(
      child,
      (l) => l.msg === 'reload refused: the running configuration stays',
    );
    child.kill('SIGHUP');
    const line = await refused;
    assert.equal(line.problems, `${file}:4:17: rules.0.outbound: unknown outbound "nowhere"`);
    assert.equal((await socks5Connect(port, '127.0.0.1', echo.port)).reply, 0x02);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    await echo.close();
  }
});

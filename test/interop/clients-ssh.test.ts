import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestGateway } from '../helpers/gateway.js';
import { BINARIES, startSshd, unavailable, type Sshd } from '../helpers/peers.js';
import { proves } from '../helpers/matrix.js';
import {
  CLIENT_USER,
  inboundName,
  nextSession,
  runProgram,
  startClientGateway,
  type InboundType,
} from '../helpers/programs.js';

/**
 * OpenSSH through junction the way its manual shows: `ProxyCommand nc -X 5 -x proxy %h %p`
 * (OpenBSD netcat, also -X 4 and -X connect), to a loopback sshd started for the test, running
 * `echo` on the far side. OpenBSD netcat has no SOCKS credentials and reads an HTTP proxy
 * password from a terminal only, so it runs against the inbounds without auth; socat's PROXY
 * address (HTTP CONNECT with `proxyauth`) carries the credentials.
 */

const skip = unavailable('sshd', 'ssh', 'ssh-keygen', 'nc', 'socat');

let dir: string;
let sshd: Sshd;
let g: TestGateway;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'junction-ssh-'));
  const key = join(dir, 'client_key');
  execFileSync(BINARIES['ssh-keygen'], ['-q', '-t', 'ed25519', '-N', '', '-f', key], {
    stdio: 'ignore',
  });
  sshd = await startSshd(readFileSync(`${key}.pub`, 'utf8'));
  writeFileSync(join(dir, 'known_hosts'), sshd.knownHosts);
  g = await startClientGateway();
});

after(async () => {
  if (skip) return;
  await g.stop();
  await sshd.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cases: { nc: '5' | '4' | 'connect'; type: InboundType }[] = [
  { nc: '5', type: 'socks' },
  { nc: '5', type: 'mixed' },
  { nc: '4', type: 'socks' },
  { nc: '4', type: 'mixed' },
  { nc: 'connect', type: 'http' },
  { nc: 'connect', type: 'mixed' },
];

/** Runs `echo marker` on the test's sshd through `proxyCommand`. */
function sshEcho(proxyCommand: string, marker: string): ReturnType<typeof runProgram> {
  return runProgram(
    BINARIES.ssh,
    [
      '-F',
      '/dev/null',
      '-i',
      join(dir, 'client_key'),
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'HostKeyAlias=sshd-test',
      '-o',
      'ConnectTimeout=10',
      '-o',
      `ProxyCommand=${proxyCommand}`,
      '-p',
      String(sshd.port),
      '-l',
      userInfo().username,
      '127.0.0.1',
      'echo',
      marker,
    ],
    { env: { PATH: '/usr/bin:/bin', HOME: dir } },
  );
}

async function assertEchoed(
  result: Awaited<ReturnType<typeof runProgram>>,
  marker: string,
  session: ReturnType<typeof nextSession>,
  user: string | undefined,
): Promise<void> {
  assert.equal(result.stdout, `${marker}\n`, result.stderr);
  assert.equal(result.exitCode, 0);
  const line = await session;
  assert.equal(line.target, `127.0.0.1:${sshd.port}`);
  assert.equal(line.result, 'ok');
  assert.equal(line.user, user);
  assert.ok(Number(line.up) > 0 && Number(line.down) > 0, JSON.stringify(line));
}

for (const { nc, type } of cases) {
  const cell = { client: `ssh ProxyCommand nc -X ${nc}`, inbound: type, auth: false };
  test(
    `ssh with ProxyCommand nc -X ${nc}, ${type} inbound`,
    { skip },
    proves(cell, async () => {
      const marker = `through-junction-${nc}-${type}`;
      const proxy = `127.0.0.1:${g.port(inboundName(type, false))}`;
      const session = nextSession(g, inboundName(type, false));
      const result = await sshEcho(`${BINARIES.nc} -X ${nc} -x ${proxy} %h %p`, marker);
      await assertEchoed(result, marker, session, undefined);
    }),
  );
}

for (const type of ['http', 'mixed'] as const) {
  test(
    `ssh with ProxyCommand socat PROXY: and proxyauth, ${type} inbound with auth`,
    { skip },
    proves({ client: 'ssh ProxyCommand socat PROXY', inbound: type, auth: true }, async () => {
      const marker = `through-junction-socat-${type}`;
      const port = g.port(inboundName(type, true));
      const creds = `${CLIENT_USER.username}:${CLIENT_USER.password}`;
      const session = nextSession(g, inboundName(type, true));
      const result = await sshEcho(
        `${BINARIES.socat} - PROXY:127.0.0.1:%h:%p,proxyport=${port},proxyauth=${creds}`,
        marker,
      );
      await assertEchoed(result, marker, session, CLIENT_USER.username);
    }),
  );
}

test('ssh with nc -X 5 on a socks inbound that requires auth is refused', { skip }, async () => {
  const proxy = `127.0.0.1:${g.port(inboundName('socks', true))}`;
  const result = await sshEcho(`${BINARIES.nc} -X 5 -x ${proxy} %h %p`, 'never');
  assert.equal(result.stdout, '');
  assert.equal(result.exitCode, 255);
});

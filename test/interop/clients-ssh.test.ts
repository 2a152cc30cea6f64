import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestGateway } from '../helpers/gateway.js';
import { BINARIES, startSshd, unavailable, type Sshd } from '../helpers/peers.js';
import {
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
 * password from a terminal only, so these run against the inbounds without auth.
 */

const skip = unavailable('sshd', 'ssh', 'ssh-keygen', 'nc');

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

for (const { nc, type } of cases) {
  test(`ssh with ProxyCommand nc -X ${nc}, ${type} inbound`, { skip }, async () => {
    const marker = `through-junction-${nc}-${type}`;
    const proxy = `127.0.0.1:${g.port(inboundName(type, false))}`;
    const session = nextSession(g, inboundName(type, false));
    const result = await runProgram(
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
        `ProxyCommand=${BINARIES.nc} -X ${nc} -x ${proxy} %h %p`,
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
    assert.equal(result.stdout, `${marker}\n`, result.stderr);
    assert.equal(result.exitCode, 0);
    const line = await session;
    assert.equal(line.target, `127.0.0.1:${sshd.port}`);
    assert.equal(line.result, 'ok');
    assert.ok(Number(line.up) > 0 && Number(line.down) > 0, JSON.stringify(line));
  });
}

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  freePort,
  rawConnect,
  readAnswer,
  startHttpOrigin,
  type HttpOrigin,
} from '../helpers/net.js';
import {
  BINARIES,
  KERBEROS_REALM,
  startKdc,
  startSquid,
  unavailable,
  type Kdc,
  type Squid,
} from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { loadKerberos } from '../../src/outbound/proxy-auth/kerberos.js';
import { recordUpstream } from '../helpers/matrix.js';
import { collectLogLines, type LogLine } from '../helpers/log-lines.js';

/**
 * junction passing a real squid that takes Negotiate (negotiate_kerberos_auth) with tickets of a
 * real MIT KDC, all on loopback with a throwaway realm. junction runs as its own process: the
 * GSS-API library reads KRB5_CONFIG and the ticket cache from the environment. Squid logs the
 * client principal that its helper verified.
 */

const UNDER_CI = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());
const loaded = await loadKerberos();
const bindingMissing = 'reason' in loaded ? loaded.reason : false;
if (bindingMissing && UNDER_CI) throw new Error(`${bindingMissing}: CI must build it (.ci/run)`);
const skip =
  unavailable(
    'squid',
    'negotiate_kerberos_auth',
    'krb5kdc',
    'kdb5_util',
    'kadmin.local',
    'kinit',
  ) || bindingMissing;

const MAIN = join(import.meta.dirname, '../../src/main.ts');
const PRINCIPAL = `alice@${KERBEROS_REALM}`;

let kdc: Kdc;
let squid: Squid;
let origin: HttpOrigin;
let dir: string;
let userKeytab: string;
const children = new Set<ChildProcess>();

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'junction-kerberos-'));
  kdc = await startKdc();
  userKeytab = kdc.addPrincipal('alice');
  const serviceKeytab = kdc.addPrincipal('HTTP/localhost');
  [squid, origin] = await Promise.all([
    startSquid({
      negotiate: {
        keytab: serviceKeytab,
        principal: `HTTP/localhost@${KERBEROS_REALM}`,
        krb5Config: kdc.krb5Config,
      },
    }),
    startHttpOrigin(),
  ]);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (skip) return;
  await Promise.all([squid.stop(), kdc.stop(), origin.close()]);
  rmSync(dir, { recursive: true, force: true });
});

interface Junction {
  readonly port: number;
  /** Resolves with the first log line that satisfies `predicate`, within 10 s. */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
  ): Promise<Record<string, unknown>>;
}

/** junction with one mixed inbound and everything through squid, as the `corp` outbound. */
async function startJunction(
  auth: Record<string, unknown>,
  env: Record<string, string>,
): Promise<Junction> {
  const port = await freePort();
  const file = join(dir, `junction-${port}.json`);
  // JSON is YAML: the configuration is written as such.
  writeFileSync(
    file,
    JSON.stringify({
      inbounds: [{ name: 'in', type: 'mixed', listen: `127.0.0.1:${port}` }],
      // `localhost`, not 127.0.0.1: the service principal is HTTP@<proxy host>.
      outbounds: [{ name: 'corp', url: `http://localhost:${squid.port}`, auth }],
      rules: [{ outbound: 'corp' }],
    }),
  );
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('KRB5')),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '-c', file], {
    env: { ...clean, KRB5_CONFIG: kdc.krb5Config, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const log = collectLogLines();
  createInterface({ input: child.stdout }).on('line', (text) => {
    log.push(JSON.parse(text) as LogLine);
  });
  const waitForLine: Junction['waitForLine'] = (predicate) => log.waitFor(predicate, 10_000);
  await waitForLine((line) => line.msg === 'listening');
  return { port, waitForLine };
}

/** SOCKS5 CONNECT to the origin through junction, one GET in the tunnel; the origin's answer. */
async function getThroughTunnel(port: number, path: string): Promise<string> {
  const tunnel = await socks5Connect(port, '127.0.0.1', origin.port);
  assert.equal(tunnel.reply, 0x00, `SOCKS5 reply 0x0${tunnel.reply}`);
  tunnel.client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return (await tunnel.client.readToEnd(10_000)).toString('latin1');
}

test(
  'SOCKS5 in, through squid with Negotiate, using the ticket cache of kinit',
  { skip },
  async () => {
    const cache = `FILE:${join(dir, 'ccache')}`;
    execFileSync(BINARIES.kinit, ['-k', '-t', userKeytab, PRINCIPAL], {
      env: { ...process.env, KRB5_CONFIG: kdc.krb5Config, KRB5CCNAME: cache },
      timeout: 10_000,
    });
    const junction = await startJunction({ schemes: ['negotiate'] }, { KRB5CCNAME: cache });
    const answer = await getThroughTunnel(junction.port, '/tiny?kinit');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(answer.endsWith('\r\n\r\nok\n'), answer);
    const [line] = await squid.waitForAccess('TCP_TUNNEL/200');
    assert.match(line ?? '', new RegExp(`TCP_TUNNEL/200 .* ${PRINCIPAL} `));

    // A plain http:// request takes the outbound's own sender: Negotiate again, same principal.
    const client = await rawConnect(junction.port);
    client.write(
      `GET http://127.0.0.1:${origin.port}/tiny?plain HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`,
    );
    const plain = await readAnswer(client);
    client.socket.destroy();
    assert.equal(plain.status, 200);
    assert.equal(plain.body, 'ok\n');
    const [get] = await squid.waitForAccess(`/tiny?plain ${PRINCIPAL} `);
    assert.match(get ?? '', / TCP_MISS\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/tiny\?plain /);
    recordUpstream('squid (http://, Negotiate/Kerberos)', 'socks', 'http');
  },
);

test('auth: { keytab } takes the tickets from the keytab, without kinit', { skip }, async () => {
  const tunnels = squid.accessLog().filter((l) => l.includes('TCP_TUNNEL/200')).length;
  const junction = await startJunction({ keytab: userKeytab }, {});
  const answer = await getThroughTunnel(junction.port, '/tiny?keytab');
  assert.ok(answer.endsWith('\r\n\r\nok\n'), answer);
  assert.ok(origin.requests.some((r) => r.url === '/tiny?keytab'));
  const lines = await squid.waitForAccess('TCP_TUNNEL/200', tunnels + 1);
  assert.match(lines.at(-1) ?? '', new RegExp(` ${PRINCIPAL} `));
});

test(
  'no ticket: SOCKS5 0x01, and the log says why Negotiate could not begin',
  { skip },
  async () => {
    const junction = await startJunction(
      { schemes: ['negotiate'] },
      { KRB5CCNAME: `FILE:${join(dir, 'no-such-ccache')}` },
    );
    const tunnel = await socks5Connect(junction.port, '127.0.0.1', origin.port);
    assert.equal(tunnel.reply, 0x01);
    tunnel.client.socket.destroy();
    const line = await junction.waitForLine((l) => l.msg === 'session');
    assert.match(
      String(line.error),
      /^upstream proxy "corp" authentication failed \(Negotiate: HTTP@localhost: .+\)$/,
    );
  },
);

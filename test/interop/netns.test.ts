import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { proves } from '../helpers/matrix.js';
import { startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { nextSession, runProgram } from '../helpers/programs.js';

/**
 * Clients at distinct addresses: two network namespaces made for the test, each joined to this
 * one by a veth pair (a /30 each), run the real curl against junction listening on the root side
 * of the first pair. `allow` admits one namespace and not the other, and a `source_cidr` rule
 * sends the other to `reject`. Everything stays on this machine; the namespaces (and with them
 * the veth pairs) are removed afterwards.
 */

const IP = '/usr/sbin/ip';
const CURL = '/usr/bin/curl';
const UNDER_CI = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());

/** CAP_NET_ADMIN in this process's effective set: what `ip netns add` and veth pairs need. */
function hasNetAdmin(): boolean {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return capEff?.[1] !== undefined && (BigInt(`0x${capEff[1]}`) & (1n << 12n)) !== 0n;
}

/**
 * Why the test cannot run here, or false. Without CAP_NET_ADMIN it is a skip even under CI (a
 * runner without it cannot make namespaces at all); with it, under CI, a missing `ip` or a
 * namespace the kernel refuses is a failure.
 */
function netnsUnavailable(): string | false {
  if (!hasNetAdmin()) return 'network namespaces need CAP_NET_ADMIN (run as root)';
  const fail = (reason: string): string => {
    if (UNDER_CI) throw new Error(`${reason}: CI must allow it (.ci/run)`);
    return reason;
  };
  try {
    accessSync(IP, constants.X_OK);
    accessSync(CURL, constants.X_OK);
  } catch {
    return fail(`${IP} (iproute2) or ${CURL} not installed`);
  }
  const probe = `jn-probe-${String(process.pid)}`;
  try {
    execFileSync(IP, ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync(IP, ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    return fail(`ip netns add is refused here: ${String(err).split('\n')[0] ?? ''}`);
  }
  return false;
}

const skip = netnsUnavailable();

/** One namespace and its veth pair: `root` is the address on this side, `inside` on the other. */
interface Namespace {
  readonly name: string;
  readonly root: string;
  readonly inside: string;
}

// Distinct per process, so two runs at once never share a name or a subnet.
const tag = process.pid % 60;
const ADMITTED: Namespace = {
  name: `jn-${String(process.pid)}-a`,
  root: `10.200.${String(tag * 4)}.1`,
  inside: `10.200.${String(tag * 4)}.2`,
};
const OTHER: Namespace = {
  name: `jn-${String(process.pid)}-b`,
  root: `10.200.${String(tag * 4 + 1)}.1`,
  inside: `10.200.${String(tag * 4 + 1)}.2`,
};

const ip = (...args: string[]): void => {
  execFileSync(IP, args, { stdio: 'pipe' });
};

function createNamespace(ns: Namespace, index: number): void {
  const outer = `jn${String(process.pid)}o${String(index)}`.slice(-15);
  const inner = `jn${String(process.pid)}i${String(index)}`.slice(-15);
  ip('netns', 'add', ns.name);
  ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', ns.name);
  ip('addr', 'add', `${ns.root}/30`, 'dev', outer);
  ip('link', 'set', outer, 'up');
  ip('-n', ns.name, 'addr', 'add', `${ns.inside}/30`, 'dev', inner);
  ip('-n', ns.name, 'link', 'set', inner, 'up');
  ip('-n', ns.name, 'link', 'set', 'lo', 'up');
  // Both reach junction's address (on the first pair) through their own pair.
  ip('-n', ns.name, 'route', 'add', 'default', 'via', ns.root);
}

function removeNamespace(ns: Namespace): void {
  try {
    ip('netns', 'del', ns.name);
  } catch {
    // Never made, or already gone; deleting it removes its veth pair with it.
  }
}

let origin: HttpOrigin;
let g: TestGateway;

before(async () => {
  if (skip) return;
  try {
    createNamespace(ADMITTED, 0);
    createNamespace(OTHER, 1);
  } catch (err) {
    removeNamespace(ADMITTED);
    removeNamespace(OTHER);
    throw err;
  }
  origin = await startHttpOrigin();
  const listen = `${ADMITTED.root}:0`;
  g = await startGateway({
    inbounds: [
      { name: 'http-allow', type: 'http', listen, allow: [`${ADMITTED.inside}/32`] },
      { name: 'socks-allow', type: 'socks', listen, allow: [`${ADMITTED.inside}/32`] },
      { name: 'ruled', type: 'mixed', listen },
    ],
    rules: [{ inbound: ['ruled'], source_cidr: [`${OTHER.inside}/32`], outbound: 'reject' }],
  });
});

after(async () => {
  if (skip) return;
  try {
    await g.stop();
    await origin.close();
  } finally {
    // Even when the start failed half-way: the namespaces must not outlive the test.
    removeNamespace(ADMITTED);
    removeNamespace(OTHER);
  }
});

/** curl inside `ns` through `proxy`; prints the status code (HTTP) after the body. */
const curlFrom = (ns: Namespace, proxy: string, path: string): ReturnType<typeof runProgram> =>
  runProgram(IP, [
    'netns',
    'exec',
    ns.name,
    CURL,
    '--silent',
    '--show-error',
    '--max-time',
    '10',
    '--proxy',
    proxy,
    '-w',
    '%{http_code}',
    `${origin.url}${path}`,
  ]);

const proxyUrl = (scheme: string, inbound: string): string =>
  `${scheme}://${ADMITTED.root}:${String(g.port(inbound))}`;

/** The address of an access log's `client` ("10.200.0.2:41234"). */
const hostOf = (client: unknown): string => String(client).replace(/:\d+$/, '');

const seen = (path: string): number => origin.requests.filter((r) => r.url.endsWith(path)).length;

test(
  'allow admits one namespace through the http inbound and answers the other 403',
  { skip },
  proves(
    { client: 'curl http:// (from a network namespace)', inbound: 'http', auth: false },
    async () => {
      const session = nextSession(g, 'http-allow');
      const admitted = await curlFrom(ADMITTED, proxyUrl('http', 'http-allow'), '/tiny?ns=http-a');
      assert.equal(admitted.stdout, 'ok\n200', admitted.stderr);
      assert.equal(seen('/tiny?ns=http-a'), 1);
      const line = await session;
      assert.equal(hostOf(line.client), ADMITTED.inside);
      const refused = await curlFrom(OTHER, proxyUrl('http', 'http-allow'), '/tiny?ns=http-b');
      assert.match(refused.stdout, /403$/, refused.stderr);
      assert.equal(seen('/tiny?ns=http-b'), 0);
    },
  ),
);

test(
  'allow admits one namespace through the socks inbound and answers the other SOCKS5 0x02',
  { skip },
  proves(
    { client: 'curl socks5h:// (from a network namespace)', inbound: 'socks', auth: false },
    async () => {
      const admitted = await curlFrom(ADMITTED, proxyUrl('socks5h', 'socks-allow'), '/tiny?ns=s-a');
      assert.equal(admitted.stdout, 'ok\n200', admitted.stderr);
      assert.equal(seen('/tiny?ns=s-a'), 1);
      const refused = await curlFrom(OTHER, proxyUrl('socks5h', 'socks-allow'), '/tiny?ns=s-b');
      // curl names the SOCKS5 reply code it got: 2, connection not allowed by ruleset.
      assert.equal(refused.exitCode, 97, refused.stderr);
      assert.match(refused.stderr, /\(2\)/);
      assert.equal(seen('/tiny?ns=s-b'), 0);
    },
  ),
);

test(
  'a source_cidr rule sends one namespace to reject: 403 over HTTP, 0x02 over SOCKS5',
  { skip },
  proves(
    { client: 'curl http:// (from a network namespace)', inbound: 'mixed', auth: false },
    async () => {
      const admitted = await curlFrom(ADMITTED, proxyUrl('http', 'ruled'), '/tiny?ns=r-a');
      assert.equal(admitted.stdout, 'ok\n200', admitted.stderr);
      const session = nextSession(g, 'ruled');
      const rejected = await curlFrom(OTHER, proxyUrl('http', 'ruled'), '/tiny?ns=r-b');
      assert.match(rejected.stdout, /403$/, rejected.stderr);
      const line = await session;
      assert.equal(hostOf(line.client), OTHER.inside);
      assert.equal(line.outbound, 'reject');
      const viaSocks = await curlFrom(OTHER, proxyUrl('socks5h', 'ruled'), '/tiny?ns=r-b');
      assert.equal(viaSocks.exitCode, 97, viaSocks.stderr);
      assert.match(viaSocks.stderr, /\(2\)/);
      assert.equal(seen('/tiny?ns=r-a'), 1);
      assert.equal(seen('/tiny?ns=r-b'), 0);
    },
  ),
);

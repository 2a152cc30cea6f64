import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestGateway } from '../helpers/gateway.js';
import { proves } from '../helpers/matrix.js';
import { BINARIES, unavailable } from '../helpers/peers.js';
import {
  CLIENT_USER,
  inboundName,
  nextSession,
  runProgram,
  startClientGateway,
  type InboundType,
} from '../helpers/programs.js';

/**
 * apt with `Acquire::http::Proxy` (http:// and socks5h://, with and without credentials in the
 * URL) against a loopback flat repository holding one tiny package built by dpkg-deb:
 * `apt-get update` then `apt-get download`. Every apt directory is the test's own, so the
 * system's apt state is never read or written.
 */

const skip = unavailable('apt-get', 'dpkg-deb');

const PACKAGE = 'junction-interop-probe';
const DEB = `${PACKAGE}_1.0_all.deb`;
const CONTROL = [
  `Package: ${PACKAGE}`,
  'Version: 1.0',
  'Architecture: all',
  'Maintainer: junction tests <tests@junction.invalid>',
  'Description: a package fetched through junction',
].join('\n');

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Repository {
  readonly url: string;
  readonly requests: { method: string; path: string }[];
  close(): Promise<void>;
}

/** A flat repository (`deb URL ./`): Release, Packages and the package, nothing else. */
async function startRepository(files: ReadonlyMap<string, Buffer>): Promise<Repository> {
  const requests: { method: string; path: string }[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://repository').pathname;
    requests.push({ method: req.method ?? '', path });
    const body = files.get(path);
    if (!body) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Builds the package and the indexes apt needs for a flat repository with [trusted=yes]. */
function buildRepository(dir: string): Map<string, Buffer> {
  const root = join(dir, 'package');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(join(root, 'usr/share/doc', PACKAGE), { recursive: true });
  writeFileSync(join(root, 'DEBIAN/control'), `${CONTROL}\n`);
  writeFileSync(join(root, 'usr/share/doc', PACKAGE, 'README'), 'fetched through junction\n');
  const debFile = join(dir, DEB);
  execFileSync(BINARIES['dpkg-deb'], ['--root-owner-group', '-Zgzip', '--build', root, debFile], {
    stdio: 'ignore',
  });
  const deb = readFileSync(debFile);
  const packages = Buffer.from(
    `${CONTROL}\nFilename: ./${DEB}\nSize: ${deb.length}\nSHA256: ${sha256(deb)}\n\n`,
  );
  // A fixed date in the past: apt refuses a Release file dated in the future.
  const release = Buffer.from(
    `Origin: junction-tests\nLabel: junction-tests\nDate: Thu, 01 Jan 2026 00:00:00 UTC\n` +
      `SHA256:\n ${sha256(packages)} ${packages.length} Packages\n`,
  );
  return new Map([
    ['/Release', release],
    ['/Packages', packages],
    [`/${DEB}`, deb],
  ]);
}

let dir: string;
let files: Map<string, Buffer>;
let repository: Repository;
let g: TestGateway;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'junction-apt-'));
  files = buildRepository(dir);
  repository = await startRepository(files);
  g = await startClientGateway();
});

after(async () => {
  if (skip) return;
  await g.stop();
  await repository.close();
  rmSync(dir, { recursive: true, force: true });
});

/** apt-get with every directory under `home` and `proxy` for http:// sources. */
function aptGet(
  home: string,
  proxy: string,
  args: readonly string[],
): ReturnType<typeof runProgram> {
  const options: Record<string, string> = {
    'Dir::Etc::SourceList': join(home, 'sources.list'),
    'Dir::Etc::SourceParts': join(home, 'sources.list.d'),
    'Dir::State::Lists': join(home, 'lists'),
    'Dir::State::status': join(home, 'status'),
    'Dir::Cache': join(home, 'cache'),
    'Dir::Cache::pkgcache': '',
    'Dir::Cache::srcpkgcache': '',
    'Debug::NoLocking': 'true',
    // The test's directories belong to root: apt's download sandbox user could not write there.
    'APT::Sandbox::User': 'root',
    'APT::Update::Error-Mode': 'any',
    'Acquire::Retries': '0',
    'Acquire::http::Timeout': '10',
    'Acquire::http::Proxy': proxy,
  };
  return runProgram(
    BINARIES['apt-get'],
    [
      '-q',
      ...Object.entries(options).flatMap(([key, value]) => ['-o', `${key}=${value}`]),
      ...args,
    ],
    { cwd: join(home, 'download'), env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', HOME: home } },
  );
}

function aptHome(label: string): string {
  const home = join(dir, `apt-${label}`);
  for (const sub of ['sources.list.d', 'lists/partial', 'cache/archives/partial', 'download']) {
    mkdirSync(join(home, sub), { recursive: true });
  }
  writeFileSync(join(home, 'status'), '');
  writeFileSync(join(home, 'sources.list'), `deb [trusted=yes] ${repository.url}/ ./\n`);
  return home;
}

const cases: { scheme: 'http' | 'socks5h'; type: InboundType }[] = [
  { scheme: 'http', type: 'http' },
  { scheme: 'http', type: 'mixed' },
  { scheme: 'socks5h', type: 'socks' },
  { scheme: 'socks5h', type: 'mixed' },
];

for (const { scheme, type } of cases) {
  for (const auth of [false, true]) {
    test(
      `apt-get update and download with Acquire::http::Proxy=${scheme}://, ${type} inbound, ${auth ? 'with' : 'without'} auth`,
      { skip },
      proves({ client: `apt Acquire::http::Proxy=${scheme}://`, inbound: type, auth }, async () => {
        const label = `${scheme}-${type}-${auth ? 'auth' : 'open'}`;
        const home = aptHome(label);
        const creds = auth ? `${CLIENT_USER.username}:${CLIENT_USER.password}@` : '';
        const proxy = `${scheme}://${creds}127.0.0.1:${g.port(inboundName(type, auth))}`;
        const served = repository.requests.length;
        const session = nextSession(g, inboundName(type, auth), (l) => l.result === 'ok');
        const update = await aptGet(home, proxy, ['update']);
        assert.equal(update.exitCode, 0, update.stdout + update.stderr);
        const download = await aptGet(home, proxy, ['download', PACKAGE]);
        assert.equal(download.exitCode, 0, download.stdout + download.stderr);
        const fetched = readFileSync(join(home, 'download', DEB));
        assert.equal(sha256(fetched), sha256(files.get(`/${DEB}`) ?? Buffer.alloc(0)));
        const seen = repository.requests.slice(served).map((r) => `${r.method} ${r.path}`);
        for (const path of ['/Release', '/Packages', `/${DEB}`]) {
          assert.equal(seen.filter((s) => s === `GET ${path}`).length, 1, seen.join(', '));
        }
        const line = await session;
        assert.equal(line.target, repository.url.slice('http://'.length));
        assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
      }),
    );
  }
}

test(
  'apt-get update without credentials on an inbound that requires them fails',
  { skip },
  async () => {
    const home = aptHome('no-credentials');
    const served = repository.requests.length;
    const update = await aptGet(home, `http://127.0.0.1:${g.port(inboundName('http', true))}`, [
      'update',
    ]);
    assert.notEqual(update.exitCode, 0);
    assert.match(update.stdout + update.stderr, /407/);
    assert.equal(repository.requests.length, served);
  },
);

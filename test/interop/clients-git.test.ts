import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestGateway } from '../helpers/gateway.js';
import { BINARIES, unavailable } from '../helpers/peers.js';
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
 * git's smart-HTTP clone with `http.proxy` (libcurl underneath: http://, socks5h://, with and
 * without credentials in the URL) from a loopback `git http-backend`, run as CGI behind a
 * node:http server that records every request it serves.
 */

const skip = unavailable('git', 'git-http-backend');

const README = 'cloned through junction\n';

interface GitOrigin {
  readonly url: string;
  readonly requests: { method: string; url: string }[];
  close(): Promise<void>;
}

/** RFC 3875 CGI, just enough for http-backend: request body in, headers and body out. */
async function startGitOrigin(projectRoot: string): Promise<GitOrigin> {
  const requests: { method: string; url: string }[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    requests.push({ method: req.method ?? '', url: `${url.pathname}${url.search}` });
    const child = spawn(BINARIES['git-http-backend'], [], {
      env: {
        PATH: '/usr/bin:/bin',
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: '1',
        GIT_CONFIG_NOSYSTEM: '1',
        HOME: projectRoot,
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_ADDR: req.socket.remoteAddress ?? '',
        ...(req.headers['content-encoding']
          ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] }
          : {}),
        ...(typeof req.headers['git-protocol'] === 'string'
          ? { GIT_PROTOCOL: req.headers['git-protocol'] }
          : {}),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    child.on('close', (code) => {
      if (!headersDone) res.writeHead(500).end(`http-backend exited ${String(code)}`);
      else res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let dir: string;
let origin: GitOrigin;
let g: TestGateway;
let head: string;

const gitEnv = (): NodeJS.ProcessEnv => ({
  PATH: '/usr/bin:/bin',
  HOME: dir,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
});

async function git(args: readonly string[], cwd = dir): Promise<string> {
  const result = await runProgram(BINARIES.git, args, { cwd, env: gitEnv() });
  assert.equal(result.exitCode, 0, `git ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'junction-git-'));
  const work = join(dir, 'work');
  await git(['init', '--quiet', '--initial-branch=main', work]);
  writeFileSync(join(work, 'README'), README);
  await git(['add', 'README'], work);
  await git(
    ['-c', 'user.name=t', '-c', 'user.email=t@t.test', 'commit', '--quiet', '-m', 'one'],
    work,
  );
  head = (await git(['rev-parse', 'HEAD'], work)).trim();
  await git(['clone', '--quiet', '--bare', work, join(dir, 'root', 'repo.git')]);
  origin = await startGitOrigin(join(dir, 'root'));
  g = await startClientGateway();
});

after(async () => {
  if (skip) return;
  await g.stop();
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

const cases: {
  scheme: 'http' | 'socks5h' | 'socks5' | 'socks4a';
  type: InboundType;
  auths: readonly boolean[];
}[] = [
  { scheme: 'http', type: 'http', auths: [false, true] },
  { scheme: 'http', type: 'mixed', auths: [false, true] },
  { scheme: 'socks5h', type: 'socks', auths: [false, true] },
  { scheme: 'socks5h', type: 'mixed', auths: [false, true] },
  { scheme: 'socks5', type: 'socks', auths: [true] },
  // SOCKS4a has no passwords.
  { scheme: 'socks4a', type: 'mixed', auths: [false] },
];

for (const { scheme, type, auths } of cases) {
  for (const auth of auths) {
    test(
      `git clone with http.proxy=${scheme}://, ${type} inbound, ${auth ? 'with' : 'without'} auth`,
      { skip },
      proves({ client: `git http.proxy=${scheme}://`, inbound: type, auth }, async () => {
        const creds = auth ? `${CLIENT_USER.username}:${CLIENT_USER.password}@` : '';
        const proxy = `${scheme}://${creds}127.0.0.1:${g.port(inboundName(type, auth))}`;
        const dest = join(dir, `clone-${scheme}-${type}-${auth}`);
        const served = origin.requests.length;
        // libcurl asks without credentials first and sends them after the 407.
        const session = nextSession(g, inboundName(type, auth), (line) => line.result === 'ok');
        await git([
          '-c',
          `http.proxy=${proxy}`,
          'clone',
          '--quiet',
          `${origin.url}/repo.git`,
          dest,
        ]);
        assert.equal(readFileSync(join(dest, 'README'), 'utf8'), README);
        assert.equal((await git(['rev-parse', 'HEAD'], dest)).trim(), head);
        const seen = origin.requests.slice(served);
        assert.deepEqual(seen[0], {
          method: 'GET',
          url: '/repo.git/info/refs?service=git-upload-pack',
        });
        assert.ok(
          seen.some((r) => r.method === 'POST' && r.url === '/repo.git/git-upload-pack'),
          JSON.stringify(seen),
        );
        const line = await session;
        assert.equal(line.target, origin.url.slice('http://'.length));
        assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
      }),
    );
  }
}

test('git clone without credentials on an inbound that requires them fails', { skip }, async () => {
  const served = origin.requests.length;
  const result = await runProgram(
    BINARIES.git,
    [
      '-c',
      `http.proxy=http://127.0.0.1:${g.port(inboundName('http', true))}`,
      'clone',
      '--quiet',
      `${origin.url}/repo.git`,
      join(dir, 'clone-refused'),
    ],
    { cwd: dir, env: gitEnv() },
  );
  assert.equal(result.exitCode, 128);
  assert.match(result.stderr, /407/);
  assert.equal(origin.requests.length, served);
});

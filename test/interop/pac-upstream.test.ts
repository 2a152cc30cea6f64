import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli.js';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { curl, readAnswer, rawConnect, refusedPort, startHttpOrigin } from '../helpers/net.js';
import type { HttpOrigin } from '../helpers/net.js';
import {
  OUTGOING,
  startDante,
  startSquid,
  unavailable,
  type Peer,
  type Squid,
} from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { recordUpstream } from '../helpers/matrix.js';

/**
 * A PAC outbound against real proxies: the PAC file, served over HTTP by the test, sends each
 * origin its own way (the rule is on the port in the URL FindProxyForURL is given), and the
 * address each origin sees a request come from proves the way: 127.0.0.1 direct, squid's
 * 127.0.0.5, dante's 127.0.0.4.
 */

const skip = unavailable('squid', 'dante', 'curl');
const USER = { name: 'pacuser', password: 'Pac-pw-5' };

/** A PAC file server: each path answers what the test last set for it. */
interface PacServer {
  url(path: string): string;
  set(path: string, status: number, body: string): void;
  close(): Promise<void>;
}

async function startPacServer(): Promise<PacServer> {
  const files = new Map<string, { status: number; body: string }>();
  const server: Server = createServer((req, res) => {
    const file = files.get(req.url ?? '') ?? { status: 404, body: 'not found' };
    res.writeHead(file.status, { 'content-type': 'application/x-ns-proxy-autoconfig' });
    res.end(file.body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    set: (path, status, body) => files.set(path, { status, body }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let pacServer: PacServer;
let direct: HttpOrigin;
let viaSquid: HttpOrigin;
let viaDante: HttpOrigin;
let viaFallback: HttpOrigin;
let squid: Squid;
let dante: Peer;
let deadPort: number;
let g: TestGateway;

/** The PAC file of the main gateway: every answer form, and a script that never returns. */
function mainPac(): string {
  return `
function FindProxyForURL(url, host) {
  if (host === 'loop.example') { while (true) {} }
  if (shExpMatch(url, '*:${viaSquid.port}/')) return 'PROXY 127.0.0.1:${squid.port}';
  if (shExpMatch(url, '*:${viaDante.port}/')) return 'socks5  127.0.0.1:${dante.port}';
  if (shExpMatch(url, '*:${viaFallback.port}/'))
    return 'PROXY 127.0.0.1:${deadPort}; SOCKS5 127.0.0.1:${dante.port}; DIRECT';
  if (host === 'junk.example') return 'FTP 127.0.0.1:21; nonsense';
  return 'DIRECT';
}`;
}

before(async () => {
  if (skip) return;
  pacServer = await startPacServer();
  [direct, viaSquid, viaDante, viaFallback] = await Promise.all([
    startHttpOrigin(),
    startHttpOrigin(),
    startHttpOrigin(),
    startHttpOrigin(),
  ]);
  deadPort = await refusedPort();
  [squid, dante] = await Promise.all([startSquid({ user: USER }), startDante()]);
  pacServer.set('/proxy.pac', 200, mainPac());
  g = await startGateway({
    inbounds: [{ name: 'in', type: 'mixed', listen: '127.0.0.1:0' }],
    outbounds: [
      {
        name: 'corp',
        pac: pacServer.url('/proxy.pac'),
        user: USER.name,
        password: USER.password,
        auth: { schemes: ['basic'] },
      },
    ],
    rules: [{ outbound: 'corp' }],
  });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([
    squid.stop(),
    dante.stop(),
    pacServer.close(),
    ...[direct, viaSquid, viaDante, viaFallback].map((o) => o.close()),
  ]);
});

const proxy = (): string => `http://127.0.0.1:${g.port('in')}`;

/** A plain http:// request, a CONNECT tunnel and a SOCKS5 tunnel to `origin`: where each came from. */
async function arrivals(origin: HttpOrigin): Promise<string[]> {
  const seen: string[] = [];
  const plain = await curl(['-x', proxy(), `${origin.url}/tiny`]);
  assert.equal(plain.exitCode, 0, plain.stderr);
  assert.equal(plain.stdout.toString(), 'ok\n');
  seen.push(origin.requests.at(-1)?.remoteAddress ?? '');
  const tunnel = await curl(['-p', '-x', proxy(), `${origin.url}/tiny`]);
  assert.equal(tunnel.exitCode, 0, tunnel.stderr);
  seen.push(origin.requests.at(-1)?.remoteAddress ?? '');
  const socks = await socks5Connect(g.port('in'), '127.0.0.1', origin.port);
  assert.equal(socks.reply, 0x00);
  socks.client.write('GET /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const answer = await readAnswer(socks.client);
  socks.client.socket.destroy();
  assert.equal(answer.body, 'ok\n');
  seen.push(origin.requests.at(-1)?.remoteAddress ?? '');
  return seen;
}

test(
  'PAC answers route each target: DIRECT straight, PROXY through squid with the outbound credentials, SOCKS5 through dante',
  { skip },
  async () => {
    assert.deepEqual(await arrivals(direct), Array(3).fill('127.0.0.1'));
    assert.deepEqual(await arrivals(viaSquid), Array(3).fill(OUTGOING.squid));
    assert.deepEqual(await arrivals(viaDante), Array(3).fill(OUTGOING.dante));
    // Squid saw the plain request in absolute-form and the tunnel as CONNECT, both as pacuser.
    const logged = await squid.waitForAccess(`:${viaSquid.port}`, 3);
    assert.ok(
      logged.some((l) => l.includes(`GET http://127.0.0.1:${viaSquid.port}/tiny ${USER.name}`)),
      logged.join('\n'),
    );
    assert.ok(
      logged.some((l) => l.includes(`CONNECT 127.0.0.1:${viaSquid.port} ${USER.name}`)),
      logged.join('\n'),
    );
    recordUpstream('PAC: PROXY squid (Basic)', 'http', 'socks');
    recordUpstream('PAC: SOCKS dante', 'http', 'socks');
  },
);

test(
  'a PAC answer with several entries is tried in order: a dead proxy is passed over for dante',
  { skip },
  async () => {
    assert.deepEqual(await arrivals(viaFallback), Array(3).fill(OUTGOING.dante));
    recordUpstream('PAC: dead PROXY, then SOCKS dante', 'http', 'socks');
  },
);

test(
  'a PAC script that never returns is stopped: the session fails (502, SOCKS5 0x01) and the gateway goes on serving',
  { skip },
  async () => {
    const started = Date.now();
    const socks = await socks5Connect(g.port('in'), 'loop.example', 80);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
    await g.waitForLog(
      (l) => l.msg === 'PAC file gave no answer' && String(l.reason).includes('ran longer than'),
    );
    // The answer (none) is kept: the next session to that target does not run the script again.
    const client = await rawConnect(g.port('in'));
    client.write('GET http://loop.example/ HTTP/1.1\r\nHost: loop.example\r\n\r\n');
    const answer = await readAnswer(client);
    client.socket.destroy();
    assert.equal(answer.status, 502);
    assert.match(answer.body, /outbound "corp": the PAC file gave no answer/);
    assert.ok(Date.now() - started < 5_000);
    assert.deepEqual(await arrivals(direct), Array(3).fill('127.0.0.1'));
  },
);

test(
  'a PAC answer with nothing usable fails the session (502) and logs what was ignored',
  { skip },
  async () => {
    const client = await rawConnect(g.port('in'));
    client.write('GET http://junk.example/ HTTP/1.1\r\nHost: junk.example\r\n\r\n');
    const answer = await readAnswer(client);
    client.socket.destroy();
    assert.equal(answer.status, 502);
    assert.match(answer.body, /the PAC file named no usable proxy/);
    const line: LogLine = await g.waitForLog((l) => l.msg === 'PAC answer: entries ignored');
    assert.deepEqual(line.ignored, ['FTP 127.0.0.1:21', 'nonsense']);
  },
);

test(
  'the PAC file is read again every interval: a change is picked up, a failed read keeps the last good one',
  { skip },
  async () => {
    pacServer.set('/changing.pac', 200, 'function FindProxyForURL(u, h) { return "DIRECT"; }');
    const changing = await startGateway({
      inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
      outbounds: [{ name: 'corp', pac: pacServer.url('/changing.pac'), interval: '100ms' }],
      rules: [{ outbound: 'corp' }],
    });
    const loadsAfter = (count: number, msg: string) => {
      const from = changing.logs.length;
      return changing.waitForLog((l) => l.msg === msg && changing.logs.indexOf(l) >= from, count);
    };
    const from = async (origin: HttpOrigin): Promise<string> => {
      const socks = await socks5Connect(changing.port('in'), '127.0.0.1', origin.port);
      assert.equal(socks.reply, 0x00);
      socks.client.write('GET /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal((await readAnswer(socks.client)).body, 'ok\n');
      socks.client.socket.destroy();
      return origin.requests.at(-1)?.remoteAddress ?? '';
    };
    try {
      assert.equal(await from(direct), '127.0.0.1');
      const reloaded = loadsAfter(5000, 'PAC file loaded');
      pacServer.set(
        '/changing.pac',
        200,
        `function FindProxyForURL(u, h) { return "SOCKS5 127.0.0.1:${dante.port}"; }`,
      );
      await reloaded;
      assert.equal(await from(direct), OUTGOING.dante);
      // A server error, then a file that does not compile: the last good file stays.
      const failed = loadsAfter(5000, 'PAC file not read again: the last one stays');
      pacServer.set('/changing.pac', 500, 'oops');
      const failure = await failed;
      assert.match(String(failure.reason), /HTTP 500/);
      assert.equal(await from(viaSquid), OUTGOING.dante);
      const broken = loadsAfter(5000, 'PAC file not read again: the last one stays');
      pacServer.set('/changing.pac', 200, 'function FindProxyForURL(u, h) { return ');
      assert.match(String((await broken).reason), /SyntaxError/);
      assert.equal(await from(viaFallback), OUTGOING.dante);
    } finally {
      await changing.stop();
    }
  },
);

test(
  'a PAC file that cannot be fetched at start: the gateway starts, sessions fail (0x01) until it loads',
  { skip },
  async () => {
    pacServer.set('/late.pac', 503, 'not yet');
    const late = await startGateway({
      inbounds: [{ name: 'in', type: 'socks', listen: '127.0.0.1:0' }],
      outbounds: [{ name: 'corp', pac: pacServer.url('/late.pac'), interval: '100ms' }],
      rules: [{ outbound: 'corp' }],
    });
    try {
      const failed = await late.waitForLog(
        (l) => l.msg?.startsWith('PAC file not loaded') === true,
      );
      assert.match(String(failed.reason), /HTTP 503/);
      const refused = await socks5Connect(late.port('in'), '127.0.0.1', direct.port);
      assert.equal(refused.reply, 0x01);
      refused.client.socket.destroy();
      pacServer.set('/late.pac', 200, 'function FindProxyForURL(u, h) { return "DIRECT"; }');
      await late.waitForLog((l) => l.msg === 'PAC file loaded');
      const socks = await socks5Connect(late.port('in'), '127.0.0.1', direct.port);
      assert.equal(socks.reply, 0x00);
      socks.client.socket.destroy();
    } finally {
      await late.stop();
    }
  },
);

test('junction route shows what the PAC file answers for the target', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-pac-'));
  try {
    writeFileSync(
      join(dir, 'proxy.pac'),
      'function FindProxyForURL(url, host) {\n' +
        '  if (dnsDomainIs(host, ".intra")) return "DIRECT";\n' +
        '  return "PROXY 127.0.0.1:3128; socks 127.0.0.1:1080; DIRECT";\n}\n',
    );
    writeFileSync(
      join(dir, 'junction.yaml'),
      'outbounds:\n  - { name: corp, pac: ./proxy.pac }\nrules:\n  - { outbound: corp }\n',
    );
    const route = async (target: string): Promise<string> => {
      let out = '';
      const code = await runCli(['route', '-c', join(dir, 'junction.yaml'), target], {
        stdout: (text) => (out += text),
        stderr: (text) => (out += text),
        stdin: () => Promise.resolve(''),
        version: '0',
      });
      assert.equal(code, 0, out);
      return out;
    };
    assert.equal(
      await route('example.com:443'),
      'rules[0] { outbound: corp }\noutbound: corp (PAC: PROXY 127.0.0.1:3128; SOCKS 127.0.0.1:1080; DIRECT)\n',
    );
    assert.match(await route('wiki.intra:80'), /\noutbound: corp \(PAC: DIRECT\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('junction check refuses a PAC file that does not exist, at its line and column', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-pac-'));
  try {
    const config = join(dir, 'junction.yaml');
    writeFileSync(config, 'outbounds:\n  - name: corp\n    pac: ./missing.pac\n');
    let err = '';
    const code = await runCli(['check', '-c', config], {
      stdout: () => undefined,
      stderr: (text) => (err += text),
      stdin: () => Promise.resolve(''),
      version: '0',
    });
    assert.equal(code, 2);
    assert.equal(
      err,
      `${config}:3:10: outbounds.0.pac: cannot read PAC file ${join(dir, 'missing.pac')}: no such file\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

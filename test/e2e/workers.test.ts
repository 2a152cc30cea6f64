import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { curl, freePort, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { encodeUdpDatagram } from '../../src/inbound/socks-udp-codec.js';
import { parseHost } from '../../src/target.js';
import { associate, dnsAnswer, dnsQuery, dnsServer, udpPeer } from '../helpers/udp.js';

/**
 * `--workers 2`: the built junction (dist/main.js, as users run it) with two worker processes
 * sharing one port, one admin endpoint summing their metrics, signals passed on, a dead worker
 * replaced.
 */

type Line = Record<string, unknown>;

const dir = mkdtempSync(join(tmpdir(), 'junction-workers-'));
const MAIN = join(import.meta.dirname, '../../dist/main.js');
let child: ChildProcess;
let origin: HttpOrigin;
let port: number;
let adminPort: number;
const lines: Line[] = [];
const waiters = new Set<{ match: (l: Line) => boolean; resolve: () => void }>();

/** Resolves once `count` lines (past or future) satisfy `match`; bounded. */
function linesMatching(
  match: (l: Line) => boolean,
  count = 1,
  timeoutMs = 15_000,
): Promise<Line[]> {
  const found = (): Line[] => lines.filter(match);
  if (found().length >= count) return Promise.resolve(found());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiters.delete(waiter);
      reject(
        new Error(`fewer than ${count} matching lines; last: ${JSON.stringify(lines.slice(-4))}`),
      );
    }, timeoutMs);
    const waiter = {
      match,
      resolve: () => {
        if (found().length < count) return;
        clearTimeout(timer);
        waiters.delete(waiter);
        resolve(found());
      },
    };
    waiters.add(waiter);
  });
}

before(async () => {
  origin = await startHttpOrigin();
  port = await freePort();
  adminPort = await freePort();
  const file = join(dir, 'junction.yaml');
  writeFileSync(
    file,
    `admin: { listen: 127.0.0.1:${adminPort} }\ninbounds: [{ name: m, type: mixed, listen: 127.0.0.1:${port} }]\n`,
  );
  child = spawn(process.execPath, [MAIN, '-c', file, '--workers', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    lines.push(JSON.parse(text) as Line);
    for (const waiter of waiters) waiter.resolve();
  });
  await linesMatching((l) => l.msg === 'listening', 2);
});

after(async () => {
  if (child.exitCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  await origin.close();
});

test('two workers share the port: sessions go to both, /metrics sums them', async () => {
  const workersSeen = new Set<unknown>();
  for (let i = 0; i < 12; i++) {
    const result = await curl(['-x', `socks5h://127.0.0.1:${port}`, `${origin.url}/tiny`]);
    assert.equal(result.stdout.toString(), 'ok\n');
  }
  const sessions = await linesMatching((l) => l.msg === 'session', 12);
  for (const line of sessions) workersSeen.add(line.worker);
  assert.deepEqual([...workersSeen].sort(), [1, 2]);
  const metrics = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text());
  const total = [...metrics.matchAll(/^junction_sessions_total\{[^}]*result="ok"[^}]*\} (\d+)$/gm)]
    .map((m) => Number(m[1]))
    .reduce((a, b) => a + b, 0);
  assert.equal(total, 12);
});

test('a UDP association lives in the worker that holds its control connection', async () => {
  const dns = await dnsServer();
  const client = await udpPeer();
  try {
    const { control, relay } = await associate(port);
    assert.ok(relay && relay.host.kind !== 'domain');
    const query = dnsQuery(7, 'example.test');
    const to = { host: parseHost('127.0.0.1')!, port: dns.port };
    await client.send(encodeUdpDatagram(to, query), relay.port, relay.host.ip);
    const { payload } = await client.next();
    assert.deepEqual(payload, encodeUdpDatagram(to, dnsAnswer(query)));
    control.socket.destroy();
  } finally {
    await client.close();
    await dns.close();
  }
});

test('SIGHUP reaches every worker', async () => {
  const before = lines.filter((l) => l.msg === 'configuration reloaded').length;
  child.kill('SIGHUP');
  const reloaded = await linesMatching((l) => l.msg === 'configuration reloaded', before + 2);
  assert.deepEqual(new Set(reloaded.slice(before).map((l) => l.worker)), new Set([1, 2]));
});

test('a worker that dies is logged and replaced; the port keeps serving', async () => {
  const listening = lines.filter((l) => l.msg === 'listening').length;
  const victim = lines.find((l) => l.msg === 'worker started' && l.worker === 1)?.pid;
  assert.equal(typeof victim, 'number');
  process.kill(victim as number, 'SIGKILL');
  const [exited] = await linesMatching((l) => l.msg === 'worker exited: starting another');
  assert.equal(exited?.level, 50);
  await linesMatching((l) => l.msg === 'listening', listening + 1);
  const { client, reply } = await socks5Connect(port, '127.0.0.1', origin.port);
  assert.equal(reply, 0x00);
  client.socket.destroy();
});

test('SIGTERM stops every worker, then the primary, with exit 0', async () => {
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
  assert.equal(
    lines.filter((l) => l.msg === 'stopped' && l.worker !== undefined).length >= 2,
    true,
  );
});

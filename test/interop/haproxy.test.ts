import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import type { LogLine } from '../helpers/gateway.js';
import {
  rawConnect,
  readAnswer,
  startTcpServer,
  type RawClient,
  type TcpServer,
} from '../helpers/net.js';
import { freePort, startHaproxy, unavailable, type Haproxy } from '../helpers/peers.js';
import { socks5Request } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';
import { collectLogLines } from '../helpers/log-lines.js';

/**
 * The Debian HAProxy in front of two junction processes, in TCP mode with `send-proxy-v2` and
 * TCP health checks: the client junction sees is the one HAProxy accepted, the checks are no
 * sessions, and a junction stopped with SIGTERM loses no new session while it finishes its own.
 */

const skip = unavailable('haproxy');
const MAIN = join(import.meta.dirname, '../../src/main.ts');
/** Clients on distinct loopback addresses: one in the junctions' `allow`, one not. */
const ALLOWED = '127.0.0.10';
const REFUSED = '127.0.0.11';
const GREETING = Buffer.from([0x05, 0x01, 0x00]);

interface Junction {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  sessions(): LogLine[];
  /** Its open client sockets, counted on its side by junction_connections_active. */
  activeConnections(): Promise<number>;
  listSessions(): Promise<{ client: string }[]>;
  readonly exited: Promise<number | null>;
}

const dir = mkdtempSync(join(tmpdir(), 'junction-haproxy-'));
const started: Junction[] = [];
let echo: TcpServer;
let haproxy: Haproxy;
let a: Junction;
let b: Junction;

async function startJunction(name: string): Promise<Junction> {
  const port = await freePort();
  const admin = await freePort();
  const file = join(dir, `${name}.yaml`);
  const config = {
    log: { level: 'debug' },
    limits: { handshake_timeout: '5s', shutdown_grace: '30s' },
    admin: { listen: `127.0.0.1:${admin}` },
    inbounds: [
      {
        name: 'lb',
        type: 'mixed',
        listen: `127.0.0.1:${port}`,
        proxy_protocol: 'required',
        allow: [`${ALLOWED}/32`],
      },
    ],
  };
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '-c', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const log = collectLogLines(`${name}: `);
  const lines = log.lines;
  createInterface({ input: child.stdout }).on('line', (text) => {
    log.push(JSON.parse(text) as LogLine);
  });
  const adminGet = async (path: string): Promise<string> =>
    (await fetch(`http://127.0.0.1:${admin}${path}`)).text();
  const junction: Junction = {
    name,
    port,
    child,
    lines,
    waitFor(predicate, timeoutMs = 10_000) {
      return log.waitFor(predicate, timeoutMs);
    },
    sessions: () => lines.filter((l) => l.msg === 'session'),
    async activeConnections() {
      const metrics = await adminGet('/metrics');
      const value = /^junction_connections_active\{inbound="lb"\} (\d+)$/m.exec(metrics)?.[1];
      return Number(value ?? NaN);
    },
    async listSessions() {
      return JSON.parse(await adminGet('/sessions')) as { client: string }[];
    },
    exited,
  };
  started.push(junction);
  await junction.waitFor((l) => l.msg === 'listening', 20_000);
  return junction;
}

/**
 * Sockets junction holds on its port (ESTABLISHED or CLOSE_WAIT on its side), from the
 * kernel's table: a socket the process forgot would be here whatever its own counters say.
 */
function socketsHeldOn(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let held = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local = '', , state] = row.trim().split(/\s+/);
      if (local.endsWith(`:${hexPort}`) && (state === '01' || state === '08')) held++;
    }
  }
  return held;
}

async function open(from: string): Promise<RawClient> {
  return rawConnect(haproxy.port, '127.0.0.1', from);
}

/** SOCKS5 CONNECT to the echo server through HAProxy, from `from`: the reply byte. */
async function socksThrough(from: string): Promise<{ client: RawClient; reply: number }> {
  const client = await open(from);
  client.write(Buffer.concat([GREETING, socks5Request('127.0.0.1', echo.port)]));
  assert.deepEqual([...(await client.read(2))], [0x05, 0x00]);
  const reply = await client.read(10);
  return { client, reply: reply[1] ?? -1 };
}

/** One whole session: connect, echo a payload, close. Resolves with the client's address. */
async function echoSession(label: string): Promise<string> {
  const { client, reply } = await socksThrough(ALLOWED);
  assert.equal(reply, 0x00, `${label}: SOCKS reply`);
  client.write(label);
  assert.equal((await client.read(label.length)).toString(), label);
  const address = `${ALLOWED}:${client.socket.localPort}`;
  client.socket.end();
  await client.closed();
  return address;
}

const bothUp = async (): Promise<boolean> => {
  const states = await haproxy.serverStatus();
  return states.get('a') === 'UP' && states.get('b') === 'UP';
};

before(async () => {
  if (skip) return;
  echo = await startTcpServer((socket) => socket.pipe(socket));
  [a, b] = await Promise.all([startJunction('a'), startJunction('b')]);
  haproxy = await startHaproxy([
    { name: 'a', port: a.port },
    { name: 'b', port: b.port },
  ]);
  await eventually(bothUp, 'both junctions UP in HAProxy', 10_000);
});

after(async () => {
  if (skip) return;
  await haproxy.stop();
  for (const junction of started) {
    if (junction.child.exitCode === null && junction.child.signalCode === null) {
      junction.child.kill('SIGKILL');
      await junction.exited;
    }
  }
  await echo.close();
  rmSync(dir, { recursive: true, force: true });
});

test(
  "HAProxy's TCP health checks leave no access line, no log line above debug and no socket",
  { skip },
  async () => {
    // Ten checks on each: HAProxy connects, and resets as soon as the connection is up (often
    // before junction has accepted it). A LOCAL header then a close is tested end to end in
    // test/e2e/proxy-protocol.test.ts: HAProxy's connect-only check sends no header.
    const probes = (j: Junction): number =>
      j.lines.filter((l) => l.msg === 'closed before sending a byte').length;
    await eventually(
      () => probes(a) >= 10 && probes(b) >= 10,
      'ten health checks on each junction',
      15_000,
    );
    for (const junction of [a, b]) {
      assert.deepEqual(junction.sessions(), [], `${junction.name}: no access line`);
      const noisy = junction.lines.filter((l) => l.client !== undefined && Number(l.level) >= 30);
      assert.deepEqual(noisy, [], `${junction.name}: no line above debug about a client`);
      await eventually(
        () => socketsHeldOn(junction.port) === 0,
        `${junction.name}: no socket held`,
      );
      await eventually(
        async () => (await junction.activeConnections()) === 0,
        `${junction.name}: junction_connections_active 0`,
        10_000,
      );
    }
  },
);

test(
  'the client HAProxy accepted is the one allow, the access log and /sessions see',
  { skip },
  async () => {
    const allowed = await socksThrough(ALLOWED);
    assert.equal(allowed.reply, 0x00);
    const allowedAddress = `${ALLOWED}:${allowed.client.socket.localPort}`;
    await eventually(
      async () =>
        (await Promise.all([a, b].map((j) => j.listSessions()))).some((list) =>
          list.some((s) => s.client === allowedAddress),
        ),
      'the session listed with its real client',
      10_000,
    );
    allowed.client.write('ping');
    assert.equal((await allowed.client.read(4)).toString(), 'ping');
    allowed.client.socket.end();

    const refused = await socksThrough(REFUSED);
    assert.equal(refused.reply, 0x02, 'SOCKS5: not allowed');
    const refusedSocks = `${REFUSED}:${refused.client.socket.localPort}`;

    const http = await open(REFUSED);
    http.write(`GET http://127.0.0.1:${echo.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.equal((await readAnswer(http)).status, 403, 'HTTP: not allowed');
    const refusedHttp = `${REFUSED}:${http.socket.localPort}`;
    http.socket.destroy();

    const line = (client: string): Promise<LogLine> =>
      Promise.any([a, b].map((j) => j.waitFor((l) => l.msg === 'session' && l.client === client)));
    assert.equal((await line(allowedAddress)).result, 'ok');
    assert.equal((await line(refusedSocks)).result, 'NOT_ALLOWED');
    assert.equal((await line(refusedHttp)).result, 'NOT_ALLOWED');
  },
);

test(
  'drained at HAProxy, then SIGTERM: no new session is lost, and its live session completes',
  { skip },
  async () => {
    const live = await socksThrough(ALLOWED);
    assert.equal(live.reply, 0x00);
    const liveAddress = `${ALLOWED}:${live.client.socket.localPort}`;
    let holder: Junction | undefined;
    await eventually(
      async () => {
        for (const j of [a, b]) {
          if ((await j.listSessions()).some((s) => s.client === liveAddress)) holder = j;
        }
        return holder !== undefined;
      },
      'the live session on one junction',
      10_000,
    );
    const stopping = holder as Junction;
    const other = stopping === a ? b : a;

    // Clients keep starting sessions, four at a time, from before the stop to after it.
    const storm = { running: true, stopSeen: false, done: 0, failures: [] as string[] };
    const afterStop: string[] = [];
    const client = async (worker: number): Promise<void> => {
      for (let i = 0; storm.running; i++) {
        const afterSignal = storm.stopSeen;
        try {
          const address = await echoSession(`storm-${worker}-${i}`);
          if (afterSignal) afterStop.push(address);
          storm.done++;
        } catch (err) {
          storm.failures.push(`${afterSignal ? 'after' : 'before'} the stop: ${String(err)}`);
        }
      }
    };
    const clients = Promise.all([0, 1, 2, 3].map(client));
    await eventually(() => storm.done >= 20, 'sessions under way before the stop', 15_000);

    // As an operator stops an instance behind a balancer: drained first, so that no connection
    // is left in the kernel's accept queue when the listener closes (HAProxy in TCP mode cannot
    // retry a connection that was accepted and then reset).
    await haproxy.command(`set server junctions/${stopping.name} state drain`);
    await eventually(
      async () => (await haproxy.serverStatus()).get(stopping.name)?.startsWith('DRAIN') ?? false,
      'HAProxy draining the junction about to stop',
      10_000,
    );
    stopping.child.kill('SIGTERM');
    await stopping.waitFor((l) => l.msg === 'shutting down');
    storm.stopSeen = true;
    await eventually(
      async () => (await haproxy.serverStatus()).get(stopping.name)?.startsWith('DOWN') ?? false,
      'HAProxy marking the stopping junction DOWN',
      10_000,
    );
    const atDown = storm.done;
    await eventually(() => storm.done >= atDown + 20, 'sessions after it is DOWN', 15_000);

    // The live session still carries bytes, then ends by itself; then the process exits.
    live.client.write('still here');
    assert.equal((await live.client.read(10)).toString(), 'still here');
    live.client.socket.end();
    const last = await stopping.waitFor((l) => l.msg === 'session' && l.client === liveAddress);
    assert.equal(last.result, 'ok');
    assert.equal(await stopping.exited, 0);
    const atExit = storm.done;
    await eventually(() => storm.done >= atExit + 20, 'sessions after it exited', 15_000);
    storm.running = false;
    await clients;

    assert.deepEqual(storm.failures, [], 'every session succeeded');
    assert.ok(afterStop.length >= 40, `${afterStop.length} sessions after the stop`);
    for (const address of afterStop) {
      const line = await other.waitFor((l) => l.msg === 'session' && l.client === address);
      assert.equal(line.result, 'ok', address);
    }
  },
);

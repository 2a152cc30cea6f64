import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import { startGateway, type TestGateway, withGateway } from '../helpers/gateway.js';
import { rawConnect, startTcpServer, type TcpServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';

/** An origin that echoes every byte back and ends when the client ends. */
let echo: TcpServer;

before(async () => {
  echo = await startTcpServer((socket) => socket.pipe(socket));
});

after(async () => {
  await echo.close();
});

const socksInbound = { name: 's', type: 'socks', listen: '127.0.0.1:0' };

test('a relay with no bytes either way for idle_timeout is closed and logged as IDLE_TIMEOUT', async () => {
  await withGateway({ inbounds: [socksInbound], limits: { idle_timeout: '300ms' } }, async (g) => {
    const { client, reply } = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    assert.equal(reply, 0x00);
    client.write('ping');
    assert.equal((await client.read(4)).toString(), 'ping');
    await client.closed(5000);
    const line = await g.waitForLog((l) => l.msg === 'session');
    assert.equal(line.result, 'IDLE_TIMEOUT');
    assert.equal(line.up, 4);
    assert.equal(line.down, 4);
  });
});

test('a client that sends nothing is closed after handshake_timeout', async () => {
  await withGateway(
    { inbounds: [socksInbound], limits: { handshake_timeout: '200ms' } },
    async (g) => {
      const client = await rawConnect(g.port());
      await client.closed(5000);
      await eventually(() => activeOf(g) === 0, 'the socket to be released');
    },
  );
});

test('past max_connections a new connection is closed at once, and accepted again once one ends', async () => {
  await withGateway({ inbounds: [socksInbound], limits: { max_connections: 2 } }, async (g) => {
    const first = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    const second = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    assert.equal(first.reply, 0);
    assert.equal(second.reply, 0);
    const third = await rawConnect(g.port());
    third.write(Buffer.from([0x05, 0x01, 0x00]));
    assert.equal((await third.readToEnd()).length, 0);
    await g.waitForLog((l) => l.msg === 'max_connections reached: refusing new connections');
    first.client.socket.end();
    await first.client.closed();
    await eventually(() => activeOf(g) === 1, 'the first session to end');
    const fourth = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    assert.equal(fourth.reply, 0);
    fourth.client.socket.destroy();
    second.client.socket.destroy();
  });
});

test('deny_destinations refuses an address and a name that resolves to it, with 0x02', async () => {
  await withGateway(
    { inbounds: [socksInbound], limits: { deny_destinations: ['loopback'] } },
    async (g) => {
      const literal = await socks5Connect(g.port(), '127.0.0.1', echo.port);
      assert.equal(literal.reply, 0x02);
      const named = await socks5Connect(g.port(), 'localhost', echo.port);
      assert.equal(named.reply, 0x02);
      const lines = g.sessions();
      assert.equal(lines.length, 2);
      assert.ok(
        lines.every((l) => l.result === 'DESTINATION_DENIED'),
        JSON.stringify(lines),
      );
    },
  );
});

test('a listener beyond loopback with neither auth nor allow warns that it is an open proxy', async () => {
  await withGateway(
    { inbounds: [{ name: 'open', type: 'mixed', listen: '0.0.0.0:0' }] },
    async (g) => {
      const line = await g.waitForLog(
        (l) => typeof l.msg === 'string' && l.msg.startsWith('open proxy'),
      );
      assert.equal(line.inbound, 'open');
      assert.equal(line.level, 40);
    },
  );
  await withGateway(
    { inbounds: [{ name: 'guarded', type: 'mixed', listen: '0.0.0.0:0', allow: ['127.0.0.0/8'] }] },
    (g) => {
      assert.ok(!g.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('open proxy')));
    },
  );
});

test('a reload changes the rules for new sessions while a live session keeps going', async () => {
  await withGateway({ inbounds: [socksInbound] }, async (g) => {
    const live = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    assert.equal(live.reply, 0x00);
    const next = loadConfigText('', '<reload>', process.cwd(), (raw) =>
      Object.assign(raw, {
        inbounds: [socksInbound],
        rules: [{ ip_cidr: ['127.0.0.0/8'], outbound: 'reject' }],
      }),
    );
    g.gateway.reload(next);
    const refused = await socks5Connect(g.port(), '127.0.0.1', echo.port);
    assert.equal(refused.reply, 0x02);
    live.client.write('still here');
    assert.equal((await live.client.read(10)).toString(), 'still here');
    live.client.socket.destroy();
  });
});

test('stop lets live sessions finish within the grace period, then closes the rest', async () => {
  const g = await startGateway({ inbounds: [socksInbound] });
  const live = await socks5Connect(g.port(), '127.0.0.1', echo.port);
  assert.equal(live.reply, 0x00);
  const stopped = g.gateway.stop(300);
  // New connections are refused once stop() has begun.
  await assert.rejects(
    new Promise((resolve, reject) => {
      const probe = connect({ host: '127.0.0.1', port: g.port() });
      probe.once('connect', () => {
        probe.destroy();
        resolve(undefined);
      });
      probe.once('error', reject);
    }),
  );
  live.client.write('during grace');
  assert.equal((await live.client.read(12)).toString(), 'during grace');
  await stopped;
  await live.client.closed();
  const line = await g.waitForLog((l) => l.msg === 'session');
  assert.equal(line.result, 'SHUTDOWN');
  await eventually(() => activeOf(g) === 0, 'every client socket to be released');
});

test('a slow reader holds the sender back: the gateway does not buffer without bound', async () => {
  const total = 64 * 1024 * 1024;
  let written = 0;
  let blocked = false;
  const flood = await startTcpServer((socket) => {
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = (): void => {
      while (written < total) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          blocked = true;
          socket.once('drain', () => {
            blocked = false;
            pump();
          });
          return;
        }
      }
      socket.end();
    };
    pump();
  });
  try {
    await withGateway({ inbounds: [socksInbound] }, async (g) => {
      const { client, reply, replyBytes } = await socks5Connect(g.port(), '127.0.0.1', flood.port);
      assert.equal(reply, 0);
      client.socket.pause();
      // The origin's writes stall once the kernel buffers and the relay's in-flight chunk are
      // full; "stalled" means blocked with no progress for 200 ms.
      let lastWritten = -1;
      let unchangedSince = Date.now();
      await eventually(
        () => {
          if (!blocked || written !== lastWritten) {
            lastWritten = written;
            unchangedSince = Date.now();
          }
          return Date.now() - unchangedSince > 200;
        },
        'the origin to be held back',
        10_000,
      );
      assert.ok(
        written < 24 * 1024 * 1024,
        `the origin wrote ${written} bytes into a paused client`,
      );
      // Then everything still arrives once the client reads again.
      client.socket.removeAllListeners('data');
      client.socket.resume();
      await once(client.socket, 'end');
      assert.equal(client.socket.bytesRead, 2 + replyBytes.length + total);
    });
  } finally {
    await flood.close();
  }
});

const activeOf = (g: TestGateway): number => g.gateway.activeConnections;

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { amendFromUrls } from '../../src/config/one-liner.js';
import { encodeProxyHeader, V2_SIGNATURE } from '../../src/inbound/proxy-protocol.js';
import {
  configFrom,
  startGateway,
  withGateway,
  type LogLine,
  type TestGateway,
} from '../helpers/gateway.js';
import {
  rawConnect,
  readAnswer,
  startHttpOrigin,
  startTcpServer,
  type RawClient,
  type TcpServer,
} from '../helpers/net.js';
import { selfSignedCertificate } from '../helpers/peers.js';
import { socks5Request } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';

/**
 * junction behind a load balancer that speaks the PROXY protocol: the header's address is the
 * client for `allow`, rules and the access log; only trusted peers may send one; a balancer's
 * health check is no session.
 */

let echo: TcpServer;
const sockets = new Set<Socket>();

before(async () => {
  echo = await startTcpServer((socket) => socket.pipe(socket));
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await echo.close();
});

const ALLOWED = { ip: '203.0.113.7', port: 40001 };
const REFUSED = { ip: '198.51.100.9', port: 40002 };
const BALANCER = { ip: '127.0.0.1', port: 1080 };
const GREETING = Buffer.from([0x05, 0x01, 0x00]);
const LOCAL_V2 = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);

async function open(port: number): Promise<RawClient> {
  const client = await rawConnect(port);
  sockets.add(client.socket);
  return client;
}

function inbound(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    limits: { handshake_timeout: '2s' },
    inbounds: [{ name: 'in', type: 'mixed', listen: '127.0.0.1:0', ...extra }],
  };
}

/** Header, greeting and CONNECT in one write: bytes after the header are the protocol's. */
async function socksThroughHeader(
  port: number,
  header: Buffer,
): Promise<{ client: RawClient; reply: number }> {
  const client = await open(port);
  client.write(Buffer.concat([header, GREETING, socks5Request('127.0.0.1', echo.port)]));
  const method = await client.read(2);
  assert.deepEqual([...method], [0x05, 0x00]);
  const reply = await client.read(10);
  return { client, reply: reply[1] ?? -1 };
}

const refusals = (g: TestGateway): LogLine[] =>
  g.logs.filter((l) => l.msg === 'PROXY protocol header refused');

for (const version of [1, 2] as const) {
  test(`a v${version} header's address decides allow and is the access log's client`, async () => {
    await withGateway(
      inbound({ proxy_protocol: 'required', allow: ['203.0.113.0/24'] }),
      async (g) => {
        const ok = await socksThroughHeader(
          g.port(),
          encodeProxyHeader(version, ALLOWED, BALANCER),
        );
        assert.equal(ok.reply, 0x00);
        ok.client.write('ping');
        assert.equal((await ok.client.read(4)).toString(), 'ping');
        ok.client.socket.end();
        const line = await g.waitForLog((l) => l.msg === 'session' && l.result === 'ok');
        assert.equal(line.client, '203.0.113.7:40001');

        const refused = await socksThroughHeader(
          g.port(),
          encodeProxyHeader(version, REFUSED, BALANCER),
        );
        assert.equal(refused.reply, 0x02, 'outside allow: SOCKS5 0x02');
        const denied = await g.waitForLog((l) => l.msg === 'session' && l.result === 'NOT_ALLOWED');
        assert.equal(denied.client, '198.51.100.9:40002');
      },
    );
  });
}

test('the header address is what source_cidr rules see, for HTTP through the mixed inbound', async () => {
  await withGateway(
    {
      ...inbound({ proxy_protocol: 'required' }),
      rules: [{ source_cidr: ['198.51.100.0/24'], outbound: 'reject' }],
    },
    async (g) => {
      const client = await open(g.port());
      const request = `GET http://127.0.0.1:${echo.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
      client.write(Buffer.concat([encodeProxyHeader(2, REFUSED, BALANCER), Buffer.from(request)]));
      const answer = await readAnswer(client);
      assert.equal(answer.status, 403);
      const line = await g.waitForLog((l) => l.msg === 'session');
      assert.equal(line.client, '198.51.100.9:40002');
      assert.equal(line.outbound, 'reject');
    },
  );
});

test('required: a connection without a header is closed with a log line and no access line', async () => {
  await withGateway(inbound({ proxy_protocol: 'required' }), async (g) => {
    const client = await open(g.port());
    client.write(Buffer.concat([GREETING, socks5Request('127.0.0.1', echo.port)]));
    assert.equal((await client.readToEnd()).length, 0);
    const line = await g.waitForLog((l) => l.msg === 'PROXY protocol header refused');
    assert.equal(line.reason, 'no PROXY protocol header');
    await eventually(() => g.gateway.activeConnections === 0, 'the socket released');
    assert.equal(g.sessions().length, 0);
    assert.match(
      await g.gateway.metrics.registry.metrics(),
      /^junction_connections_refused_total\{inbound="in",reason="proxy_protocol"\} 1$/m,
    );
  });
});

test('required: a header that never completes is refused at the handshake deadline', async () => {
  await withGateway(
    { ...inbound({ proxy_protocol: 'required' }), limits: { handshake_timeout: '300ms' } },
    async (g) => {
      const client = await open(g.port());
      client.write('PROXY TCP4 203.0.113.7 ');
      await client.closed(3000);
      await g.waitForLog((l) => l.msg === 'PROXY protocol header refused');
      await eventually(() => g.gateway.activeConnections === 0, 'the socket released');
      assert.equal(g.sessions().length, 0);
    },
  );
});

test('a header from a peer outside proxy_protocol_from is refused, under optional too', async () => {
  for (const mode of ['required', 'optional']) {
    await withGateway(
      inbound({ proxy_protocol: mode, proxy_protocol_from: ['10.0.0.0/8'] }),
      async (g) => {
        const client = await open(g.port());
        client.write(Buffer.concat([encodeProxyHeader(2, ALLOWED, BALANCER), GREETING]));
        assert.equal((await client.readToEnd()).length, 0, mode);
        const line = await g.waitForLog((l) => l.msg === 'PROXY protocol header refused');
        assert.match(String(line.reason), /proxy_protocol_from/);
        assert.equal(g.sessions().length, 0);
      },
    );
  }
});

test('optional: SOCKS5, HTTP and a header all work on one mixed port, and the bytes stay whole', async () => {
  await withGateway(inbound({ proxy_protocol: 'optional' }), async (g) => {
    const plain = await open(g.port());
    plain.write(Buffer.concat([GREETING, socks5Request('127.0.0.1', echo.port)]));
    assert.deepEqual([...(await plain.read(2))], [0x05, 0x00]);
    assert.equal((await plain.read(10))[1], 0x00);
    plain.socket.destroy();

    // "P" could begin "PROXY ": a POST must still reach the HTTP side intact.
    const http = await open(g.port());
    http.write(`POST http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    assert.equal((await readAnswer(http)).status, 502);
    http.socket.destroy();

    const proxied = await socksThroughHeader(g.port(), encodeProxyHeader(1, ALLOWED, BALANCER));
    assert.equal(proxied.reply, 0x00);
    proxied.client.socket.destroy();
    await eventually(() => g.sessions().length === 3, 'three access lines');
    const clients = g.sessions().map((l) => String(l.client));
    assert.ok(clients.includes('203.0.113.7:40001'), clients.join(' '));
    assert.equal(clients.filter((c) => c.startsWith('127.0.0.1:')).length, 2);
  });
});

test('TLS after a header: an https inbound and a mixed one (optional) take the header, then the handshake', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-pp-tls-'));
  const tls = selfSignedCertificate(dir);
  try {
    await withGateway(
      {
        limits: { handshake_timeout: '5s' },
        inbounds: [
          { name: 'https', type: 'https', listen: '127.0.0.1:0', tls, proxy_protocol: 'required' },
          { name: 'mixed', type: 'mixed', listen: '127.0.0.1:0', tls, proxy_protocol: 'optional' },
        ],
      },
      async (g) => {
        for (const name of ['https', 'mixed']) {
          const raw = connect({ port: g.port(name), host: '127.0.0.1' });
          sockets.add(raw);
          await once(raw, 'connect');
          raw.write(encodeProxyHeader(1, ALLOWED, BALANCER));
          const secure = tlsConnect({
            socket: raw,
            ca: readFileSync(tls.cert),
            servername: 'localhost',
          });
          await once(secure, 'secureConnect');
          secure.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
          let text = '';
          for await (const chunk of secure) {
            text += (chunk as Buffer).toString('latin1');
            if (text.includes('\r\n\r\n')) break;
          }
          assert.match(text, /^HTTP\/1\.1 200 /, name);
          secure.destroy();
          const line = await g.waitForLog((l) => l.msg === 'session' && l.inbound === name);
          assert.equal(line.client, '203.0.113.7:40001', name);
        }
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('health checks (connect and close; a LOCAL header and close) leave no access line and no socket', async () => {
  await withGateway(inbound({ proxy_protocol: 'required' }), async (g) => {
    for (const bytes of [Buffer.alloc(0), LOCAL_V2, Buffer.from('PROXY UNKNOWN\r\n')]) {
      const probe = connect({ port: g.port(), host: '127.0.0.1' });
      sockets.add(probe);
      probe.on('error', () => undefined);
      await once(probe, 'connect');
      const closed = once(probe, 'close');
      probe.end(bytes);
      await closed;
    }
    await eventually(() => g.gateway.activeConnections === 0, 'the probes released');
    assert.equal(g.sessions().length, 0);
    assert.deepEqual(refusals(g), []);
    assert.deepEqual(
      g.logs.filter((l) => l.client !== undefined && (l.level as number) >= 30).map((l) => l.msg),
      [],
      'nothing about a client above debug',
    );
  });
});

test("a LOCAL header keeps the connection's own address", async () => {
  await withGateway(inbound({ proxy_protocol: 'required' }), async (g) => {
    const { client, reply } = await socksThroughHeader(g.port(), LOCAL_V2);
    assert.equal(reply, 0x00);
    client.socket.end();
    const line = await g.waitForLog((l) => l.msg === 'session');
    assert.equal(line.client, `127.0.0.1:${client.socket.localPort}`);
  });
});

test('a stop lets a connection the balancer just opened finish its handshake, and serves it', async () => {
  const g = await startGateway(inbound({ proxy_protocol: 'required' }));
  try {
    const client = await open(g.port());
    await eventually(() => g.gateway.activeConnections === 1, 'the connection accepted');
    const stopped = g.gateway.stop(5000);
    client.write(Buffer.concat([encodeProxyHeader(2, ALLOWED, BALANCER), GREETING]));
    client.write(socks5Request('127.0.0.1', echo.port));
    assert.deepEqual([...(await client.read(2))], [0x05, 0x00]);
    assert.equal((await client.read(10))[1], 0x00);
    client.write('ping');
    assert.equal((await client.read(4)).toString(), 'ping');
    client.socket.end();
    await stopped;
    const line = await g.waitForLog((l) => l.msg === 'session');
    assert.equal(line.result, 'ok');
    assert.equal(g.gateway.activeConnections, 0);
  } finally {
    await g.stop();
  }
});

test("send_proxy_protocol: 2 names the first junction's client to a second one", async () => {
  await withGateway(inbound({ proxy_protocol: 'required' }), async (second) => {
    await withGateway(
      {
        inbounds: [{ name: 'front', type: 'socks', listen: '127.0.0.1:0' }],
        outbounds: [
          {
            name: 'back',
            url: `socks5://127.0.0.1:${second.port()}`,
            send_proxy_protocol: 2,
          },
        ],
        rules: [{ outbound: 'back' }],
      },
      async (first) => {
        const client = await open(first.port());
        client.write(Buffer.concat([GREETING, socks5Request('127.0.0.1', echo.port)]));
        assert.deepEqual([...(await client.read(2))], [0x05, 0x00]);
        assert.equal((await client.read(10))[1], 0x00);
        client.write('ping');
        assert.equal((await client.read(4)).toString(), 'ping');
        client.socket.end();
        const line = await second.waitForLog((l) => l.msg === 'session');
        assert.equal(line.client, `127.0.0.1:${client.socket.localPort}`);
        assert.equal(line.result, 'ok');
      },
    );
  });
});

test('plain http:// requests through send_proxy_protocol name each client, on connections of their own', async () => {
  const origin = await startHttpOrigin();
  try {
    await withGateway(
      {
        inbounds: [
          { name: 'back', type: 'http', listen: '127.0.0.1:0', proxy_protocol: 'required' },
        ],
      },
      async (second) => {
        await withGateway(
          {
            inbounds: [{ name: 'front', type: 'http', listen: '127.0.0.1:0' }],
            outbounds: [
              { name: 'up', url: `http://127.0.0.1:${second.port()}`, send_proxy_protocol: 2 },
            ],
            rules: [{ outbound: 'up' }],
          },
          async (first) => {
            const ports: number[] = [];
            for (let i = 0; i < 2; i++) {
              const client = await open(first.port());
              client.write(`GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
              const answer = await readAnswer(client);
              assert.equal(answer.status, 200);
              assert.equal(answer.body, 'ok\n');
              ports.push(client.socket.localPort ?? 0);
              client.socket.destroy();
            }
            for (const port of ports) {
              const line = await second.waitForLog(
                (l) => l.msg === 'session' && l.client === `127.0.0.1:${port}`,
              );
              assert.equal(line.result, 'ok');
            }
          },
        );
      },
    );
  } finally {
    await origin.close();
  }
});

test('send_proxy_protocol: 1 on a direct chain starts the target connection with a v1 header', async () => {
  let received = '';
  const target = await startTcpServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
  });
  try {
    await withGateway(
      {
        inbounds: [{ name: 'front', type: 'socks', listen: '127.0.0.1:0' }],
        outbounds: [{ name: 'named', chain: ['direct'], send_proxy_protocol: 1 }],
        rules: [{ outbound: 'named' }],
      },
      async (g) => {
        const client = await open(g.port());
        client.write(Buffer.concat([GREETING, socks5Request('127.0.0.1', target.port)]));
        await client.read(12);
        client.write('after');
        const port = client.socket.localPort;
        await eventually(() => received.endsWith('after'), 'the payload at the target');
        assert.equal(received, `PROXY TCP4 127.0.0.1 127.0.0.1 ${port} ${target.port}\r\nafter`);
      },
    );
  } finally {
    await target.close();
  }
});

test('configuration: proxy_protocol keys are checked, and -L takes ?proxy_protocol=', () => {
  assert.throws(
    () => configFrom(inbound({ proxy_protocol: 'sometimes' })),
    /inbounds\.0\.proxy_protocol/,
  );
  assert.throws(
    () => configFrom(inbound({ proxy_protocol_from: ['10.0.0.0/8'] })),
    /proxy_protocol_from applies with proxy_protocol/,
  );
  assert.throws(
    () =>
      configFrom({
        outbounds: [{ name: 'x', url: 'socks5://127.0.0.1:1', send_proxy_protocol: 3 }],
      }),
    /expected 1 or 2/,
  );
  const raw: Record<string, unknown> = {};
  amendFromUrls(
    ['socks5://127.0.0.1:0?proxy_protocol=optional&proxy_protocol_from=10.0.0.0/8,::1'],
    [],
  )(raw);
  assert.deepEqual(raw.inbounds, [
    {
      name: 'socks5-0',
      type: 'socks5',
      listen: '127.0.0.1:0',
      proxy_protocol: 'optional',
      proxy_protocol_from: ['10.0.0.0/8', '::1'],
    },
  ]);
});

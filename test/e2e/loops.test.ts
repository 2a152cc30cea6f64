import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withGateway } from '../helpers/gateway.js';
import { freePort, rawConnect } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { eventually } from '../helpers/wait.js';

/** Sends one request head on a raw connection; resolves with the whole answer. */
async function ask(port: number, head: string): Promise<string> {
  const client = await rawConnect(port);
  client.write(head);
  const answer = (await client.readToEnd()).toString('latin1');
  client.socket.destroy();
  return answer;
}

const mixed = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  inbounds: [{ name: 'in', type: 'mixed', listen: '127.0.0.1:0' }],
  ...extra,
});

test('SOCKS5 CONNECT to the gateway’s own address answers 0x02 and dials nothing', async () => {
  await withGateway(mixed(), async (g) => {
    const { client, reply } = await socks5Connect(g.port(), '127.0.0.1', g.port());
    assert.equal(reply, 0x02);
    await client.closed();
    const line = await g.waitForLog((l) => l.msg === 'session');
    assert.equal(line.result, 'FORWARDING_LOOP');
    await eventually(() => g.gateway.activeConnections === 0, 'no live connection');
  });
});

test('a name that leads back to the gateway (localhost) is a loop too', async () => {
  await withGateway(mixed(), async (g) => {
    const { client, reply } = await socks5Connect(g.port(), 'localhost', g.port());
    assert.equal(reply, 0x02);
    await client.closed();
    assert.equal(g.sessions().length, 1, 'one session, no second pass through the gateway');
  });
});

test('CONNECT and absolute-form requests to the gateway itself answer 403', async () => {
  await withGateway(mixed(), async (g) => {
    const connect = await ask(
      g.port(),
      `CONNECT 127.0.0.1:${g.port()} HTTP/1.1\r\nHost: 127.0.0.1:${g.port()}\r\n\r\n`,
    );
    assert.match(connect, /^HTTP\/1\.1 403 /);
    assert.match(connect, /forwarding loop/);
    const get = await ask(
      g.port(),
      `GET http://127.0.0.1:${g.port()}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    assert.match(get, /^HTTP\/1\.1 403 /);
    assert.match(get, /forwarding loop/);
    await eventually(() => g.gateway.activeConnections === 0, 'no live connection');
  });
});

test('the admin endpoint is not a destination, whatever deny_destinations says', async () => {
  const adminPort = await freePort();
  await withGateway(
    mixed({ admin: { listen: `127.0.0.1:${adminPort}` }, limits: { deny_destinations: [] } }),
    async (g) => {
      const { client, reply } = await socks5Connect(g.port(), '127.0.0.1', adminPort);
      assert.equal(reply, 0x02);
      await client.closed();
      const get = await ask(
        g.port(),
        `POST http://127.0.0.1:${adminPort}/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      assert.match(get, /^HTTP\/1\.1 403 /);
      assert.equal(
        g.logs.filter((l) => l.msg === 'configuration reloaded').length,
        0,
        'the admin endpoint was never reached',
      );
    },
  );
});

test('-F at the gateway’s own port is refused at the first hop, not looped', async () => {
  const port = await freePort();
  await withGateway(
    {
      inbounds: [{ name: 'in', type: 'mixed', listen: `127.0.0.1:${port}` }],
      outbounds: [{ name: 'self', url: `http://127.0.0.1:${port}` }],
      rules: [{ outbound: 'self' }],
    },
    async (g) => {
      const answer = await ask(
        port,
        'CONNECT 192.0.2.1:443 HTTP/1.1\r\nHost: 192.0.2.1:443\r\n\r\n',
      );
      assert.match(answer, /^HTTP\/1\.1 403 /);
      assert.match(answer, /forwarding loop/);
      const { client, reply } = await socks5Connect(port, '192.0.2.1', 443);
      assert.equal(reply, 0x02);
      await client.closed();
      assert.equal(g.sessions().length, 2, 'each request was one session, not a cascade');
      await eventually(() => g.gateway.activeConnections === 0, 'no live connection');
    },
  );
});

test('a listener on the wildcard address is reached through every local address', async () => {
  await withGateway(
    { inbounds: [{ name: 'in', type: 'socks', listen: '0.0.0.0:0' }] },
    async (g) => {
      for (const host of ['127.0.0.1', '127.0.0.2', '0.0.0.0']) {
        const { client, reply } = await socks5Connect(g.port(), host, g.port());
        assert.equal(reply, 0x02, host);
        await client.closed();
      }
    },
  );
});

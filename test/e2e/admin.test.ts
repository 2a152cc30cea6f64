import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import type { Config } from '../../src/config/schema.js';
import { configFrom, startGateway, type TestGateway } from '../helpers/gateway.js';
import { startTcpServer, type TcpServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';

const inbounds = [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }];
let echo: TcpServer;
let g: TestGateway;
let nextSource: () => Config;

before(async () => {
  echo = await startTcpServer((socket) => socket.pipe(socket));
  nextSource = () => configFrom({ inbounds });
  g = await startGateway(
    { inbounds, admin: { listen: '127.0.0.1:0' } },
    { source: () => nextSource() },
  );
});

after(async () => {
  await g.stop();
  await echo.close();
});

function admin(
  method: string,
  path: string,
): Promise<{ status: number; body: string; type: string }> {
  const port = g.gateway.adminAddress?.port;
  assert.ok(port, 'the admin endpoint is listening');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('GET /healthz answers 200 ok', async () => {
  assert.deepEqual(await admin('GET', '/healthz'), {
    status: 200,
    body: 'ok\n',
    type: 'text/plain; charset=utf-8',
  });
});

test('GET /metrics counts sessions, bytes and open connections in Prometheus text format', async () => {
  const { client, reply } = await socks5Connect(g.port(), '127.0.0.1', echo.port);
  assert.equal(reply, 0x00);
  client.write('twelve bytes');
  assert.equal((await client.read(12)).toString(), 'twelve bytes');
  const during = await admin('GET', '/metrics');
  assert.match(during.body, /^junction_connections_active\{inbound="s"\} 1$/m);
  client.socket.end();
  await client.closed();
  await g.waitForLog((l) => l.msg === 'session');
  const { status, body, type } = await admin('GET', '/metrics');
  assert.equal(status, 200);
  assert.match(type, /^text\/plain; version=0\.0\.4/);
  assert.match(body, /^junction_sessions_total\{inbound="s",outbound="direct",result="ok"\} 1$/m);
  assert.match(body, /^junction_bytes_total\{direction="up",inbound="s",outbound="direct"\} 12$/m);
  assert.match(
    body,
    /^junction_bytes_total\{direction="down",inbound="s",outbound="direct"\} 12$/m,
  );
  assert.match(body, /^junction_connect_seconds_count\{outbound="direct"\} 1$/m);
  assert.match(body, /^junction_process_cpu_seconds_total /m);
});

test('POST /reload applies a valid configuration and refuses an invalid one', async () => {
  nextSource = () =>
    configFrom({ inbounds, rules: [{ ip_cidr: ['127.0.0.0/8'], outbound: 'reject' }] });
  assert.deepEqual(await admin('POST', '/reload'), {
    status: 200,
    body: 'reloaded\n',
    type: 'text/plain; charset=utf-8',
  });
  assert.equal((await socks5Connect(g.port(), '127.0.0.1', echo.port)).reply, 0x02);

  nextSource = () => configFrom({ inbounds, rules: [{ outbound: 'nowhere' }] });
  const refused = await admin('POST', '/reload');
  assert.equal(refused.status, 400);
  assert.match(
    refused.body,
    /^reload refused, the running configuration stays:\n<test>:1:1: rules\.0\.outbound: unknown outbound "nowhere"\n$/,
  );
  // The previous generation is still the one in force.
  assert.equal((await socks5Connect(g.port(), '127.0.0.1', echo.port)).reply, 0x02);
  const metrics = await admin('GET', '/metrics');
  assert.match(metrics.body, /^junction_config_reloads_total\{result="ok"\} 1$/m);
  assert.match(metrics.body, /^junction_config_reloads_total\{result="refused"\} 1$/m);
});

test('the admin endpoint answers 405 to a wrong method and 404 elsewhere', async () => {
  const wrong = await admin('GET', '/reload');
  assert.equal(wrong.status, 405);
  assert.equal((await admin('POST', '/healthz')).status, 405);
  const missing = await admin('GET', '/');
  assert.equal(missing.status, 404);
  assert.equal(missing.body, 'not found: GET /healthz, GET /metrics, POST /reload\n');
});

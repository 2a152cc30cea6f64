import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { startAdmin } from '../../src/admin.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import type { Metrics } from '../../src/metrics.js';
import { configFrom, startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawConnect, startTcpServer, type TcpServer } from '../helpers/net.js';
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

interface Answer {
  status: number;
  body: string;
  type: string;
}

function admin(method: string, path: string): Promise<Answer> {
  const port = g.gateway.adminAddress?.port;
  assert.ok(port, 'the admin endpoint is listening');
  return adminAt(port, method, path).then(({ status, body, type }) => ({ status, body, type }));
}

function adminAt(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer & { headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path, headers, timeout: 5000 };
    const req = request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          type: String(res.headers['content-type']),
          headers: res.headers,
        }),
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
  assert.equal(
    missing.body,
    'not found: GET /healthz, GET /metrics, GET /proxy.pac, POST /reload, GET /sessions, DELETE /sessions/<id>\n',
  );
});

test('with admin.token, POST /reload wants it as a Bearer token; /healthz and /metrics stay open', async () => {
  const token = 'Admin-t0ken-4f9';
  const t = await startGateway(
    { inbounds, admin: { listen: '127.0.0.1:0', token } },
    { source: () => configFrom({ inbounds, admin: { listen: '127.0.0.1:0', token } }) },
  );
  try {
    const port = t.gateway.adminAddress?.port ?? 0;
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${token}`, `Bearer ${token}x`]) {
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const refused = await adminAt(port, 'POST', '/reload', headers);
      assert.equal(refused.status, 401, authorization);
      assert.equal(refused.headers['www-authenticate'], 'Bearer realm="junction"');
      assert.equal(
        refused.body,
        'POST /reload needs the admin token: Authorization: Bearer <token>\n',
      );
    }
    const refusals = t.logs.filter((l) => l.msg === 'admin request refused: no valid token');
    assert.equal(refusals.length, 4);
    assert.ok(!JSON.stringify(t.logs).includes(token), 'the token is never logged');
    const accepted = await adminAt(port, 'POST', '/reload', { authorization: `Bearer ${token}` });
    assert.equal(accepted.status, 200);
    assert.equal(accepted.body, 'reloaded\n');
    assert.equal((await adminAt(port, 'GET', '/healthz')).status, 200);
    assert.equal((await adminAt(port, 'GET', '/metrics')).status, 200);
  } finally {
    await t.stop();
  }
});

test('an admin address beyond loopback without a token logs a warning at start', async () => {
  const open = await startGateway({ inbounds, admin: { listen: '0.0.0.0:0' } });
  const warning = await open
    .waitForLog((l) => l.msg?.startsWith('admin endpoint') === true)
    .finally(() => open.stop());
  assert.equal(warning.level, 40);
  assert.equal(
    warning.msg,
    'admin endpoint listens beyond loopback without admin.token: anyone who can reach it can reload the configuration',
  );
  for (const admin of [
    { listen: '0.0.0.0:0', token: 'Admin-t0ken-4f9' },
    { listen: '127.0.0.1:0' },
  ]) {
    const quiet = await startGateway({ inbounds, admin });
    await quiet.waitForLog((l) => l.msg === 'admin listening').finally(() => quiet.stop());
    assert.ok(!quiet.logs.some((l) => l.msg?.startsWith('admin endpoint') === true));
  }
});

test('the admin endpoint survives a throwing handler, a malformed request and a client reset', async () => {
  const lines: string[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'));
        callback();
      },
    }),
  );
  const broken = {
    registry: {
      metrics: () => {
        throw new TypeError('collector broke');
      },
    },
  } as unknown as Metrics;
  const server = await startAdmin({
    listen: { host: { kind: 'ipv4', ip: '127.0.0.1' }, port: 0 },
    metrics: broken,
    log,
    reload: () => {
      // A foreign value, not an Error: the answer still says what it was.
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw 'not an Error';
    },
    token: () => undefined,
    pac: () => 'no inbound',
  });
  const { port } = server.address;
  try {
    const failed = await adminAt(port, 'GET', '/metrics');
    assert.equal(failed.status, 500);
    assert.equal(failed.body, 'internal error\n');
    const refused = await adminAt(port, 'POST', '/reload');
    assert.equal(refused.status, 400);
    assert.equal(refused.body, 'reload refused, the running configuration stays:\nnot an Error\n');

    const garbage = await rawConnect(port);
    garbage.write('NOT HTTP AT ALL\r\n\r\n');
    assert.match((await garbage.readToEnd()).toString('latin1'), /^HTTP\/1\.1 400 Bad Request\r\n/);

    const reset = await rawConnect(port);
    reset.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    reset.socket.resetAndDestroy();
    const halfway = await rawConnect(port);
    halfway.write('POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    halfway.socket.resetAndDestroy();

    assert.equal((await adminAt(port, 'GET', '/healthz')).status, 200);
    assert.ok(lines.some((l) => l.includes('"msg":"admin request failed"')));
  } finally {
    await server.close();
  }
});

test('GET /sessions lists the sessions under way; DELETE /sessions/<id> ends one; both want the token', async () => {
  const token = 'Sessions-t0ken-7';
  const t = await startGateway({ inbounds, admin: { listen: '127.0.0.1:0', token } });
  const bearer = { authorization: `Bearer ${token}` };
  try {
    const port = t.gateway.adminAddress?.port ?? 0;
    const tunnel = await socks5Connect(t.port(), '127.0.0.1', echo.port);
    assert.equal(tunnel.reply, 0x00);
    tunnel.client.write('ping');
    assert.equal((await tunnel.client.read(4)).toString(), 'ping');
    assert.equal((await adminAt(port, 'GET', '/sessions')).status, 401);
    const listed = await adminAt(port, 'GET', '/sessions', bearer);
    assert.equal(listed.status, 200);
    assert.equal(listed.type, 'application/json');
    const sessions = JSON.parse(listed.body) as Record<string, unknown>[];
    assert.equal(sessions.length, 1);
    const session = sessions[0];
    assert.ok(session);
    assert.equal(session.inbound, 's');
    assert.equal(session.protocol, 'socks5');
    assert.equal(session.target, `127.0.0.1:${echo.port}`);
    assert.equal(session.outbound, 'direct');
    assert.ok(Number(session.up) >= 4 && Number(session.down) >= 4, listed.body);
    assert.equal(typeof session.age_ms, 'number');
    const id = String(session.id);
    assert.equal((await adminAt(port, 'DELETE', `/sessions/${id}`)).status, 401);
    const closed = await adminAt(port, 'DELETE', `/sessions/${id}`, bearer);
    assert.equal(closed.status, 200);
    await tunnel.client.closed();
    const line = await t.waitForLog((l) => l.msg === 'session' && l.sid === id);
    assert.equal(line.result, 'CLOSED_BY_ADMIN');
    assert.equal((await adminAt(port, 'DELETE', `/sessions/${id}`, bearer)).status, 404);
    assert.equal((await adminAt(port, 'GET', '/sessions', bearer)).body, '[]\n');
  } finally {
    await t.stop();
  }
});

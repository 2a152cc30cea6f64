import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { rawConnect, refusedPort, startTcpServer, type TcpServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';

/** A 502 tells the client which outbound failed and how, never the proxy's URL or password. */

const PASSWORD = 'E2e-secret-Pw9';
let demanding: TcpServer;
let g: TestGateway;
let deadPort: number;

before(async () => {
  // An upstream proxy that answers every CONNECT with 407.
  demanding = await startTcpServer((socket) => {
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.end(
          'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n',
        );
      }
    });
  });
  deadPort = await refusedPort();
  g = await startGateway({
    inbounds: [{ name: 'h', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [
      { name: 'corp', url: `http://user@corp.example:${PASSWORD}@127.0.0.1:${demanding.port}` },
      { name: 'gone', url: `http://svc:${PASSWORD}:x@y@127.0.0.1:${deadPort}` },
    ],
    rules: [{ domain: ['gone.test'], outbound: 'gone' }, { outbound: 'corp' }],
  });
});

after(async () => {
  await g.stop();
  await demanding.close();
});

async function connectAnswer(authority: string): Promise<string> {
  const client = await rawConnect(g.port());
  client.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  return (await client.readToEnd()).toString('utf8');
}

test('an upstream that refuses our credentials: the 502 body names the outbound, not its URL', async () => {
  const answer = await connectAnswer('example.test:443');
  assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.ok(
    answer.endsWith(
      '\r\n\r\n502 Bad Gateway: upstream proxy "corp" authentication failed (Basic)\n',
    ),
    answer,
  );
  const line = await g.waitForLog((l) => l.msg === 'session' && l.target === 'example.test:443');
  assert.equal(line.error, 'upstream proxy "corp" authentication failed (Basic)');
});

test('an upstream that cannot be reached: the 502 body names the outbound, not its address', async () => {
  const answer = await connectAnswer('gone.test:443');
  assert.ok(
    answer.endsWith('\r\n\r\n502 Bad Gateway: cannot reach upstream proxy "gone": ECONNREFUSED\n'),
    answer,
  );
  await g.waitForLog((l) => l.msg === 'session' && l.target === 'gone.test:443');
  const everything = g.logs.map((l) => JSON.stringify(l)).join('\n');
  for (const secret of [PASSWORD, 'corp.example', String(demanding.port), String(deadPort)]) {
    assert.ok(!everything.includes(secret), `"${secret}" in the log`);
  }
});

test('an upstream password from password_env reaches the upstream and nowhere else', async () => {
  const variable = 'JUNCTION_E2E_UPSTREAM_PW';
  process.env[variable] = PASSWORD;
  const echo = await startTcpServer((socket) => socket.pipe(socket));
  const upstream = await startGateway({
    inbounds: [
      {
        name: 'up',
        type: 'socks5',
        listen: '127.0.0.1:0',
        auth: { users: [{ username: 'svc', password: PASSWORD }] },
      },
    ],
  });
  const front = await startGateway({
    inbounds: [{ name: 'front', type: 'socks5', listen: '127.0.0.1:0' }],
    outbounds: [
      { name: 'up', url: `socks5://svc@127.0.0.1:${upstream.port()}`, password_env: variable },
    ],
    rules: [{ outbound: 'up' }],
  });
  try {
    const { client, reply } = await socks5Connect(front.port(), '127.0.0.1', echo.port);
    assert.equal(reply, 0x00);
    client.write('through the upstream');
    assert.equal((await client.read(20)).toString(), 'through the upstream');
    client.socket.destroy();
    const line = await upstream.waitForLog((l) => l.msg === 'session');
    assert.equal(line.user, 'svc', 'the upstream authenticated the password from the variable');
    for (const l of [...front.logs, ...upstream.logs]) {
      assert.ok(!JSON.stringify(l).includes(PASSWORD), 'the password is never logged');
    }
  } finally {
    Reflect.deleteProperty(process.env, variable);
    await front.stop();
    await upstream.stop();
    await echo.close();
  }
});

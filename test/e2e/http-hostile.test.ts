import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  rawConnect,
  startHttpOrigin,
  startTcpServer,
  type HttpOrigin,
  type RawClient,
  type TcpServer,
} from '../helpers/net.js';

let origin: HttpOrigin;
let g: TestGateway;
const clients: RawClient[] = [];

before(async () => {
  origin = await startHttpOrigin();
  g = await startGateway({ inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }] });
});

after(async () => {
  for (const client of clients) client.socket.destroy();
  await g.stop();
  await origin.close();
});

async function open(port: number): Promise<RawClient> {
  const client = await rawConnect(port);
  clients.push(client);
  return client;
}

interface Answer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** Reads one response with a Content-Length body (or none). */
async function readAnswer(client: RawClient, timeoutMs = 5000): Promise<Answer> {
  const head = (await client.readUntil('\r\n\r\n', timeoutMs)).toString('latin1');
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const body = length > 0 ? (await client.read(length, timeoutMs)).toString('latin1') : '';
  return { status: Number(head.slice(9, 12)), head, body };
}

const local = (port: number): string => `127.0.0.1:${port}`;

// Framing cannot be removed by Connection

/** Sends `request` on a new connection; resolves with the answer and what the origin saw. */
async function forwardOnce(request: string, marker: string): Promise<Answer> {
  const client = await open(g.port('web'));
  client.write(request);
  const answer = await readAnswer(client);
  client.socket.destroy();
  assert.ok(
    origin.requests.some((r) => r.url.includes(marker)),
    `the origin never saw ${marker}`,
  );
  return answer;
}

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n';

test('Connection: content-length cannot unframe a body: the origin sees one request, body intact', async () => {
  const target = local(origin.port);
  for (const method of ['GET', 'POST', 'DELETE']) {
    const marker = `/echo?cl-${method}`;
    const answer = await forwardOnce(
      `${method} http://${target}${marker} HTTP/1.1\r\nHost: ${target}\r\nConnection: Content-Length\r\n` +
        `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
      marker,
    );
    assert.equal(answer.status, 200, method);
    const seen = origin.requests.filter((r) => r.url === marker);
    assert.equal(seen.length, 1, method);
    assert.equal(seen[0]!.body.toString('latin1'), SMUGGLED, method);
    assert.equal(seen[0]!.headers.host, target);
    assert.equal(seen[0]!.headers['content-length'], String(SMUGGLED.length));
  }
  assert.ok(!origin.requests.some((r) => r.url === '/smuggled'), 'a smuggled request got through');
});

test('Connection: transfer-encoding cannot unframe a chunked body', async () => {
  const target = local(origin.port);
  const marker = '/echo?te';
  const chunk = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
  const answer = await forwardOnce(
    `GET http://${target}${marker} HTTP/1.1\r\nHost: ${target}\r\nConnection: transfer-encoding\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n${chunk}`,
    marker,
  );
  assert.equal(answer.status, 200);
  const seen = origin.requests.filter((r) => r.url === marker);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.body.toString('latin1'), SMUGGLED);
  assert.equal(seen[0]!.headers['transfer-encoding'], 'chunked');
  assert.ok(!origin.requests.some((r) => r.url === '/smuggled'), 'a smuggled request got through');
});

test('Connection: host cannot remove Host: the origin sees the URL authority', async () => {
  const target = local(origin.port);
  const marker = '/tiny?conn-host';
  const answer = await forwardOnce(
    `GET http://${target}${marker} HTTP/1.1\r\nHost: evil.example\r\nConnection: host\r\n\r\n`,
    marker,
  );
  assert.equal(answer.status, 200);
  const seen = origin.requests.filter((r) => r.url === marker);
  assert.equal(seen.length, 1);
  assert.deepEqual(
    seen[0]!.rawHeaders.filter((_, i) => i % 2 === 0 && _.toLowerCase() === 'host'),
    ['Host'],
  );
  assert.equal(seen[0]!.headers.host, target);
});

test('a request with both Content-Length and Transfer-Encoding answers 400 and reaches no origin', async () => {
  const target = local(origin.port);
  const before = origin.requests.length;
  const client = await open(g.port('web'));
  client.write(
    `POST http://${target}/echo?both HTTP/1.1\r\nHost: ${target}\r\nContent-Length: 4\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  );
  const answer = await readAnswer(client);
  assert.equal(answer.status, 400);
  assert.match(answer.head, /\r\nConnection: close\r\n/);
  await client.closed();
  assert.equal(origin.requests.length, before);
});

test("the origin's Connection: content-length does not strip the response's framing", async () => {
  const server = await startTcpServer((socket) => {
    socket.once('data', () =>
      socket.write(
        'HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello',
      ),
    );
  });
  try {
    const target = local(server.port);
    const client = await open(g.port('web'));
    client.write(`GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    const head = (await client.readUntil('\r\n\r\n')).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nContent-Length: 5\r\n/);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.equal((await client.read(5)).toString(), 'hello');
  } finally {
    await server.close();
  }
});

// Retries

/**
 * An origin whose first connection answers its first request, then closes without answering
 * when the second arrives on it (as a server whose keep-alive timeout just passed). Every
 * other connection answers everything.
 */
async function startClosingOrigin(): Promise<{ server: TcpServer; seen: string[] }> {
  const seen: string[] = [];
  let connections = 0;
  const server = await startTcpServer((socket) => {
    const index = connections++;
    let buffered = '';
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        seen.push(head.split(' ', 2).join(' '));
        if (index === 0 && answered === 1) {
          socket.destroy();
          return;
        }
        answered++;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n');
      }
    });
  });
  return { server, seen };
}

for (const [method, retried] of [
  ['POST', false],
  ['GET', true],
] as const) {
  test(`a bodyless ${method} on a kept-alive connection the origin closes is ${retried ? '' : 'not '}sent again`, async () => {
    const { server, seen } = await startClosingOrigin();
    try {
      const target = local(server.port);
      const client = await open(g.port('web'));
      client.write(`GET http://${target}/prime HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      assert.equal((await readAnswer(client)).status, 200);
      client.write(
        `${method} http://${target}/again HTTP/1.1\r\nHost: ${target}\r\nContent-Length: 0\r\n\r\n`,
      );
      const answer = await readAnswer(client);
      const sent = seen.filter((line) => line === `${method} /again`).length;
      if (retried) {
        assert.equal(answer.status, 200);
        assert.equal(sent, 2);
      } else {
        assert.equal(answer.status, 502);
        assert.equal(sent, 1);
      }
    } finally {
      await server.close();
    }
  });
}

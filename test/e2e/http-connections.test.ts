import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  rawConnect,
  readAnswer,
  startHttpOrigin,
  startTcpServer,
  type HttpOrigin,
} from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';

let origin: HttpOrigin;
let g: TestGateway;
let originConnections = 0;

before(async () => {
  origin = await startHttpOrigin();
  origin.server.on('connection', () => originConnections++);
  g = await startGateway({ inbounds: [{ name: 'h', type: 'http', listen: '127.0.0.1:0' }] });
});

after(async () => {
  await g.stop();
  await origin.close();
});

const local = (port: number): string => `127.0.0.1:${port}`;

test('a client leaving while backpressure holds a response that ends with its connection: the origin connection closes, the gateway serves on', async () => {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let originSide: Socket | undefined;
  const flooding = await startTcpServer((socket) => {
    originSide = socket;
    socket.once('data', () => {
      // No length: the body ends when the connection does.
      socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
      const pump = (): void => {
        while (!socket.destroyed && socket.write(chunk));
      };
      socket.on('drain', pump);
      pump();
    });
  });
  try {
    const client = connect({ port: g.port(), host: '127.0.0.1' });
    client.on('error', () => undefined);
    await once(client, 'connect');
    // Never read: the gateway's writes to this client back up, then it stops reading the origin.
    client.pause();
    client.write(`GET http://${local(flooding.port)}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    await eventually(
      () => (originSide?.writableLength ?? 0) > 0 && originSide?.writableNeedDrain === true,
      'the origin held back',
    );
    client.destroy();
    const line = await g.waitForLog(
      (l) => l.msg === 'session' && l.target === local(flooding.port),
    );
    assert.equal(line.result, 'CLIENT_CLOSED');
    await eventually(() => originSide?.destroyed === true, 'the origin connection closed');
    const next = await rawConnect(g.port());
    next.write(`GET ${origin.url}/tiny HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal((await readAnswer(next)).status, 200);
    next.socket.destroy();
  } finally {
    await flooding.close();
  }
});

test('Expect: 100-continue after a kept-alive request to the same origin: the 100 comes from the origin', async () => {
  const client = await rawConnect(g.port());
  client.write(`GET ${origin.url}/tiny?first HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal((await readAnswer(client)).status, 200);
  client.write(
    `POST ${origin.url}/echo?continue HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`,
  );
  assert.match((await client.readUntil('\r\n\r\n')).toString(), /^HTTP\/1\.1 100 Continue\r\n/);
  client.write('hello');
  assert.equal((await readAnswer(client)).status, 200);
  assert.match((await client.readUntil('0\r\n\r\n')).toString(), /hello/);
  assert.equal(origin.requests.find((r) => r.url === '/echo?continue')?.body.toString(), 'hello');
  // The connection kept from the first request still serves the next one.
  const before = originConnections;
  client.write(`GET ${origin.url}/tiny?after HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal((await readAnswer(client)).status, 200);
  assert.equal(originConnections, before);
  client.socket.destroy();
});

test('an origin answering before it reads the upload: the client gets the answer', async () => {
  const early = await startTcpServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig\n');
    });
  });
  try {
    const client = await rawConnect(g.port());
    client.write(
      `POST http://${local(early.port)}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n`,
    );
    client.write(Buffer.alloc(64 * 1024, 0x62));
    const answer = await readAnswer(client);
    assert.equal(answer.status, 413);
    assert.equal(answer.body, 'big\n');
    client.socket.destroy();
    const line = await g.waitForLog((l) => l.msg === 'session' && l.target === local(early.port));
    assert.equal(line.result, 'ok');
  } finally {
    await early.close();
  }
});

test('requests with and without a body, one after the other, share the kept origin connection', async () => {
  const client = await rawConnect(g.port());
  const before = originConnections;
  for (let round = 0; round < 3; round++) {
    client.write(`GET ${origin.url}/tiny?round=${round} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal((await readAnswer(client)).status, 200);
    client.write(
      `POST ${origin.url}/tiny?round=${round} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody`,
    );
    assert.equal((await readAnswer(client)).status, 200);
  }
  assert.ok(originConnections - before <= 1, `${originConnections - before} connections`);
  client.socket.destroy();
});

test('a request still waiting for its origin when the gateway stops is logged as SHUTDOWN, and the origin connection closes', async () => {
  let asked = false;
  let hungUp = false;
  const silent = await startTcpServer((socket) => {
    socket.once('data', () => {
      asked = true;
    });
    // Half-open by default here: the peer's FIN ends the reading side only.
    socket.once('end', () => {
      hungUp = true;
    });
  });
  const own = await startGateway({
    inbounds: [{ name: 'h', type: 'http', listen: '127.0.0.1:0' }],
  });
  try {
    const client = await rawConnect(own.port());
    client.write(`GET http://${local(silent.port)}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    await eventually(() => asked, 'the request at the origin');
    await own.gateway.stop(50);
    const line = await own.waitForLog(
      (l) => l.msg === 'session' && l.target === local(silent.port),
    );
    assert.equal(line.result, 'SHUTDOWN');
    await eventually(() => hungUp, 'the origin connection closed');
    client.socket.destroy();
  } finally {
    await silent.close();
  }
});

for (const [name, body, ending, broken] of [
  ['a FIN before the Content-Length is reached', 'Content-Length: 38\r\n\r\nshort', 'fin', ''],
  [
    'broken chunk framing',
    'Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n',
    'framing',
    'XYZ\r\n0\r\n\r\n',
  ],
] as const) {
  test(
    `a request body cut short by ${name}: the connection and the origin's close at once, not at idle_timeout`,
    { timeout: 15_000 },
    async () => {
      let originSide: Socket | undefined;
      let originEnded = false;
      const seen = await startTcpServer((socket) => {
        socket.on('data', () => {
          originSide = socket;
        });
        socket.on('end', () => {
          originEnded = true;
        });
      });
      try {
        const client = connect({ port: g.port(), host: '127.0.0.1', allowHalfOpen: true });
        client.on('error', () => undefined);
        client.on('end', () => client.end());
        const closed = once(client, 'close');
        await once(client, 'connect');
        client.write(`POST http://${local(seen.port)}/upload HTTP/1.1\r\nHost: x\r\n${body}`);
        // The request is at the origin, waiting for the rest of its body, when the body breaks off.
        await eventually(() => originSide !== undefined, 'the request reached the origin');
        if (ending === 'fin') client.end();
        else client.write(broken);
        // The gateway's idle_timeout is the default (minutes): only the cut can close it now.
        await closed;
        const line = await g.waitForLog(
          (l) => l.msg === 'session' && l.target === local(seen.port),
        );
        assert.equal(line.result, 'CLIENT_CLOSED');
        await eventually(() => originEnded, 'the origin connection closed');
      } finally {
        await seen.close();
      }
    },
  );
}

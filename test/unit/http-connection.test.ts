import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Dispatcher } from 'undici';
import { HttpConnection } from '../../src/outbound/http-connection.js';

// undici's callback-style handler: the one junction's exchange implements.
/* eslint-disable @typescript-eslint/no-deprecated */
function get(conn: HttpConnection): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    const handler: Dispatcher.DispatchHandler = {
      onConnect: () => undefined,
      onHeaders: () => true,
      onData: (chunk: Buffer) => {
        body += chunk.toString();
        return true;
      },
      onComplete: () => {
        resolve(body);
      },
      onError: reject,
    };
    conn.dispatcher().dispatch({ method: 'GET', path: '/', headers: ['Host', 'x'] }, handler);
  });
}
/* eslint-enable @typescript-eslint/no-deprecated */

test('a connection handed to undici carries requests and is never dialled again once closed', async () => {
  let connections = 0;
  const server = createServer((_req, res) => res.end('ok'));
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const conn = new HttpConnection(socket);
    assert.equal(conn.adopted, false);
    assert.equal(await get(conn), 'ok');
    assert.equal(await get(conn), 'ok');
    assert.equal(conn.adopted, true);
    // Not once(): undici closes the socket with an error, which once() would throw.
    const closed = new Promise((resolve) => socket.on('close', resolve));
    server.closeAllConnections();
    await closed;
    assert.equal(conn.usable, false);
    await assert.rejects(get(conn), { code: 'ECONNRESET' });
    assert.equal(connections, 1);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startTcpServer, type TcpServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';

/** A target the resolver reads as an IPv4 address is that address for every rule. */

let echo: TcpServer;
let g: TestGateway;

before(async () => {
  echo = await startTcpServer((socket) => socket.pipe(socket));
  g = await startGateway({
    inbounds: [{ name: 's', type: 'socks', listen: '127.0.0.1:0' }],
    rules: [{ ip_cidr: ['127.0.0.0/8'], outbound: 'reject' }],
  });
});

after(async () => {
  await g.stop();
  await echo.close();
});

test('an ip_cidr reject rule holds for every spelling of 127.0.0.1 sent as a name', async () => {
  for (const spelling of [
    '0x7f.1',
    '0x7f000001',
    '127.1',
    '2130706433',
    '0177.0.0.1',
    '0x7f.0.1',
  ]) {
    const { client, reply } = await socks5Connect(g.port(), spelling, echo.port);
    client.socket.destroy();
    assert.equal(reply, 0x02, spelling);
  }
  const lines = g.sessions();
  assert.equal(lines.length, 6);
  for (const line of lines) {
    assert.equal(line.target, `127.0.0.1:${echo.port}`);
    assert.equal(line.result, 'RULE_REJECT');
  }
  assert.equal(echo.sockets.length, 0, 'nothing reached the origin');
});

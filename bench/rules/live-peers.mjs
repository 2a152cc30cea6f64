// The two ends of a live session, in a worker thread of npm run bench:rules (live-tunnel.ts):
// an echo origin, one CONNECT tunnel to it through the gateway, and a ping going round it back
// to back while the parent measures. Answers `stop` with the longest round trip.
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

const origin = createServer((socket) => {
  socket.on('error', () => undefined);
  socket.pipe(socket);
});
origin.listen(0, '127.0.0.1');
await once(origin, 'listening');
const originPort = origin.address().port;
const client = connect(workerData.proxyPort, '127.0.0.1');
await once(client, 'connect');
client.write(`CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`);
const [head] = await once(client, 'data');
const status = head.toString('latin1').split('\r\n')[0] ?? '';

const state = { measuring: false, longestMs: 0, pings: 0 };
async function pingLoop() {
  while (state.measuring) {
    const sent = performance.now();
    client.write('ping\n');
    await once(client, 'data');
    state.longestMs = Math.max(state.longestMs, performance.now() - sent);
    state.pings++;
  }
  parentPort.postMessage({ longestMs: state.longestMs, pings: state.pings });
}

parentPort.on('message', (command) => {
  if (command === 'measure') {
    Object.assign(state, { measuring: true, longestMs: 0, pings: 0 });
    void pingLoop();
  } else if (command === 'stop') {
    state.measuring = false;
  } else {
    client.destroy();
    origin.close();
    parentPort.close();
  }
});
parentPort.postMessage(status.startsWith('HTTP/1.1 200') ? 'ready' : `tunnel refused: ${status}`);

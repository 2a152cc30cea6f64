// npm run bench: junction's loopback throughput, tunnel rate, latency and CPU per new tunnel,
// beside a direct connection and a bare Node.js relay (bench/bare-relay.mjs: the least a Node
// proxy can do) measured in the same run; then plain http:// forwarding with kept-alive
// connections beside a bare Node.js forward proxy (bench/bare-forward.mjs). Self-contained: the
// origins, the built gateway (dist/main.js) and the bare proxies as child processes, and the
// load generator all run here, on 127.0.0.1. Client, proxy and origin share the machine's
// cores: read the ratios.
//
//   BENCH_MB=512 BENCH_SECS=3 BENCH_CONCURRENCY=50 npm run bench
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const MB = Number(process.env.BENCH_MB ?? 512);
const RATE_SECS = Number(process.env.BENCH_SECS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const LATENCY_REQUESTS = Number(process.env.BENCH_LATENCY_REQS ?? 500);
const BULK_REPS = 3;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

/** Origin protocol: the client sends "B <bytes>\n" (bulk) or "T\n" (tiny); the origin answers and closes. */
async function startOrigin() {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      socket.off('data', onData);
      const line = head.slice(0, nl);
      if (line.startsWith('B ')) writeBulk(socket, Number(line.slice(2)));
      else socket.end('ok\n');
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: server.address().port };
}

function writeBulk(socket, total) {
  let left = total;
  const pump = () => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= piece.length;
      if (!socket.write(piece)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Reads from `socket` until `n` bytes have arrived; resolves with the bytes (or rejects on close). */
function readBytes(socket, n) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) {
        cleanup();
        if (got.length > n) socket.unshift(got.subarray(n));
        resolve(got.subarray(0, n));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('closed during handshake'));
    };
    // Paused between reads so bytes put back with unshift() wait for the next reader.
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
    socket.resume();
  });
}

async function readUntil(socket, marker) {
  let got = '';
  while (!got.includes(marker)) got += (await readBytes(socket, 1)).toString('latin1');
  return got;
}

/**
 * Opens a stream to the origin the way `mode` says: `{ kind: 'direct' }`, or `{ kind: 'socks5' |
 * 'connect', proxy: { socks, http } }` through that proxy.
 */
async function openTunnel(row, originPort) {
  const mode = row.kind;
  const port =
    mode === 'direct' ? originPort : mode === 'socks5' ? row.proxy.socks : row.proxy.http;
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  if (mode === 'socks5') {
    socket.write(Buffer.from([5, 1, 0]));
    await readBytes(socket, 2);
    const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, originPort >> 8, originPort & 0xff]);
    socket.write(req);
    const reply = await readBytes(socket, 10);
    if (reply[1] !== 0) throw new Error(`SOCKS5 reply ${reply[1]}`);
  } else if (mode === 'connect') {
    socket.write(
      `CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`,
    );
    const head = await readUntil(socket, '\r\n\r\n');
    if (!head.startsWith('HTTP/1.1 200')) throw new Error(head.split('\r\n')[0]);
  }
  return socket;
}

async function drain(socket) {
  let bytes = 0;
  socket.on('data', (chunk) => (bytes += chunk.length));
  socket.resume();
  await once(socket, 'end');
  socket.destroy();
  return bytes;
}

async function bulk(row, originPort) {
  const total = MB * 1024 * 1024;
  const socket = await openTunnel(row, originPort);
  const started = process.hrtime.bigint();
  socket.write(`B ${total}\n`);
  const bytes = await drain(socket);
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (bytes !== total) throw new Error(`${row.name}: got ${bytes} of ${total} bytes`);
  return bytes / 1e6 / secs;
}

async function oneRequest(row, originPort) {
  const started = process.hrtime.bigint();
  const socket = await openTunnel(row, originPort);
  socket.write('T\n');
  await drain(socket);
  return Number(process.hrtime.bigint() - started) / 1e3;
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid) {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * CONCURRENCY clients running `once` back to back for RATE_SECS: per second, errors, and the CPU
 * µs of process `pid` per completed run.
 */
async function load(pid, once) {
  const cpuBefore = cpuSeconds(pid);
  const deadline = performance.now() + RATE_SECS * 1000;
  let done = 0;
  let errors = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      try {
        await once();
        done++;
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const secs = (performance.now() - started) / 1000;
  const cpuAfter = cpuSeconds(pid);
  const cpuUs =
    cpuBefore === undefined || cpuAfter === undefined || done === 0
      ? undefined
      : ((cpuAfter - cpuBefore) * 1e6) / done;
  return { perSec: done / secs, errors, cpuUs };
}

async function rate(row, originPort) {
  const { perSec, errors, cpuUs } = await load(row.pid, () => oneRequest(row, originPort));
  return { perSec, errors, cpuUsPerTunnel: cpuUs };
}

async function latency(row, originPort) {
  const samples = [];
  for (let i = 0; i < LATENCY_REQUESTS; i++) samples.push(await oneRequest(row, originPort));
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Starts a proxy child process and waits until its SOCKS5 port answers. */
async function startProxy(args, originPort) {
  const proxy = { socks: await freePort(), http: await freePort() };
  const child = spawn(process.execPath, args(proxy), { stdio: ['ignore', 'ignore', 'inherit'] });
  await untilAnswering(child, async () => {
    (await openTunnel({ kind: 'socks5', proxy }, originPort)).destroy();
  });
  return { proxy, child };
}

/** Retries `probe` until the child proxy answers it (about 5 s), or stops the child. */
async function untilAnswering(child, probe) {
  for (let tries = 0; ; tries++) {
    try {
      await probe();
      return;
    } catch (err) {
      if (tries > 100) {
        child.kill('SIGTERM');
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** An HTTP origin for the forwarding rows: every request gets `ok\n`, connections kept alive. */
async function startHttpOrigin() {
  const server = createHttpServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '3' });
    res.end('ok\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: server.address().port };
}

/** One GET on a kept-alive connection of `agent`: through `proxyPort` in absolute form, or direct. */
function forwardedGet(agent, originPort, proxyPort) {
  const url = `http://127.0.0.1:${originPort}/tiny`;
  const options =
    proxyPort === undefined
      ? { host: '127.0.0.1', port: originPort, path: '/tiny', agent }
      : {
          host: '127.0.0.1',
          port: proxyPort,
          path: url,
          agent,
          headers: { Host: `127.0.0.1:${originPort}` },
        };
  return new Promise((resolve, reject) => {
    const req = httpRequest(options, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () =>
        res.statusCode === 200 && body === 'ok\n'
          ? resolve()
          : reject(new Error(`${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Requests per second and the proxy's CPU µs per request, CONCURRENCY kept-alive clients. */
async function forwardRate(row, originPort) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  // Connections opened before the clock starts: what is measured is the kept-alive request.
  await Promise.all(
    Array.from({ length: CONCURRENCY }, () => forwardedGet(agent, originPort, row.port)),
  );
  const { perSec, errors, cpuUs } = await load(row.pid, () =>
    forwardedGet(agent, originPort, row.port),
  );
  agent.destroy();
  return { perSec, errors, cpuUsPerRequest: cpuUs };
}

/** Starts a forward proxy child and waits until a request through it is answered. */
async function startForwardProxy(args, originPort) {
  const port = await freePort();
  const child = spawn(process.execPath, args(port), { stdio: ['ignore', 'ignore', 'inherit'] });
  const agent = new Agent({ keepAlive: false });
  await untilAnswering(child, () => forwardedGet(agent, originPort, port));
  return { port, child };
}

async function forwarding(mainJs) {
  const origin = await startHttpOrigin();
  const bareForwardJs = fileURLToPath(new URL('./bare-forward.mjs', import.meta.url));
  const junction = await startForwardProxy(
    (port) => [mainJs, '-L', `http://127.0.0.1:${port}`],
    origin.port,
  );
  const bare = await startForwardProxy((port) => [bareForwardJs, String(port)], origin.port);
  try {
    const rows = [
      { name: 'direct (no proxy)' },
      { name: 'junction forward', port: junction.port, pid: junction.child.pid },
      { name: 'bare Node forward', port: bare.port, pid: bare.child.pid },
    ];
    const results = [];
    for (const row of rows) results.push(await forwardRate(row, origin.port));
    const direct = results[0];
    console.log(
      `\nplain http:// forwarding, ${CONCURRENCY} kept-alive clients for ${RATE_SECS}s (origin and clients share this process)\n`,
    );
    console.log('| path | req/s | vs direct | proxy CPU µs per request | errors |');
    console.log('|---|--:|--:|--:|--:|');
    rows.forEach((row, i) => {
      const r = results[i];
      const cpu = r.cpuUsPerRequest === undefined ? '—' : r.cpuUsPerRequest.toFixed(0);
      console.log(
        `| ${row.name} | ${r.perSec.toFixed(0)} | ${(r.perSec / direct.perSec).toFixed(2)}x | ${cpu} | ${r.errors} |`,
      );
    });
  } finally {
    junction.child.kill('SIGTERM');
    bare.child.kill('SIGTERM');
    origin.server.close();
    origin.server.closeAllConnections();
  }
}

async function main() {
  const origin = await startOrigin();
  const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const bareJs = fileURLToPath(new URL('./bare-relay.mjs', import.meta.url));
  const junction = await startProxy(
    (p) => [mainJs, '-L', `socks5://127.0.0.1:${p.socks}`, '-L', `http://127.0.0.1:${p.http}`],
    origin.port,
  );
  const bare = await startProxy((p) => [bareJs, String(p.socks), String(p.http)], origin.port);
  try {
    const rows = [
      { name: 'direct (no proxy)', kind: 'direct' },
      { name: 'junction SOCKS5', kind: 'socks5', proxy: junction.proxy, pid: junction.child.pid },
      { name: 'bare Node SOCKS5', kind: 'socks5', proxy: bare.proxy, pid: bare.child.pid },
      { name: 'junction CONNECT', kind: 'connect', proxy: junction.proxy, pid: junction.child.pid },
      { name: 'bare Node CONNECT', kind: 'connect', proxy: bare.proxy, pid: bare.child.pid },
    ];
    const results = new Map(rows.map((row) => [row, { bulk: [] }]));
    for (let rep = 0; rep < BULK_REPS; rep++) {
      for (const row of rows) results.get(row).bulk.push(await bulk(row, origin.port));
    }
    for (const row of rows) results.get(row).rate = await rate(row, origin.port);
    for (const row of rows) results.get(row).p50 = await latency(row, origin.port);

    const direct = results.get(rows[0]);
    const directBulk = median(direct.bulk);
    console.log(
      `junction loopback benchmark (node ${process.version}, ${MB} MiB bulk x${BULK_REPS}, ` +
        `c=${CONCURRENCY} for ${RATE_SECS}s, ${LATENCY_REQUESTS} sequential requests)\n`,
    );
    console.log(
      '| path | bulk MB/s | vs direct | new tunnels/s | vs direct | proxy CPU µs per tunnel | c=1 p50 µs | added µs | errors |',
    );
    console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const row of rows) {
      const r = results.get(row);
      const b = median(r.bulk);
      const cpu = r.rate.cpuUsPerTunnel === undefined ? '—' : r.rate.cpuUsPerTunnel.toFixed(0);
      console.log(
        `| ${row.name} | ${b.toFixed(0)} | ${(b / directBulk).toFixed(2)}x | ${r.rate.perSec.toFixed(0)} | ` +
          `${(r.rate.perSec / direct.rate.perSec).toFixed(2)}x | ${cpu} | ${r.p50.toFixed(0)} | ` +
          `${(r.p50 - direct.p50).toFixed(0)} | ${r.rate.errors} |`,
      );
    }
  } finally {
    junction.child.kill('SIGTERM');
    bare.child.kill('SIGTERM');
    origin.server.close();
  }
  await forwarding(mainJs);
}

await main();

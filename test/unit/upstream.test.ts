import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable, type Duplex } from 'node:stream';
import { configFrom } from '../helpers/gateway.js';
import { httpStatus, ProxyError, REPLIES, socks5Reply } from '../../src/errors.js';
import { maskUrl, parseOutboundUrl } from '../../src/config/url.js';
import { createLogger } from '../../src/log.js';
import { refusal } from '../../src/outbound/http-hop.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { fromSocksError, SOCKS5_REPLY_NAMES } from '../../src/outbound/socks-hop.js';
import type { DialContext } from '../../src/outbound/types.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { parseHost, type Target } from '../../src/target.js';

/**
 * Upstream hops against minimal fake proxies on loopback: the exact mapping of every upstream
 * answer to a ProxyError (code, SOCKS5 reply, HTTP status), bytes that arrive with the answer,
 * and that no password reaches an error or a log line.
 */

const PASSWORD = 'Unit-secret-pw-1';
const LABEL = '"up"';

const lines: string[] = [];
const log = createLogger(
  'trace',
  new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  }),
);
const errors: ProxyError[] = [];

function context(timeoutMs = 5000): DialContext {
  return {
    signal: AbortSignal.timeout(timeoutMs),
    log,
    deadline: Date.now() + timeoutMs,
  };
}

const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });

/** Dials `url` (one outbound of that URL) and returns the ProxyError it fails with. */
async function failure(url: string, to: Target, ctx = context()): Promise<ProxyError> {
  const outbound = outboundFor(url);
  try {
    const conn = await outbound.dial(to, ctx);
    conn.stream.destroy();
  } catch (err) {
    assert.ok(err instanceof ProxyError, `not a ProxyError: ${String(err)}`);
    errors.push(err);
    log.info({ err }, 'dial failed');
    return err;
  }
  throw new Error(`${url} did not fail`);
}

function outboundFor(url: string, extra: Record<string, unknown> = {}) {
  const config = configFrom({ outbounds: [{ name: 'up', url, ...extra }] });
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([])).get('up');
  assert.ok(outbound);
  return outbound;
}

// ---- pure mappings -------------------------------------------------------------------------

test("the REP names match the socks package's Socks5Response enum (socks is pinned ~2.8.10)", () => {
  const require = createRequire(import.meta.url);
  const constants = require('socks/build/common/constants.js') as {
    Socks5Response: Record<string, number | string>;
  };
  for (const [name, rep] of SOCKS5_REPLY_NAMES) {
    assert.equal(constants.Socks5Response[name], rep, name);
    assert.equal(constants.Socks5Response[rep], name, `0x0${rep}`);
  }
  const numeric = Object.values(constants.Socks5Response).filter((v) => typeof v === 'number');
  assert.equal(numeric.length, SOCKS5_REPLY_NAMES.size + 1, 'every REP but Granted is mapped');
});

const REP_TABLE: readonly [string, number, string, number][] = [
  ['Failure', 0x01, 'UPSTREAM_FAILED', 502],
  ['NotAllowed', 0x02, 'UPSTREAM_REFUSED', 502],
  ['NetworkUnreachable', 0x03, 'NET_UNREACHABLE', 502],
  ['HostUnreachable', 0x04, 'HOST_UNREACHABLE', 502],
  ['ConnectionRefused', 0x05, 'CONN_REFUSED', 502],
  ['TTLExpired', 0x06, 'UPSTREAM_TIMEOUT', 504],
  ['CommandNotSupported', 0x07, 'UPSTREAM_FAILED', 502],
  ['AddressNotSupported', 0x08, 'UPSTREAM_FAILED', 502],
];

test('an upstream SOCKS5 REP keeps its byte for a SOCKS5 client and maps to an HTTP status', () => {
  for (const [name, rep, code, status] of REP_TABLE) {
    const err = fromSocksError(`Socks5 proxy rejected connection - ${name}`, LABEL, 'h:1', true);
    assert.equal(err.code, code, name);
    assert.equal(err.upstreamReply, rep, name);
    assert.equal(socks5Reply(err), rep, name);
    assert.equal(httpStatus(err), status, name);
    assert.match(
      err.message,
      new RegExp(`^upstream proxy "up" could not connect to h:1: .+ \\(SOCKS5 reply 0x0${rep}\\)$`),
    );
  }
  const unassigned = fromSocksError(
    'Socks5 proxy rejected connection - undefined',
    LABEL,
    'h:1',
    true,
  );
  assert.equal(unassigned.code, 'UPSTREAM_FAILED');
  assert.equal(socks5Reply(unassigned), 0x01);
});

test('other socks client failures map to auth, timeout and general failures', () => {
  const cases: [string, string, number, number, RegExp][] = [
    [
      'Socks5 Authentication failed',
      'UPSTREAM_AUTH_FAILED',
      0x01,
      502,
      /^upstream proxy "up" authentication failed$/,
    ],
    [
      'Received invalid Socks5 initial handshake (no accepted authentication type)',
      'UPSTREAM_AUTH_FAILED',
      0x01,
      502,
      /authentication failed: it accepts none of the offered methods$/,
    ],
    ['Proxy connection timed out', 'CONNECT_TIMEOUT', 0x06, 504, /did not answer in time$/],
    [
      'Socks4 Proxy rejected connection - (Failed)',
      'UPSTREAM_FAILED',
      0x01,
      502,
      /\(SOCKS4 reply 0x5b\)$/,
    ],
    [
      'Received invalid Socks5 final handshake response',
      'UPSTREAM_FAILED',
      0x01,
      502,
      /is it a SOCKS proxy\?$/,
    ],
    [
      'Socket closed',
      'UPSTREAM_FAILED',
      0x01,
      502,
      /closed the connection during the SOCKS handshake$/,
    ],
  ];
  for (const [message, code, rep, status, text] of cases) {
    const err = fromSocksError(message, LABEL, 'h:1', true);
    assert.equal(err.code, code, message);
    assert.equal(socks5Reply(err), rep, message);
    assert.equal(httpStatus(err), status, message);
    assert.match(err.message, text);
  }
});

test('an upstream HTTP proxy status maps to a code; its status is in the message', () => {
  const label = '"up"';
  const cases: [number, string, number, number, string][] = [
    [407, 'UPSTREAM_AUTH_FAILED', 502, 0x01, `upstream proxy ${label} authentication failed`],
    [
      403,
      'UPSTREAM_REFUSED',
      502,
      0x02,
      `upstream proxy ${label} answered 403 Forbidden to CONNECT h:443`,
    ],
    [
      502,
      'UPSTREAM_FAILED',
      502,
      0x01,
      `upstream proxy ${label} answered 502 Bad Gateway to CONNECT h:443`,
    ],
    [
      503,
      'UPSTREAM_FAILED',
      502,
      0x01,
      `upstream proxy ${label} answered 503 Service Unavailable to CONNECT h:443`,
    ],
    [
      504,
      'UPSTREAM_TIMEOUT',
      504,
      0x06,
      `upstream proxy ${label} answered 504 Gateway Timeout to CONNECT h:443`,
    ],
  ];
  for (const [status, code, http, rep, message] of cases) {
    const err = refusal(status, label, 'h:443', true);
    assert.equal(err.code, code);
    assert.equal(httpStatus(err), http);
    assert.equal(socks5Reply(err), rep);
    assert.equal(err.message, message);
  }
  assert.equal(REPLIES.UPSTREAM_REFUSED.socks4, 0x5b);
});

test('a raw "@" or "/" in an upstream password is masked in labels and errors', () => {
  assert.equal(maskUrl('http://user:p@ss/w@proxy:3128'), 'http://user:***@proxy:3128');
  assert.equal(parseOutboundUrl('http://user:p@ss/w@proxy:3128').value?.password, 'p@ss/w');
  const bad = parseOutboundUrl('socks5://user:p@ss@bad host:1').error ?? '';
  assert.ok(bad !== '' && !bad.includes('p@ss') && !bad.includes('ss@'), bad);
  assert.equal(maskUrl('socks5h://user@proxy:1080'), 'socks5h://user@proxy:1080');
  assert.equal(maskUrl('http://proxy:3128'), 'http://proxy:3128');
});

test('chains flatten (direct adds no hop); reject cannot be chained; fallback groups are built', () => {
  const config = configFrom({
    outbounds: [
      { name: 'a', url: 'http://127.0.0.1:3128' },
      { name: 'b', url: 'socks5h://127.0.0.1:1080' },
      { name: 'ab', chain: ['a', 'direct', 'b'] },
      { name: 'ab-a', chain: ['ab', 'a'] },
    ],
  });
  const outbounds = createOutbounds(config.outbounds, createDestinationPolicy([]));
  assert.deepEqual([...outbounds.keys()], ['direct', 'reject', 'a', 'b', 'ab', 'ab-a']);
  assert.throws(
    () => configFrom({ outbounds: [{ name: 'x', chain: ['direct', 'reject'] }] }),
    /"reject" cannot be part of a chain/,
  );
  const fallback = configFrom({ outbounds: [{ name: 'f', fallback: ['direct'] }] });
  assert.ok(createOutbounds(fallback.outbounds, createDestinationPolicy([])).has('f'));
});

// ---- fake proxies --------------------------------------------------------------------------

interface FakeSocks {
  readonly port: number;
  /** What the next CONNECT is answered with, and bytes sent in the same write after a success. */
  rep: number;
  early: Buffer;
  /** Requests seen: ATYP and address as sent. */
  readonly requests: { atyp: number; address: string }[];
}

let socksServer: Server;
let fake: FakeSocks;
let httpProxy: Server;
let httpProxyPort: number;
/** The fake HTTP proxy's answer to CONNECT, written in one piece. */
let httpAnswer = 'HTTP/1.1 200 Connection established\r\n\r\n';

/** A SOCKS5 server that wants user "u" with PASSWORD, and answers CONNECT with `fake.rep`. */
function startFakeSocks(): Promise<Server> {
  const server = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let state: 'greeting' | 'auth' | 'request' | 'done' = 'greeting';
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (state === 'greeting') {
          if (buffered.length < 2 || buffered.length < 2 + (buffered[1] ?? 0)) return;
          const methods = [...buffered.subarray(2, 2 + (buffered[1] ?? 0))];
          buffered = buffered.subarray(2 + (buffered[1] ?? 0));
          if (!methods.includes(0x02)) {
            socket.end(Buffer.from([0x05, 0xff]));
            state = 'done';
            return;
          }
          socket.write(Buffer.from([0x05, 0x02]));
          state = 'auth';
        } else if (state === 'auth') {
          const ulen = buffered[1] ?? 0;
          const plen = buffered[2 + ulen];
          if (plen === undefined || buffered.length < 3 + ulen + plen) return;
          const user = buffered.subarray(2, 2 + ulen).toString();
          const pass = buffered.subarray(3 + ulen, 3 + ulen + plen).toString();
          buffered = buffered.subarray(3 + ulen + plen);
          const ok = user === 'u' && pass === PASSWORD;
          socket.write(Buffer.from([0x01, ok ? 0x00 : 0x01]));
          if (!ok) {
            socket.end();
            state = 'done';
            return;
          }
          state = 'request';
        } else if (state === 'request') {
          if (buffered.length < 5) return;
          const atyp = buffered[3] ?? 0;
          const length = atyp === 0x01 ? 4 : atyp === 0x04 ? 16 : 1 + (buffered[4] ?? 0);
          if (buffered.length < 4 + length + 2) return;
          const raw = buffered.subarray(4, 4 + length);
          const address = atyp === 0x03 ? raw.subarray(1).toString() : [...raw].join('.');
          fake.requests.push({ atyp, address });
          buffered = buffered.subarray(4 + length + 2);
          const reply = Buffer.from([0x05, fake.rep, 0x00, 0x01, 127, 0, 0, 9, 0x1f, 0x90]);
          if (fake.rep === 0) socket.write(Buffer.concat([reply, fake.early]));
          else socket.end(reply);
          state = 'done';
          if (fake.rep === 0) socket.pipe(socket);
          return;
        } else {
          return;
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => server);
}

before(async () => {
  socksServer = await startFakeSocks();
  fake = {
    port: (socksServer.address() as AddressInfo).port,
    rep: 0,
    early: Buffer.alloc(0),
    requests: [],
  };
  httpProxy = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (head.startsWith('\x16')) {
        // A TLS ClientHello to this plain proxy: answered in plain text, as a real one would.
        socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
        return;
      }
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.write(httpAnswer);
      if (httpAnswer.startsWith('HTTP/1.1 200')) socket.pipe(socket);
      else socket.end();
    };
    socket.on('data', onData);
  });
  httpProxy.listen(0, '127.0.0.1');
  await once(httpProxy, 'listening');
  httpProxyPort = (httpProxy.address() as AddressInfo).port;
});

after(async () => {
  await Promise.all([
    new Promise((resolve) => socksServer.close(resolve)),
    new Promise((resolve) => httpProxy.close(resolve)),
  ]);
});

const socksUrl = (password = PASSWORD): string => `socks5h://u:${password}@127.0.0.1:${fake.port}`;

function readN(stream: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} bytes`)), 3000);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < n) return;
      clearTimeout(timer);
      stream.off('data', onData);
      resolve(got);
    };
    stream.on('data', onData);
  });
}

test('every REP byte from a real SOCKS5 exchange reaches the error unchanged', async () => {
  for (const [, rep, code] of REP_TABLE) {
    fake.rep = rep;
    const err = await failure(socksUrl(), target('example.test', 80));
    assert.equal(err.code, code);
    assert.equal(err.upstreamReply, rep);
  }
  fake.rep = 0x42;
  const odd = await failure(socksUrl(), target('example.test', 80));
  assert.equal(odd.code, 'UPSTREAM_FAILED');
  assert.equal(socks5Reply(odd), 0x01);
});

test('socks5h sends the name, socks5 the address it resolved', async () => {
  fake.rep = 0;
  fake.early = Buffer.alloc(0);
  const named = await outboundFor(socksUrl()).dial(target('localhost', 80), context());
  named.stream.destroy();
  assert.deepEqual(fake.requests.at(-1), { atyp: 0x03, address: 'localhost' });
  const resolved = await outboundFor(`socks5://u:${PASSWORD}@127.0.0.1:${fake.port}`).dial(
    target('localhost', 80),
    context(),
  );
  resolved.stream.destroy();
  assert.deepEqual(fake.requests.at(-1), { atyp: 0x01, address: '127.0.0.1' });
  assert.deepEqual(resolved.bound, target('127.0.0.9', 8080), 'BND from the upstream');
});

test('bytes sent with the SOCKS5 reply are read first, then the relay continues', async () => {
  fake.rep = 0;
  fake.early = Buffer.from('early-bytes|');
  const conn = await outboundFor(socksUrl()).dial(target('example.test', 80), context());
  conn.stream.write('echoed');
  const got = await readN(conn.stream, 'early-bytes|echoed'.length);
  assert.equal(got.toString(), 'early-bytes|echoed');
  conn.stream.destroy();
  fake.early = Buffer.alloc(0);
});

test('bytes sent with the CONNECT 200 are read first', async () => {
  httpAnswer = 'HTTP/1.1 200 Connection established\r\n\r\nhead-bytes|';
  const conn = await outboundFor(`http://u:${PASSWORD}@127.0.0.1:${httpProxyPort}`).dial(
    target('example.test', 443),
    context(),
  );
  conn.stream.write('echoed');
  const got = await readN(conn.stream, 'head-bytes|echoed'.length);
  assert.equal(got.toString(), 'head-bytes|echoed');
  conn.stream.destroy();
});

test('a wrong password, a 407, a dead proxy, a TLS failure and a timeout: no password anywhere', async () => {
  const wrong = await failure(socksUrl(`${PASSWORD}-wrong`), target('example.test', 80));
  assert.equal(wrong.code, 'UPSTREAM_AUTH_FAILED');
  assert.equal(wrong.message, 'upstream proxy "up" authentication failed');

  httpAnswer =
    'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n';
  const denied = await failure(
    `http://u:${PASSWORD}@127.0.0.1:${httpProxyPort}`,
    target('example.test', 443),
  );
  assert.equal(denied.message, 'upstream proxy "up" authentication failed (Basic)');
  httpAnswer = 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n';
  const unavailable = await failure(
    `http://u:${PASSWORD}@127.0.0.1:${httpProxyPort}`,
    target('example.test', 443),
  );
  assert.equal(
    unavailable.message,
    'upstream proxy "up" answered 503 Service Unavailable to CONNECT example.test:443',
  );

  const dead = createServer();
  dead.listen(0, '127.0.0.1');
  await once(dead, 'listening');
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise((resolve) => dead.close(resolve));
  const unreachable = await failure(
    `socks5h://u:${PASSWORD}@127.0.0.1:${deadPort}`,
    target('example.test', 80),
  );
  assert.equal(unreachable.code, 'UPSTREAM_FAILED');
  assert.equal(unreachable.message, 'cannot reach upstream proxy "up": ECONNREFUSED');

  httpAnswer = 'HTTP/1.1 200 Connection established\r\n\r\n';
  const tls = await failure(
    `https://u:${PASSWORD}@127.0.0.1:${httpProxyPort}`,
    target('example.test', 443),
  );
  assert.equal(tls.code, 'UPSTREAM_FAILED');
  assert.match(tls.message, /^TLS to upstream proxy "up" failed: /);

  // A proxy that accepts and never answers: the session's signal ends the wait.
  const held: Socket[] = [];
  const silent = createServer((socket) => {
    socket.on('error', () => undefined);
    held.push(socket);
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const silentPort = (silent.address() as AddressInfo).port;
  try {
    const timedOut = await failure(
      `socks5h://u:${PASSWORD}@127.0.0.1:${silentPort}`,
      target('example.test', 80),
      context(300),
    );
    assert.equal(timedOut.code, 'CONNECT_TIMEOUT');
    assert.equal(timedOut.message, 'connect to example.test:80 timed out at upstream proxy "up"');
  } finally {
    for (const socket of held) socket.destroy();
    silent.close();
  }

  await new Promise((resolve) => setImmediate(resolve));
  const everything = [...lines, ...errors.map((e) => `${e.message} ${JSON.stringify(e)}`)].join(
    '\n',
  );
  assert.ok(lines.length >= errors.length, 'the failures were logged');
  assert.ok(!everything.includes(PASSWORD), 'a password in a log line or an error');
  assert.ok(!everything.includes(Buffer.from(`u:${PASSWORD}`).toString('base64')));
});

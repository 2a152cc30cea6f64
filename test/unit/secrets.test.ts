import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { maskUrl, parseOutboundUrl } from '../../src/config/url.js';
import { ProxyError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { parseHost } from '../../src/target.js';
import { configFrom } from '../helpers/gateway.js';
import { refusedPort } from '../helpers/net.js';

/**
 * Upstream credentials never leave the configuration: a label is built from the parsed URL's
 * parts, and what a client is told names the outbound, never its URL.
 */

test('a URL is masked from its parsed parts, the password always hidden', () => {
  const cases: [string, string][] = [
    ['http://user@corp.example:pw@10.0.0.1:3128', 'http://user%40corp.example:***@10.0.0.1:3128'],
    ['http://user:p@ss/w@proxy:3128', 'http://user:***@proxy:3128'],
    ['http://us%3Aer:p%40ss%3Aw@proxy:3128', 'http://us%3Aer:***@proxy:3128'],
    ['socks5h://u:a:b:c@[2001:db8::1]:1080', 'socks5h://u:***@[2001:db8::1]:1080'],
    ['socks5h://user@proxy:1080', 'socks5h://user@proxy:1080'],
    ['http://proxy:3128', 'http://proxy:3128'],
    ['HTTPS://u:pw@Proxy.Example', 'https://u:***@proxy.example'],
    // Not a URL the parser accepts: everything before the last "@" is hidden.
    ['http://u:pw@host:3128/path', 'http://***@host:3128/path'],
    ['u:pw@host', '***@host'],
    ['http://u:%zz@host:1', 'http://***@host:1'],
  ];
  for (const [url, masked] of cases) assert.equal(maskUrl(url), masked, url);
});

const TRICKY = ['@', ':', '%', '/', '#', '?', '[', ']', ' ', 'a', 'B', '7', 'é', '%40', '%3A'];
const trickyText = (minLength: number) =>
  fc.array(fc.constantFrom(...TRICKY), { minLength, maxLength: 8 }).map((parts) => parts.join(''));
const hostText = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
);

test('no mask, parse error or hop label shows a password, however it is spelled', () => {
  fc.assert(
    fc.property(
      trickyText(0).filter((u) => !u.includes(':') && !u.includes('P')),
      // A marker the host and user never contain, so a hit can only be a leak.
      fc.tuple(trickyText(0), trickyText(0)).map(([a, b]) => `${a}Pw9${b}`),
      hostText,
      fc.integer({ min: 1, max: 65535 }),
      fc.constantFrom('http', 'https', 'socks5', 'socks5h', 'socks4a'),
      fc.constantFrom('', '/x', ':99999', ' junk'),
      (user, password, host, port, scheme, tail) => {
        const encoded = encodeURIComponent(password);
        for (const url of [
          `${scheme}://${user}:${password}@${host}:${port}${tail}`,
          `${scheme}://${encodeURIComponent(user)}:${encoded}@${host}:${port}${tail}`,
        ]) {
          const shown = [maskUrl(url), parseOutboundUrl(url).error ?? ''];
          for (const text of shown) {
            assert.ok(!text.includes('Pw9'), `${url} -> ${text}`);
            assert.ok(!text.includes(encoded), `${url} -> ${text}`);
          }
        }
      },
    ),
    { numRuns: 3000 },
  );
});

// ---- dialling through proxies that fail ---------------------------------------------------

const PASSWORD = 'Hop-secret-Pw9';
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

let proxy: Server;
let proxyPort: number;
/** A proxy that wants credentials it never accepts: 407 to every CONNECT. */
before(async () => {
  proxy = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
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
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  proxyPort = (proxy.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

async function dialFailure(name: string, url: string): Promise<ProxyError> {
  const config = configFrom({ outbounds: [{ name, url }] });
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([])).get(name);
  assert.ok(outbound);
  try {
    const conn = await outbound.dial(
      { host: parseHost('example.test')!, port: 443 },
      { signal: AbortSignal.timeout(5000), log },
    );
    conn.stream.destroy();
  } catch (err) {
    assert.ok(err instanceof ProxyError);
    log.info({ err }, 'dial failed');
    return err;
  }
  throw new Error(`${url} did not fail`);
}

test('a failing hop is named by its outbound, never by its URL', async () => {
  const dead = await refusedPort();
  const userinfos = [
    `user@corp.example:${PASSWORD}`,
    `${encodeURIComponent('CORP\\svc')}:${encodeURIComponent(`${PASSWORD}@:/`)}`,
    `svc:${PASSWORD}:with:colons@and@ats`,
  ];
  for (const userinfo of userinfos) {
    const refused = await dialFailure('corp', `http://${userinfo}@127.0.0.1:${proxyPort}`);
    assert.equal(refused.code, 'UPSTREAM_AUTH_FAILED');
    assert.equal(refused.message, 'upstream proxy "corp" authentication failed (Basic)');

    const unreachable = await dialFailure('corp', `socks5h://${userinfo}@127.0.0.1:${dead}`);
    assert.equal(unreachable.code, 'UPSTREAM_FAILED');
    assert.equal(unreachable.message, 'cannot reach upstream proxy "corp": ECONNREFUSED');

    const everything = lines.join('\n');
    assert.ok(!everything.includes('Pw9'), everything);
    assert.ok(!everything.includes(`127.0.0.1:${proxyPort}`), 'the proxy address in a log line');
  }
});

test('a hop that resolves names for the next one names that hop, not its host', async () => {
  const config = configFrom({
    outbounds: [
      { name: 'first', url: `socks5://u:${PASSWORD}@127.0.0.1:${proxyPort}` },
      { name: 'second', url: `socks5://u:${PASSWORD}@no-such-host.invalid:1080` },
      { name: 'both', chain: ['first', 'second'] },
    ],
  });
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([])).get('both');
  assert.ok(outbound);
  const err = await outbound
    .dial(
      { host: parseHost('example.test')!, port: 443 },
      { signal: AbortSignal.timeout(5000), log },
    )
    .then(
      () => assert.fail('connected'),
      (e: unknown) => e as ProxyError,
    );
  // The first hop is a fake HTTP server: what matters is that no host or password is shown.
  assert.ok(!err.message.includes('no-such-host'), err.message);
  assert.ok(!err.message.includes(String(proxyPort)), err.message);
  assert.ok(!err.message.includes('Pw9'), err.message);
});

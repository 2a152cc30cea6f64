import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestGateway } from '../helpers/gateway.js';
import { startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { proves } from '../helpers/matrix.js';
import { BINARIES, selfSignedCertificate, unavailable } from '../helpers/peers.js';
import {
  CLIENT_USER,
  inboundName,
  nextSession,
  runProgram,
  startClientGateway,
  type InboundType,
} from '../helpers/programs.js';
import { dnsAnswer, dnsQuery, dnsServer, type UdpPeer } from '../helpers/udp.js';

/**
 * Python's requests (http:// and socks5h:// proxies, the latter through PySocks) and PySocks'
 * own UDP socket, as Debian ships them, against junction's inbounds. The loopback origin and
 * DNS server record what arrived.
 */

const skip = unavailable('python3', 'python3-requests', 'python3-socks', 'openssl');

/** argv: proxy URL, target URL, CA certificate file. Prints the status and the body. */
const REQUESTS_GET = `
import sys, requests
proxy, url, ca = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    r = requests.get(url, proxies={'http': proxy, 'https': proxy}, verify=ca, timeout=10)
    sys.stdout.write('%d %s' % (r.status_code, r.text))
except requests.exceptions.RequestException as e:
    sys.stdout.write('error %s' % type(e).__name__)
`;

/** argv: proxy port, user ('' for none), password, DNS port, query hex. Prints the answer hex. */
const PYSOCKS_UDP = `
import sys, socket, socks
port, user, password, dns_port, query = sys.argv[1:6]
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, '127.0.0.1', int(port), username=user or None, password=password or None)
s.settimeout(10)
s.sendto(bytes.fromhex(query), ('127.0.0.1', int(dns_port)))
data, address = s.recvfrom(4096)
sys.stdout.write('%s %s:%d' % (data.hex(), address[0], address[1]))
s.close()
`;

let origin: HttpOrigin;
/** The same origin over TLS: requests reaches it through CONNECT on an http:// proxy. */
let tlsOrigin: HttpOrigin;
let dir: string;
let ca: string;
let dns: UdpPeer;
let g: TestGateway;

before(async () => {
  if (skip) return;
  origin = await startHttpOrigin();
  dir = mkdtempSync(join(tmpdir(), 'junction-python-'));
  const tls = selfSignedCertificate(dir);
  ca = tls.cert;
  tlsOrigin = await startHttpOrigin('127.0.0.1', {
    cert: readFileSync(tls.cert, 'utf8'),
    key: readFileSync(tls.key, 'utf8'),
  });
  dns = await dnsServer('127.0.0.1');
  g = await startClientGateway();
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([origin.close(), tlsOrigin.close(), dns.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const python = (script: string, args: readonly string[]): ReturnType<typeof runProgram> =>
  runProgram(BINARIES.python3, ['-c', script, ...args]);

function proxyUrl(scheme: string, type: InboundType, auth: boolean): string {
  const creds = auth ? `${CLIENT_USER.username}:${CLIENT_USER.password}@` : '';
  return `${scheme}://${creds}127.0.0.1:${g.port(inboundName(type, auth))}`;
}

const cases: { scheme: 'http' | 'socks5h' | 'socks5'; type: InboundType }[] = [
  { scheme: 'http', type: 'http' },
  { scheme: 'http', type: 'mixed' },
  { scheme: 'socks5h', type: 'socks' },
  { scheme: 'socks5h', type: 'mixed' },
  { scheme: 'socks5', type: 'socks' },
];

for (const { scheme, type } of cases) {
  for (const auth of [false, true]) {
    for (const overTls of [false, true]) {
      const label = `${scheme}-${type}-${auth ? 'auth' : 'open'}-${overTls ? 'https' : 'http'}`;
      test(
        `requests to an ${overTls ? 'https' : 'http'} origin with proxy ${scheme}:// on the ${type} inbound (${auth ? 'with' : 'without'} auth)`,
        { skip },
        proves({ client: `requests ${scheme}://`, inbound: type, auth }, async () => {
          const target = overTls ? tlsOrigin : origin;
          const path = `/tiny?client=python-requests-${label}`;
          const session = nextSession(g, inboundName(type, auth));
          const result = await python(REQUESTS_GET, [
            proxyUrl(scheme, type, auth),
            `${target.url}${path}`,
            ca,
          ]);
          assert.equal(result.stdout, '200 ok\n', result.stderr);
          const seen = target.requests.filter((r) => r.url === path);
          assert.equal(seen.length, 1);
          assert.equal(seen[0]?.headers['proxy-authorization'], undefined);
          const line = await session;
          assert.equal(line.target, `127.0.0.1:${target.port}`);
          assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
          assert.equal(line.result, 'ok');
        }),
      );
    }
  }
}

test('requests without credentials on an inbound that requires them', { skip }, async () => {
  const path = '/tiny?client=python-requests-no-credentials';
  const viaHttp = await python(REQUESTS_GET, [
    `http://127.0.0.1:${g.port('http-auth')}`,
    `${origin.url}${path}`,
    ca,
  ]);
  assert.equal(viaHttp.stdout.slice(0, 4), '407 ', viaHttp.stderr);
  const viaSocks = await python(REQUESTS_GET, [
    `socks5h://127.0.0.1:${g.port('socks-auth')}`,
    `${origin.url}${path}`,
    ca,
  ]);
  assert.equal(viaSocks.stdout, 'error ConnectionError', viaSocks.stderr);
  assert.equal(origin.requests.filter((r) => r.url === path).length, 0);
});

for (const type of ['socks', 'mixed'] as const) {
  for (const auth of [false, true]) {
    test(
      `PySocks UDP: a DNS query through the ${type} inbound (${auth ? 'with' : 'without'} auth)`,
      { skip },
      proves({ client: 'PySocks socksocket UDP', inbound: type, auth }, async () => {
        const session = nextSession(g, inboundName(type, auth));
        const query = dnsQuery(
          0x4000 + dns.seen.length,
          `python-${type}-${auth ? 'auth' : 'open'}.test`,
        );
        const result = await python(PYSOCKS_UDP, [
          String(g.port(inboundName(type, auth))),
          auth ? CLIENT_USER.username : '',
          auth ? CLIENT_USER.password : '',
          String(dns.port),
          query.toString('hex'),
        ]);
        assert.equal(result.exitCode, 0, result.stderr);
        assert.equal(result.stdout, `${dnsAnswer(query).toString('hex')} 127.0.0.1:${dns.port}`);
        const received = dns.seen.filter((d) => d.payload.equals(query));
        assert.equal(received.length, 1);
        assert.equal(received[0]?.address, '127.0.0.1');
        const line = await session;
        assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
      }),
    );
  }
}

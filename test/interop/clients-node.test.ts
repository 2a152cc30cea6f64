import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get, type Agent } from 'node:http';
import { get as getTls } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { fetch as undiciFetch, ProxyAgent, request as undiciRequest } from 'undici';
import type { TestGateway } from '../helpers/gateway.js';
import { BULK, sha256, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { proves } from '../helpers/matrix.js';
import { selfSignedCertificate, unavailable } from '../helpers/peers.js';
import {
  CLIENT_USER,
  inboundName,
  nextSession,
  startClientGateway,
  type InboundType,
} from '../helpers/programs.js';

/**
 * The proxy agents most npm programs use, from npm as published: undici's ProxyAgent (tunnelled
 * and forwarding, with undici's fetch and Node's own global fetch), https-proxy-agent and
 * socks-proxy-agent with node:http. The loopback origin records what arrived, the access log
 * which inbound and user carried it.
 */

const tlsSkip = unavailable('openssl');

let origin: HttpOrigin;
/** The same origin over TLS, reached through CONNECT or inside SOCKS. */
let tlsOrigin: HttpOrigin | undefined;
let dir: string;
let ca: string;
let g: TestGateway;

before(async () => {
  origin = await startHttpOrigin();
  dir = mkdtempSync(join(tmpdir(), 'junction-node-'));
  if (!tlsSkip) {
    const tls = selfSignedCertificate(dir);
    ca = readFileSync(tls.cert, 'utf8');
    tlsOrigin = await startHttpOrigin('127.0.0.1', {
      cert: ca,
      key: readFileSync(tls.key, 'utf8'),
    });
  }
  g = await startClientGateway();
});

after(async () => {
  await g.stop();
  await Promise.all([origin.close(), tlsOrigin?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function proxyUrl(scheme: string, type: InboundType, auth: boolean): string {
  const creds = auth ? `${CLIENT_USER.username}:${CLIENT_USER.password}@` : '';
  return `${scheme}://${creds}127.0.0.1:${g.port(inboundName(type, auth))}`;
}

const authLabel = (auth: boolean): string => (auth ? 'with auth' : 'without auth');

/** node:http(s) GET through `agent`; resolves with the status and the body. */
function getThrough(agent: Agent, url: string): Promise<{ status: number; body: Buffer }> {
  const tls = url.startsWith('https:');
  return new Promise((resolve, reject) => {
    const options = { agent, timeout: 10_000, ...(tls ? { ca } : {}) };
    const req = (tls ? getTls : get)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Asserts the origin saw `path` once, and the inbound's access log the right user. */
async function assertCarried(
  path: string,
  session: ReturnType<typeof nextSession>,
  auth: boolean,
  target = origin,
): Promise<void> {
  const seen = target.requests.filter((r) => r.url === path);
  assert.equal(seen.length, 1, `origin saw ${path}`);
  assert.equal(seen[0]?.headers['proxy-authorization'], undefined);
  const line = await session;
  assert.equal(line.target, `127.0.0.1:${target.port}`);
  assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
}

for (const type of ['http', 'mixed'] as const) {
  for (const auth of [false, true]) {
    for (const proxyTunnel of [true, false]) {
      const how = proxyTunnel ? 'CONNECT' : 'forwarding';
      const cell = { client: `undici fetch, ProxyAgent (${how})`, inbound: type, auth };
      test(
        `undici ProxyAgent (${how}) and fetch, ${type} inbound, ${authLabel(auth)}`,
        proves(cell, async () => {
          const path = `/tiny?client=undici-fetch-${how}-${type}-${auth}`;
          const session = nextSession(g, inboundName(type, auth));
          const dispatcher = new ProxyAgent({ uri: proxyUrl('http', type, auth), proxyTunnel });
          try {
            const res = await undiciFetch(`${origin.url}${path}`, {
              dispatcher,
              signal: AbortSignal.timeout(10_000),
            });
            assert.equal(res.status, 200);
            assert.equal(await res.text(), 'ok\n');
          } finally {
            await dispatcher.close();
          }
          await assertCarried(path, session, auth);
        }),
      );
    }

    const globalCell = { client: "Node's fetch, undici ProxyAgent", inbound: type, auth };
    test(
      `Node's global fetch with an undici ProxyAgent, ${type} inbound, ${authLabel(auth)}`,
      proves(globalCell, async () => {
        const path = `/bulk?client=global-fetch-${type}-${auth}`;
        const session = nextSession(g, inboundName(type, auth));
        const dispatcher = new ProxyAgent(proxyUrl('http', type, auth));
        try {
          // Node 20's fetch runs its own bundled undici, whose types differ from the package's
          // version; at run time it takes the package's dispatcher as it is.
          const init = {
            dispatcher,
            signal: AbortSignal.timeout(10_000),
          } as unknown as RequestInit;
          const res = await fetch(`${origin.url}${path}`, init);
          assert.equal(res.status, 200);
          assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(BULK));
        } finally {
          await dispatcher.close();
        }
        await assertCarried(path, session, auth);
      }),
    );

    const agentCell = { client: 'https-proxy-agent', inbound: type, auth };
    test(
      `https-proxy-agent with node:http, ${type} inbound, ${authLabel(auth)}`,
      proves(agentCell, async () => {
        const path = `/tiny?client=https-proxy-agent-${type}-${auth}`;
        const session = nextSession(g, inboundName(type, auth));
        const agent = new HttpsProxyAgent(proxyUrl('http', type, auth));
        try {
          const res = await getThrough(agent, `${origin.url}${path}`);
          assert.equal(res.status, 200);
          assert.equal(res.body.toString('utf8'), 'ok\n');
        } finally {
          agent.destroy();
        }
        await assertCarried(path, session, auth);
      }),
    );
  }
}

for (const type of ['socks', 'mixed'] as const) {
  for (const scheme of ['socks5h', 'socks5', 'socks4a', 'socks4'] as const) {
    for (const auth of scheme.startsWith('socks5') ? [false, true] : [false]) {
      const cell = { client: `socks-proxy-agent ${scheme}://`, inbound: type, auth };
      test(
        `socks-proxy-agent ${scheme}:// with node:http, ${type} inbound, ${authLabel(auth)}`,
        proves(cell, async () => {
          const path = `/tiny?client=socks-proxy-agent-${scheme}-${type}-${auth}`;
          const session = nextSession(g, inboundName(type, auth));
          const agent = new SocksProxyAgent(proxyUrl(scheme, type, auth), { timeout: 10_000 });
          try {
            const res = await getThrough(agent, `${origin.url}${path}`);
            assert.equal(res.status, 200);
            assert.equal(res.body.toString('utf8'), 'ok\n');
          } finally {
            agent.destroy();
          }
          await assertCarried(path, session, auth);
        }),
      );
    }
  }
}

for (const auth of [false, true]) {
  const label = authLabel(auth);
  test(
    `to an HTTPS origin: undici ProxyAgent and fetch, mixed inbound, ${label}`,
    { skip: tlsSkip },
    proves({ client: 'undici fetch, ProxyAgent (CONNECT)', inbound: 'mixed', auth }, async () => {
      const target = tlsOrigin as HttpOrigin;
      const path = `/tiny?client=undici-fetch-https-${auth}`;
      const session = nextSession(g, inboundName('mixed', auth));
      const dispatcher = new ProxyAgent({
        uri: proxyUrl('http', 'mixed', auth),
        requestTls: { ca },
      });
      try {
        const res = await undiciFetch(`${target.url}${path}`, {
          dispatcher,
          signal: AbortSignal.timeout(10_000),
        });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), 'ok\n');
      } finally {
        await dispatcher.close();
      }
      await assertCarried(path, session, auth, target);
    }),
  );

  for (const scheme of ['http', 'socks5h'] as const) {
    const agentName = scheme === 'http' ? 'https-proxy-agent' : 'socks-proxy-agent';
    test(
      `to an HTTPS origin: ${agentName} with node:https, mixed inbound, ${label}`,
      { skip: tlsSkip },
      proves(
        {
          client: scheme === 'http' ? agentName : `${agentName} ${scheme}://`,
          inbound: 'mixed',
          auth,
        },
        async () => {
          const target = tlsOrigin as HttpOrigin;
          const path = `/tiny?client=${agentName}-https-${auth}`;
          const session = nextSession(g, inboundName('mixed', auth));
          const url = proxyUrl(scheme, 'mixed', auth);
          const agent = scheme === 'http' ? new HttpsProxyAgent(url) : new SocksProxyAgent(url);
          try {
            const res = await getThrough(agent, `${target.url}${path}`);
            assert.equal(res.status, 200);
            assert.equal(res.body.toString('utf8'), 'ok\n');
          } finally {
            agent.destroy();
          }
          await assertCarried(path, session, auth, target);
        },
      ),
    );
  }
}

test('undici ProxyAgent without credentials on an inbound that requires them: 407', async () => {
  const path = '/tiny?client=undici-no-credentials';
  for (const proxyTunnel of [true, false]) {
    const dispatcher = new ProxyAgent({
      uri: `http://127.0.0.1:${g.port(inboundName('http', true))}`,
      proxyTunnel,
    });
    try {
      // undici turns the proxy's 407 into its own error rather than a response.
      await assert.rejects(undiciRequest(`${origin.url}${path}`, { dispatcher }), {
        message: proxyTunnel
          ? 'Proxy response (407) !== 200 when HTTP Tunneling'
          : 'Proxy Authentication Required (407)',
      });
    } finally {
      await dispatcher.close();
    }
  }
  assert.equal(origin.requests.filter((r) => r.url === path).length, 0);
});

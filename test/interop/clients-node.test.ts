import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { get, type Agent } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { fetch as undiciFetch, ProxyAgent, request as undiciRequest } from 'undici';
import type { TestGateway } from '../helpers/gateway.js';
import { BULK, sha256, startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
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

let origin: HttpOrigin;
let g: TestGateway;

before(async () => {
  origin = await startHttpOrigin();
  g = await startClientGateway();
});

after(async () => {
  await g.stop();
  await origin.close();
});

function proxyUrl(scheme: string, type: InboundType, auth: boolean): string {
  const creds = auth ? `${CLIENT_USER.username}:${CLIENT_USER.password}@` : '';
  return `${scheme}://${creds}127.0.0.1:${g.port(inboundName(type, auth))}`;
}

const authLabel = (auth: boolean): string => (auth ? 'with auth' : 'without auth');

/** node:http GET through `agent`; resolves with the status and the body. */
function getThrough(agent: Agent, url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent, timeout: 10_000 }, (res) => {
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
): Promise<void> {
  const seen = origin.requests.filter((r) => r.url === path);
  assert.equal(seen.length, 1, `origin saw ${path}`);
  assert.equal(seen[0]?.headers['proxy-authorization'], undefined);
  const line = await session;
  assert.equal(line.target, `127.0.0.1:${origin.port}`);
  assert.equal(line.user, auth ? CLIENT_USER.username : undefined);
}

for (const type of ['http', 'mixed'] as const) {
  for (const auth of [false, true]) {
    for (const proxyTunnel of [true, false]) {
      const how = proxyTunnel ? 'CONNECT' : 'forwarding';
      test(`undici ProxyAgent (${how}) and fetch, ${type} inbound, ${authLabel(auth)}`, async () => {
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
      });
    }

    test(`Node's global fetch with an undici ProxyAgent, ${type} inbound, ${authLabel(auth)}`, async () => {
      const path = `/bulk?client=global-fetch-${type}-${auth}`;
      const session = nextSession(g, inboundName(type, auth));
      const dispatcher = new ProxyAgent(proxyUrl('http', type, auth));
      try {
        // Node 20's fetch runs its own bundled undici, whose types differ from the package's
        // version; at run time it takes the package's dispatcher as it is.
        const init = { dispatcher, signal: AbortSignal.timeout(10_000) } as unknown as RequestInit;
        const res = await fetch(`${origin.url}${path}`, init);
        assert.equal(res.status, 200);
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(BULK));
      } finally {
        await dispatcher.close();
      }
      await assertCarried(path, session, auth);
    });

    test(`https-proxy-agent with node:http, ${type} inbound, ${authLabel(auth)}`, async () => {
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
    });
  }
}

for (const type of ['socks', 'mixed'] as const) {
  for (const scheme of ['socks5h', 'socks5', 'socks4a', 'socks4'] as const) {
    for (const auth of scheme.startsWith('socks5') ? [false, true] : [false]) {
      test(`socks-proxy-agent ${scheme}:// with node:http, ${type} inbound, ${authLabel(auth)}`, async () => {
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
      });
    }
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

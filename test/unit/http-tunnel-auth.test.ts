import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { configFrom, startGateway } from '../helpers/gateway.js';
import { rawConnect } from '../helpers/net.js';
import { httpStatus, ProxyError, socks5Reply } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createOutbounds } from '../../src/outbound/index.js';
import type { Outbound } from '../../src/outbound/types.js';
import { parseChallenges } from '../../src/outbound/proxy-auth/challenge.js';
import {
  CredentialLockout,
  FIRST_REST_MS,
  LONGEST_REST_MS,
} from '../../src/outbound/proxy-auth/lockout.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { parseHost, type Target } from '../../src/target.js';
import { startHeadServer, type HeadServer } from '../helpers/head-server.js';

/**
 * CONNECT through a scripted HTTP proxy that asks for Digest or Basic: which scheme junction
 * answers with, on which connection it asks again, and the exact error when it cannot pass.
 */

const USER = 'alice';
const PASSWORD = 'Tunnel-pw-9';
const REALM = 'proxy-test';
const TARGET: Target = { host: parseHost('example.test')!, port: 443 };
const log = createLogger('silent');

interface Seen {
  readonly connection: number;
  readonly authorization: string | undefined;
}

interface Script {
  /** The challenges of every 407. */
  offers: string[];
  /** Whether the proxy keeps the connection after a 407. */
  keepAlive: boolean;
  /** Answers the first correct Digest with stale=true and a fresh nonce. */
  staleOnce: boolean;
  /** Sends a 407's body apart from its head, as a proxy with a large error page does. */
  lateBody: boolean;
  /** Only the nonce of the latest challenge is good; an older one is answered stale=true. */
  strictNonce: boolean;
}

let script: Script;
let seen: Seen[] = [];
let nonce = 0;
let currentNonce = '';
let proxy: HeadServer;
let port: number;

function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

/** Checks a Digest answer (MD5, qop=auth) independently of the code under test. */
function digestValid(header: string, password: string, method: string, target: string): boolean {
  const [challenge] = parseChallenges([header]);
  const p = challenge?.params;
  if (challenge?.scheme !== 'Digest' || !p) return false;
  const ha1 = md5(`${p.get('username')}:${REALM}:${password}`);
  const ha2 = md5(`${method}:${p.get('uri')}`);
  const expected = md5(
    `${ha1}:${p.get('nonce')}:${p.get('nc')}:${p.get('cnonce')}:${p.get('qop')}:${ha2}`,
  );
  return p.get('uri') === target && p.get('response') === expected;
}

function accepted(
  authorization: string | undefined,
  method: string,
  target: string,
): 'ok' | 'stale' | 'no' {
  if (authorization === undefined) return 'no';
  if (authorization.startsWith('Basic ')) {
    const basicOffered = script.offers.some((o) => o.startsWith('Basic'));
    const good = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    return basicOffered && authorization === `Basic ${good}` ? 'ok' : 'no';
  }
  if (!digestValid(authorization, PASSWORD, method, target)) return 'no';
  const used = parseChallenges([authorization])[0]?.params.get('nonce');
  if (script.strictNonce && used !== currentNonce) return 'stale';
  if (script.staleOnce) {
    script.staleOnce = false;
    return 'stale';
  }
  return 'ok';
}

function answer(socket: Socket, head: string, connection: number): void {
  const authorization = /^proxy-authorization: (.*)$/im.exec(head)?.[1];
  seen.push({ connection, authorization });
  const [method = '', target = ''] = head.split(' ');
  const verdict = accepted(authorization, method, target);
  if (verdict === 'ok') {
    socket.write(
      method === 'CONNECT'
        ? 'HTTP/1.1 200 Connection established\r\n\r\n'
        : 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n',
    );
    return;
  }
  const body = 'auth required';
  currentNonce = `n${++nonce}`;
  const offers = script.offers.map((o) =>
    o.replace('NONCE', currentNonce).replace('STALE', verdict === 'stale' ? ', stale=true' : ''),
  );
  const refusal = [
    'HTTP/1.1 407 Proxy Authentication Required',
    ...offers.map((o) => `Proxy-Authenticate: ${o}`),
    `Content-Length: ${body.length}`,
    `Connection: ${script.keepAlive ? 'keep-alive' : 'close'}`,
    '',
    '',
  ].join('\r\n');
  const end = (): void => {
    if (!script.keepAlive) socket.end();
  };
  if (!script.lateBody) {
    socket.write(refusal + body);
    end();
    return;
  }
  socket.write(refusal);
  // Apart in time so that it arrives in a read of its own; what the client does meanwhile is
  // not what is tested.
  setTimeout(() => {
    socket.write(body);
    end();
  }, 50);
}

before(async () => {
  proxy = await startHeadServer(answer);
  port = proxy.port;
});

after(() => proxy.close());

const DIGEST = `Digest realm="${REALM}", nonce="NONCE", qop="auth", algorithm=MD5STALE`;
const BASIC = `Basic realm="${REALM}"`;

function reset(partial: Partial<Script>): void {
  script = {
    offers: [DIGEST, BASIC],
    keepAlive: true,
    staleOnce: false,
    lateBody: false,
    strictNonce: false,
    ...partial,
  };
  seen = [];
  proxy.resetCount();
}

async function dial(
  auth?: Record<string, unknown>,
  password = PASSWORD,
  before: readonly Record<string, unknown>[] = [],
): Promise<void> {
  await dialThrough(outboundFor(auth, password, before));
}

async function dialThrough(outbound: Outbound): Promise<void> {
  const conn = await outbound.dial(TARGET, { signal: AbortSignal.timeout(5000), log });
  conn.stream.destroy();
}

function outboundFor(
  auth?: Record<string, unknown>,
  password = PASSWORD,
  before: readonly Record<string, unknown>[] = [],
): Outbound {
  const config = configFrom({
    outbounds: [
      {
        name: 'up',
        url: `http://${USER}:${password}@127.0.0.1:${port}`,
        ...(auth ? { auth } : {}),
      },
      ...before,
      ...(before.length > 0
        ? [{ name: 'chained', chain: [...before.map((o) => o.name), 'up'] }]
        : []),
    ],
  });
  const name = before.length > 0 ? 'chained' : 'up';
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([])).get(name);
  assert.ok(outbound);
  return outbound;
}

async function failure(auth?: Record<string, unknown>, password = PASSWORD): Promise<ProxyError> {
  try {
    await dial(auth, password);
  } catch (err) {
    assert.ok(err instanceof ProxyError, String(err));
    return err;
  }
  throw new Error('the dial did not fail');
}

const schemes = (): string[] => seen.map((s) => s.authorization?.split(' ')[0] ?? '-');

test('a proxy offering Digest and Basic is answered with Digest, on the connection it kept', async () => {
  reset({});
  await dial({ preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Digest']);
  assert.deepEqual(
    seen.map((s) => s.connection),
    [1, 1],
  );
});

test('pre-emptive Basic (the default for user:pass@) refused, then Digest', async () => {
  reset({ offers: [DIGEST] });
  await dial();
  assert.deepEqual(schemes(), ['Basic', 'Digest']);
});

test('a 407 body that arrives after its head is skipped on the kept connection', async () => {
  reset({ lateBody: true });
  await dial({ preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Digest']);
  assert.deepEqual(
    seen.map((s) => s.connection),
    [1, 1],
  );
});

test('a proxy that closes after its 407 is asked again on a new connection', async () => {
  reset({ keepAlive: false });
  await dial({ preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Digest']);
  assert.deepEqual(
    seen.map((s) => s.connection),
    [1, 2],
  );
});

test('a second hop that closes after its 407 is reached again through the first', async () => {
  // The first hop: a plain CONNECT proxy that counts the tunnels it opens.
  let tunnels = 0;
  const front = createServer((client) => {
    client.on('error', () => undefined);
    client.once('data', (chunk: Buffer) => {
      const authority = /^CONNECT (\S+):(\d+) /.exec(chunk.toString('latin1'));
      if (!authority) return client.destroy();
      tunnels++;
      const upstream = createConnection({ host: authority[1], port: Number(authority[2]) }, () => {
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        client.pipe(upstream).pipe(client);
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  try {
    reset({ keepAlive: false });
    const frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    await dial({ preemptive: 'none' }, PASSWORD, [{ name: 'front', url: frontUrl }]);
    assert.deepEqual(schemes(), ['-', 'Digest']);
    assert.deepEqual(
      seen.map((s) => s.connection),
      [1, 2],
    );
    assert.equal(tunnels, 2);
  } finally {
    front.close();
  }
});

test('Digest stale=true is answered once with the new nonce', async () => {
  reset({ staleOnce: true });
  await dial({ preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Digest', 'Digest']);
  const nonces = seen
    .slice(1)
    .map((s) => parseChallenges([s.authorization ?? ''])[0]?.params.get('nonce'));
  assert.notEqual(nonces[0], nonces[1]);
});

test('a wrong password through Digest: UPSTREAM_AUTH_FAILED naming the scheme, 502 / 0x01', async () => {
  reset({});
  const err = await failure({ preemptive: 'none' }, 'wrong-pw');
  assert.equal(err.code, 'UPSTREAM_AUTH_FAILED');
  assert.equal(err.message, 'upstream proxy "up" authentication failed (Digest)');
  assert.equal(httpStatus(err), 502);
  assert.equal(socks5Reply(err), 0x01);
  assert.deepEqual(schemes(), ['-', 'Digest']);
});

test('a proxy offering only schemes junction cannot answer is named in the error', async () => {
  reset({ offers: ['Bearer', 'Mutual'] });
  const err = await failure({ preemptive: 'none' });
  assert.equal(err.code, 'UPSTREAM_AUTH_FAILED');
  assert.equal(
    err.message,
    'upstream proxy "up" offers Bearer, Mutual; junction can answer NTLM, Digest, Basic',
  );
});

test('schemes naming only Negotiate without the Kerberos binding: the error says none is available', async () => {
  reset({ offers: ['Negotiate'] });
  const err = await failure({ schemes: ['negotiate'] });
  assert.equal(
    err.message,
    'upstream proxy "up" offers Negotiate; none of the configured schemes (negotiate) is available',
  );
});

test('Basic without pre-emption is sent only after the proxy asks for it', async () => {
  reset({ offers: [BASIC] });
  await dial({ preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Basic']);
});

test('pre-emptive Basic to a Basic proxy takes one request', async () => {
  reset({ offers: [BASIC] });
  await dial({ preemptive: 'basic' });
  assert.deepEqual(schemes(), ['Basic']);
});

test('a wrong pre-emptive Basic is not sent twice', async () => {
  reset({ offers: [BASIC] });
  const err = await failure(undefined, 'wrong-pw');
  assert.equal(err.message, 'upstream proxy "up" authentication failed (Basic)');
  assert.deepEqual(schemes(), ['Basic']);
});

test('schemes: [basic] answers a Digest-and-Basic proxy with Basic', async () => {
  reset({});
  await dial({ schemes: ['basic'], preemptive: 'none' });
  assert.deepEqual(schemes(), ['-', 'Basic']);
});

test('auth: applies to http(s) outbounds only, and pre-emptive Basic needs Basic', () => {
  assert.throws(
    () =>
      configFrom({ outbounds: [{ name: 's', url: 'socks5://h:1', auth: { schemes: ['basic'] } }] }),
    /auth applies to http:\/\/, https:\/\/ and pac outbounds only/,
  );
  assert.throws(
    () =>
      configFrom({
        outbounds: [
          { name: 'h', url: 'http://u:p@h:1', auth: { schemes: ['digest'], preemptive: 'basic' } },
        ],
      }),
    /preemptive: basic needs basic in schemes/,
  );
});

/** A plain GET through an HTTP inbound, forwarded to the proxy in absolute-form. */
async function forwarded(auth: Record<string, unknown> | undefined, method = 'GET', body = '') {
  const g = await startGateway({
    inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [
      {
        name: 'up',
        url: `http://${USER}:${PASSWORD}@127.0.0.1:${port}`,
        ...(auth ? { auth } : {}),
      },
    ],
    rules: [{ outbound: 'up' }],
  });
  try {
    const client = await rawConnect(g.port('web'));
    const length = body === '' ? '' : `Content-Length: ${body.length}\r\n`;
    client.write(
      `${method} http://example.test/page HTTP/1.1\r\nHost: example.test\r\n${length}Connection: close\r\n\r\n${body}`,
    );
    return (await client.readToEnd(10_000)).toString('latin1');
  } finally {
    await g.stop();
  }
}

test('a plain GET through a Digest proxy is sent again with Digest', async () => {
  reset({});
  const answer = await forwarded({ preemptive: 'none' });
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok\n$/);
  assert.deepEqual(schemes(), ['-', 'Digest']);
  const [challenge] = parseChallenges([seen[1]?.authorization ?? '']);
  assert.equal(challenge?.params.get('uri'), 'http://example.test/page');
});

test('a plain GET with pre-emptive Basic refused goes on with Digest', async () => {
  reset({ offers: [DIGEST] });
  const answer = await forwarded(undefined);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.deepEqual(schemes(), ['Basic', 'Digest']);
});

test('a POST with a body is not sent twice: 502 naming the outbound', async () => {
  reset({ offers: [DIGEST] });
  const answer = await forwarded({ preemptive: 'none' }, 'POST', 'data');
  assert.match(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assert.match(answer, /upstream proxy "up" authentication failed\n$/);
  assert.equal(seen.length, 1);
});

test('the next CONNECT answers the remembered Digest challenge at once, nonce count 2', async () => {
  reset({ offers: [DIGEST] });
  const outbound = outboundFor({ preemptive: 'none' });
  await dialThrough(outbound);
  await dialThrough(outbound);
  assert.deepEqual(schemes(), ['-', 'Digest', 'Digest']);
  const [first, again] = seen
    .slice(1)
    .map((s) => parseChallenges([s.authorization ?? ''])[0]?.params);
  assert.ok(first && again);
  assert.equal(first.get('nc'), '00000001');
  assert.equal(again.get('nc'), '00000002');
  assert.equal(again.get('nonce'), first.get('nonce'));
  assert.notEqual(again.get('cnonce'), first.get('cnonce'));
});

test('a remembered Digest nonce that expired is answered afresh, not counted as a failure', async () => {
  reset({ offers: [DIGEST], strictNonce: true });
  const outbound = outboundFor({ preemptive: 'none' });
  await dialThrough(outbound);
  currentNonce = 'expired-meanwhile';
  await dialThrough(outbound);
  assert.deepEqual(schemes(), ['-', 'Digest', 'Digest', 'Digest']);
  await dialThrough(outbound);
  assert.deepEqual(schemes(), ['-', 'Digest', 'Digest', 'Digest', 'Digest']);
});

test('refused credentials rest: the next session fails at once, without asking the proxy', async () => {
  reset({});
  const outbound = outboundFor({ preemptive: 'none' }, 'wrong-pw');
  await assert.rejects(dialThrough(outbound), /authentication failed \(Digest\)$/);
  const asked = seen.length;
  await assert.rejects(
    dialThrough(outbound),
    /authentication failed \(Digest\); the credentials are not sent again for 60 s/,
  );
  assert.equal(seen.length, asked, 'the proxy saw nothing of the second session');
});

test('a lockout rests 60 s, doubles while refusals go on, and ends with a success', () => {
  let now = 0;
  const lockout = new CredentialLockout(() => now);
  const refused = new ProxyError(
    'UPSTREAM_AUTH_FAILED',
    'upstream proxy "up" authentication failed (NTLM)',
  );
  assert.equal(lockout.refused(refused), true, 'the first refusal of a streak is announced');
  now = FIRST_REST_MS - 1;
  assert.match(lockout.blocked()?.message ?? '', /for 1 s, so that the account is not locked out$/);
  now = FIRST_REST_MS;
  assert.equal(lockout.blocked(), undefined);
  assert.equal(lockout.refused(refused), false, 'a streak is announced once');
  now += 2 * FIRST_REST_MS - 1;
  assert.ok(lockout.blocked());
  for (let i = 0; i < 10; i++) lockout.refused(refused);
  now += LONGEST_REST_MS;
  assert.equal(lockout.blocked(), undefined, 'never longer than the longest rest');
  lockout.accepted();
  assert.equal(lockout.refused(refused), true, 'a success ends the streak');
});

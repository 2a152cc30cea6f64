import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { configFrom } from '../helpers/gateway.js';
import { ProxyError, socks5Reply } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { ChallengeAnswerer, type ProxyAuth } from '../../src/outbound/proxy-auth/answerer.js';
import {
  prepareKerberos,
  type GssClient,
  type KerberosBinding,
  type KerberosSupport,
} from '../../src/outbound/proxy-auth/kerberos.js';
import { CredentialLockout } from '../../src/outbound/proxy-auth/lockout.js';
import {
  DEFAULT_POLICY,
  type SchemePolicy,
} from '../../src/outbound/proxy-auth/negotiate-schemes.js';
import type { ProxyCredentials, SchemeName } from '../../src/outbound/proxy-auth/types.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { parseHost, type Target } from '../../src/target.js';

/**
 * Negotiate with a fake GSS-API binding: which scheme junction picks, what it sends, and what
 * happens when Kerberos cannot even begin.
 */

const SPNEGO = 6;
const TOKEN = 'YIIFakeSpnegoToken==';
const NO_TICKET = 'No Kerberos credentials available (default cache: FILE:/tmp/krb5cc_test)';

interface FakeBinding extends KerberosBinding {
  readonly calls: { service: string; mechOID: number; steps: string[] }[];
}

/** A binding that gives TOKEN first, `next` for a server token, or fails to begin. */
function fakeBinding(options: { fail?: string; next?: string } = {}): FakeBinding {
  const calls: FakeBinding['calls'] = [];
  return {
    calls,
    GSS_MECH_OID_SPNEGO: SPNEGO,
    initializeClient(service, { mechOID }) {
      const call = { service, mechOID, steps: [] as string[] };
      calls.push(call);
      const client: GssClient = {
        contextComplete: false,
        step(challenge) {
          call.steps.push(challenge);
          if (options.fail !== undefined) return Promise.reject(new Error(options.fail));
          return Promise.resolve(challenge === '' ? TOKEN : (options.next ?? ''));
        },
      };
      return Promise.resolve(client);
    },
  };
}

const CREDENTIALS: ProxyCredentials = { username: 'alice', password: 'pw' };

function answererFor(
  binding: KerberosBinding | undefined,
  options: {
    schemes?: readonly SchemeName[];
    credentials?: ProxyCredentials | undefined;
    keepsConnection?: boolean;
  } = {},
): { answerer: ChallengeAnswerer; auth: ProxyAuth } {
  const support: KerberosSupport = { binding };
  const policy: SchemePolicy = {
    ...DEFAULT_POLICY,
    ...(options.schemes ? { schemes: options.schemes } : {}),
    kerberos: { support, spn: 'HTTP@proxy.example' },
  };
  const auth: ProxyAuth = {
    credentials: 'credentials' in options ? options.credentials : CREDENTIALS,
    policy,
    preemptive: undefined,
    memory: { last: undefined },
    lockout: new CredentialLockout(),
  };
  const answerer = new ChallengeAnswerer(
    auth,
    '"corp"',
    { method: 'CONNECT', uri: 'example.test:443' },
    { keepsConnection: options.keepsConnection ?? true },
  );
  return { answerer, auth };
}

const EVERY_SCHEME = ['Basic realm="r"', 'Digest realm="r", nonce="n"', 'NTLM', 'Negotiate'];

async function rejection(promise: Promise<unknown>): Promise<ProxyError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ProxyError, String(err));
    return err;
  }
  assert.fail('expected a ProxyError');
}

test('Negotiate is preferred over NTLM, Digest and Basic, with a SPNEGO token for HTTP@<proxy host>', async () => {
  const binding = fakeBinding();
  const { answerer } = answererFor(binding);
  assert.equal(await answerer.answer(EVERY_SCHEME), `Negotiate ${TOKEN}`);
  assert.equal(answerer.scheme, 'Negotiate');
  assert.deepEqual(binding.calls, [
    { service: 'HTTP@proxy.example', mechOID: SPNEGO, steps: [''] },
  ]);
});

test('auth: { schemes: [ntlm] } skips Negotiate even when the proxy offers it first', async () => {
  const binding = fakeBinding();
  const { answerer } = answererFor(binding, { schemes: ['ntlm'] });
  assert.match(await answerer.answer(EVERY_SCHEME), /^NTLM TlRMTVNTUAAB/);
  assert.equal(binding.calls.length, 0);
});

test('without the Kerberos binding Negotiate is not offered and the next scheme answers', async () => {
  const { answerer } = answererFor(undefined);
  assert.match(await answerer.answer(EVERY_SCHEME), /^NTLM /);
  const only = answererFor(undefined, { schemes: ['negotiate'] }).answerer;
  const err = await rejection(only.answer(['Negotiate']));
  assert.equal(
    err.message,
    'upstream proxy "corp" offers Negotiate; none of the configured schemes (negotiate) is available',
  );
});

test('no ticket: Negotiate steps aside for NTLM, before anything reached the proxy', async () => {
  const binding = fakeBinding({ fail: NO_TICKET });
  const { answerer, auth } = answererFor(binding);
  assert.match(await answerer.answer(EVERY_SCHEME), /^NTLM /);
  assert.equal(binding.calls.length, 1);
  assert.equal(auth.lockout.blocked(), undefined);
});

test('no ticket and nothing else offered: the error names Negotiate and the reason, no lockout', async () => {
  const { answerer, auth } = answererFor(fakeBinding({ fail: NO_TICKET }));
  const err = await rejection(answerer.answer(['Negotiate']));
  assert.equal(err.code, 'UPSTREAM_AUTH_FAILED');
  assert.equal(
    err.message,
    `upstream proxy "corp" authentication failed (Negotiate: HTTP@proxy.example: ${NO_TICKET})`,
  );
  assert.equal(socks5Reply(err), 0x01);
  assert.equal(auth.lockout.blocked(), undefined);
});

test('no user in the URL: Negotiate answers with the ticket, the other schemes cannot', async () => {
  const { answerer } = answererFor(fakeBinding(), { credentials: undefined });
  assert.equal(await answerer.answer(EVERY_SCHEME), `Negotiate ${TOKEN}`);
  const without = answererFor(fakeBinding(), { credentials: undefined }).answerer;
  const err = await rejection(without.answer(['NTLM', 'Basic realm="r"']));
  assert.equal(
    err.message,
    'upstream proxy "corp" authentication failed: it wants credentials and none are configured',
  );
});

test('a bare Negotiate after our token is a refusal; a server token continues the context', async () => {
  const refused = answererFor(fakeBinding()).answerer;
  await refused.answer(['Negotiate']);
  const err = await rejection(refused.answer(['Negotiate']));
  assert.equal(err.message, 'upstream proxy "corp" authentication failed (Negotiate)');

  const binding = fakeBinding({ next: 'c2Vjb25k' });
  const continued = answererFor(binding).answerer;
  await continued.answer(['Negotiate']);
  assert.equal(await continued.answer(['Negotiate c2VydmVy']), 'Negotiate c2Vjb25k');
  assert.deepEqual(binding.calls[0]?.steps, ['', 'c2VydmVy']);
  assert.equal(continued.connectionBound, true);
});

test('a sender that cannot keep the connection does not choose Negotiate', async () => {
  const { answerer } = answererFor(fakeBinding(), { keepsConnection: false });
  assert.match(await answerer.answer(EVERY_SCHEME), /^Digest /);
});

// CONNECT through a scripted proxy that takes only Negotiate TOKEN.

const TARGET: Target = { host: parseHost('example.test')!, port: 443 };
const log = createLogger('silent');
let server: Server;
let port: number;
const seen: { connection: number; authorization: string | undefined }[] = [];
const sockets = new Set<Socket>();

before(async () => {
  let connections = 0;
  server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const authorization = /^proxy-authorization: (.*)$/im.exec(buffered.slice(0, end))?.[1];
      buffered = buffered.slice(end + 4);
      seen.push({ connection, authorization });
      socket.write(
        authorization === `Negotiate ${TOKEN}`
          ? 'HTTP/1.1 200 Connection established\r\n\r\n'
          : 'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\n' +
              'Proxy-Authenticate: Basic realm="r"\r\nContent-Length: 0\r\n\r\n',
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

test('CONNECT through a Negotiate proxy without URL credentials: one token, on the same connection', async () => {
  seen.length = 0;
  const binding = fakeBinding();
  const config = configFrom({
    outbounds: [{ name: 'up', url: `http://localhost:${port}`, auth: { spn: 'HTTP@corp.test' } }],
  });
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([]), {
    kerberos: { binding },
  }).get('up');
  assert.ok(outbound);
  const conn = await outbound.dial(TARGET, { signal: AbortSignal.timeout(5000), log });
  conn.stream.destroy();
  assert.deepEqual(seen, [
    { connection: 1, authorization: undefined },
    { connection: 1, authorization: `Negotiate ${TOKEN}` },
  ]);
  assert.equal(binding.calls[0]?.service, 'HTTP@corp.test');
});

test('the service principal defaults to HTTP@<proxy host>', async () => {
  const binding = fakeBinding();
  const config = configFrom({ outbounds: [{ name: 'up', url: `http://localhost:${port}` }] });
  const outbound = createOutbounds(config.outbounds, createDestinationPolicy([]), {
    kerberos: { binding },
  }).get('up');
  assert.ok(outbound);
  const conn = await outbound.dial(TARGET, { signal: AbortSignal.timeout(5000), log });
  conn.stream.destroy();
  assert.equal(binding.calls[0]?.service, 'HTTP@localhost');
});

test('keytab and spn are configuration errors without negotiate in schemes', () => {
  assert.throws(
    () =>
      configFrom({
        outbounds: [
          { name: 'up', url: 'http://u:p@proxy:3128', auth: { schemes: ['ntlm'], spn: 'HTTP@p' } },
        ],
      }),
    /keytab and spn are for Negotiate/,
  );
  assert.throws(
    () =>
      configFrom({
        outbounds: [{ name: 'up', url: 'http://proxy:3128', auth: { keytab: '/nonexistent.kt' } }],
      }),
    /cannot read keytab \/nonexistent\.kt: no such file/,
  );
});

/** The lines a logger wrote, parsed. */
function capture(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text !== '') lines.push(JSON.parse(text) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

const MISSING = { reason: 'the optional kerberos package is not installed' };

test('a configuration asking for Negotiate without the binding: a warning at start naming why', async () => {
  const { log: sink, lines } = capture();
  const support: KerberosSupport = { binding: undefined };
  const config = configFrom({
    outbounds: [
      { name: 'corp', url: 'http://proxy:3128', auth: { schemes: ['negotiate', 'basic'] } },
      { name: 'other', url: 'http://u:p@proxy:3128' },
    ],
  });
  await prepareKerberos(support, config.outbounds, sink, { load: () => Promise.resolve(MISSING) });
  assert.equal(support.binding, undefined);
  const warning = lines.find((l) => l.level === 40);
  assert.ok(warning);
  assert.deepEqual(warning.outbounds, ['corp']);
  assert.equal(warning.reason, MISSING.reason);
  assert.match(String(warning.msg), /^Negotiate \(Kerberos\) is unavailable/);
});

test('Negotiate by default only: no warning when the binding is missing; none loaded without http outbounds', async () => {
  const { log: sink, lines } = capture();
  const config = configFrom({ outbounds: [{ name: 'other', url: 'http://u:p@proxy:3128' }] });
  await prepareKerberos({ binding: undefined }, config.outbounds, sink, {
    load: () => Promise.resolve(MISSING),
  });
  assert.equal(
    lines.some((l) => l.level === 40),
    false,
  );
  let loaded = false;
  const socks = configFrom({ outbounds: [{ name: 's', url: 'socks5://127.0.0.1:1080' }] });
  await prepareKerberos({ binding: undefined }, socks.outbounds, sink, {
    load: () => {
      loaded = true;
      return Promise.resolve(MISSING);
    },
  });
  assert.equal(loaded, false);
});

test('a keytab is the process: KRB5_CLIENT_KTNAME, and tickets in a cache of its own', async () => {
  const { log: sink } = capture();
  const env: NodeJS.ProcessEnv = { KRB5CCNAME: 'FILE:/tmp/krb5cc_user' };
  const support: KerberosSupport = { binding: undefined };
  const config = configFrom({
    outbounds: [{ name: 'corp', url: 'http://proxy:3128', auth: { keytab: import.meta.filename } }],
  });
  const binding = fakeBinding();
  await prepareKerberos(support, config.outbounds, sink, {
    env,
    load: () => Promise.resolve({ binding }),
  });
  assert.equal(support.binding, binding);
  assert.deepEqual(env, {
    KRB5_CLIENT_KTNAME: `FILE:${import.meta.filename}`,
    KRB5CCNAME: 'MEMORY:junction',
  });
});

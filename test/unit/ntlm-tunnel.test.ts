import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { Socket } from 'node:net';
import { configFrom, startGateway } from '../helpers/gateway.js';
import { rawConnect } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks-client.js';
import { httpStatus, ProxyError, socks5Reply } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { ntowfv2 } from '../../src/outbound/proxy-auth/ntlm-crypto.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { parseHost, type Target } from '../../src/target.js';
import { startHeadServer, type HeadServer } from '../helpers/head-server.js';

/**
 * CONNECT through a scripted proxy that speaks NTLM (MS-NTHT): which messages junction sends, on
 * which connection, and the exact error when the proxy refuses them or breaks the handshake.
 */

const PASSWORD = 'Ntlm-pw-5';
const TARGET: Target = { host: parseHost('example.test')!, port: 443 };
const log = createLogger('silent');
const SERVER_CHALLENGE = Buffer.from('0123456789abcdef', 'hex');
/** MsvAvNbDomainName "CORP", MsvAvEOL. */
const TARGET_INFO = Buffer.concat([
  Buffer.from([2, 0, 8, 0]),
  Buffer.from('CORP', 'utf16le'),
  Buffer.alloc(4),
]);

interface Seen {
  readonly connection: number;
  /** '-', 'Basic', or the NTLM message type: 'NTLM1', 'NTLM3'. */
  readonly what: string;
  readonly authenticate: Authenticate | undefined;
}

interface Authenticate {
  readonly user: string;
  readonly domain: string;
  readonly workstation: string;
  readonly valid: boolean;
}

interface Script {
  offers: string[];
  /** Refuses every AUTHENTICATE_MESSAGE. */
  refuse: boolean;
  /** Closes the connection after the first 407, or after the CHALLENGE. */
  closeAfter: 'first' | 'challenge' | undefined;
  /** The CHALLENGE sent for a NEGOTIATE (default: a well-formed one). */
  challenge: string | undefined;
}

let script: Script;
let seen: Seen[] = [];
let proxy: HeadServer;
let port: number;

function challengeMessage(): Buffer {
  const header = Buffer.alloc(48);
  Buffer.from('NTLMSSP\0', 'latin1').copy(header);
  header.writeUInt32LE(2, 8);
  header.writeUInt32LE(0x00000001 | 0x00000200 | 0x00080000 | 0x00800000, 20);
  SERVER_CHALLENGE.copy(header, 24);
  header.writeUInt16LE(TARGET_INFO.length, 40);
  header.writeUInt16LE(TARGET_INFO.length, 42);
  header.writeUInt32LE(48, 44);
  return Buffer.concat([header, TARGET_INFO]);
}

/** Reads an AUTHENTICATE_MESSAGE and checks its NTProofStr independently of junction's code path. */
function readAuthenticate(message: Buffer): Authenticate {
  const field = (at: number): Buffer => {
    const length = message.readUInt16LE(at);
    const offset = message.readUInt32LE(at + 4);
    return message.subarray(offset, offset + length);
  };
  const text = (at: number): string => field(at).toString('utf16le');
  const [user, domain, workstation] = [text(36), text(28), text(44)];
  const nt = field(20);
  const key = ntowfv2(PASSWORD, user, domain);
  const proof = createHmac('md5', key).update(SERVER_CHALLENGE).update(nt.subarray(16)).digest();
  const blobHasTargetInfo = nt.subarray(44, 44 + TARGET_INFO.length).equals(TARGET_INFO);
  return {
    user,
    domain,
    workstation,
    valid: proof.equals(nt.subarray(0, 16)) && blobHasTargetInfo,
  };
}

function refuse(socket: Socket, offers: readonly string[], close: boolean): void {
  const body = 'auth required';
  socket.write(
    [
      'HTTP/1.1 407 Proxy Authentication Required',
      ...offers.map((o) => `Proxy-Authenticate: ${o}`),
      `Content-Length: ${body.length}`,
      `Connection: ${close ? 'close' : 'keep-alive'}`,
      '',
      body,
    ].join('\r\n'),
  );
  if (close) socket.end();
}

function answer(socket: Socket, head: string, connection: number): void {
  const authorization = /^proxy-authorization: (.*)$/im.exec(head)?.[1];
  const ok = head.startsWith('CONNECT ')
    ? 'HTTP/1.1 200 Connection established\r\n\r\n'
    : 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n';
  if (authorization?.startsWith('Basic ')) {
    seen.push({ connection, what: 'Basic', authenticate: undefined });
    if (script.offers.some((o) => o.startsWith('Basic'))) {
      socket.write(ok);
    } else {
      refuse(socket, script.offers, false);
    }
    return;
  }
  if (!authorization?.startsWith('NTLM ')) {
    seen.push({ connection, what: '-', authenticate: undefined });
    refuse(socket, script.offers, script.closeAfter === 'first');
    return;
  }
  const message = Buffer.from(authorization.slice(5), 'base64');
  const type = message.readUInt32LE(8);
  if (type === 1) {
    seen.push({ connection, what: 'NTLM1', authenticate: undefined });
    const challenge = script.challenge ?? challengeMessage().toString('base64');
    refuse(socket, [`NTLM ${challenge}`], script.closeAfter === 'challenge');
    return;
  }
  const authenticate = readAuthenticate(message);
  seen.push({ connection, what: `NTLM${type}`, authenticate });
  if (script.refuse || !authenticate.valid) {
    refuse(socket, script.offers, false);
    return;
  }
  socket.write(ok);
}

before(async () => {
  proxy = await startHeadServer(answer);
  port = proxy.port;
});

after(() => proxy.close());

function reset(partial: Partial<Script>): void {
  script = {
    offers: ['NTLM'],
    refuse: false,
    closeAfter: undefined,
    challenge: undefined,
    ...partial,
  };
  seen = [];
  proxy.resetCount();
}

function outbound(user: string, auth: Record<string, unknown> = { preemptive: 'none' }) {
  const config = configFrom({
    outbounds: [{ name: 'up', url: `http://${user}:${PASSWORD}@127.0.0.1:${port}`, auth }],
  });
  const built = createOutbounds(config.outbounds, createDestinationPolicy([])).get('up');
  assert.ok(built);
  return built;
}

async function dial(user: string, auth?: Record<string, unknown>): Promise<void> {
  const conn = await outbound(user, auth).dial(TARGET, { signal: AbortSignal.timeout(5000), log });
  conn.stream.destroy();
}

async function failure(user: string, auth?: Record<string, unknown>): Promise<ProxyError> {
  try {
    await dial(user, auth);
  } catch (err) {
    assert.ok(err instanceof ProxyError, String(err));
    return err;
  }
  throw new Error('the dial did not fail');
}

/** What the AUTHENTICATE_MESSAGE of the last handshake said. */
const authenticated = (): Authenticate | undefined =>
  seen.find((s) => s.authenticate !== undefined)?.authenticate;

const steps = (): string[] => seen.map((s) => `${s.what}@${s.connection}`);

test('CONNECT through an NTLM proxy: NEGOTIATE, CHALLENGE, AUTHENTICATE on one connection', async () => {
  reset({});
  await dial('CORP%5Calice');
  assert.deepEqual(steps(), ['-@1', 'NTLM1@1', 'NTLM3@1']);
  assert.deepEqual(authenticated(), {
    user: 'alice',
    domain: 'CORP',
    workstation: '',
    valid: true,
  });
});

test('auth: { domain, workstation } go into the AUTHENTICATE_MESSAGE; user@domain goes whole', async () => {
  reset({});
  await dial('alice', { preemptive: 'none', domain: 'CORP', workstation: 'LAPTOP1' });
  assert.deepEqual(authenticated(), {
    user: 'alice',
    domain: 'CORP',
    workstation: 'LAPTOP1',
    valid: true,
  });
  reset({});
  await dial('alice%40corp.example');
  assert.deepEqual(authenticated(), {
    user: 'alice@corp.example',
    domain: '',
    workstation: '',
    valid: true,
  });
});

test('a domain both in the URL and in auth: is a configuration error', () => {
  assert.throws(
    () => outbound('CORP%5Calice', { domain: 'CORP' }),
    /the URL's user names its domain already/,
  );
});

test('a refused AUTHENTICATE: UPSTREAM_AUTH_FAILED naming NTLM, 502 / 0x01', async () => {
  reset({ refuse: true });
  const err = await failure('CORP%5Calice');
  assert.equal(err.code, 'UPSTREAM_AUTH_FAILED');
  assert.equal(err.message, 'upstream proxy "up" authentication failed (NTLM)');
  assert.equal(httpStatus(err), 502);
  assert.equal(socks5Reply(err), 0x01);
  assert.deepEqual(steps(), ['-@1', 'NTLM1@1', 'NTLM3@1']);
});

test('a malformed CHALLENGE: UPSTREAM_AUTH_FAILED naming NTLM, no AUTHENTICATE sent', async () => {
  reset({ challenge: Buffer.from('NTLMSSP\0\x02\0\0\0', 'latin1').toString('base64') });
  const err = await failure('CORP%5Calice');
  assert.equal(err.message, 'upstream proxy "up" authentication failed (NTLM)');
  assert.deepEqual(steps(), ['-@1', 'NTLM1@1']);
});

test('a proxy that closes after its first 407 gets the whole handshake on the next connection', async () => {
  reset({ closeAfter: 'first' });
  await dial('CORP%5Calice');
  assert.deepEqual(steps(), ['-@1', 'NTLM1@2', 'NTLM3@2']);
});

test('a proxy that closes after its CHALLENGE: the handshake is not carried to another connection', async () => {
  reset({ closeAfter: 'challenge' });
  const err = await failure('CORP%5Calice');
  assert.equal(err.code, 'UPSTREAM_FAILED');
  assert.equal(err.message, 'upstream proxy "up" closed the connection during authentication');
  assert.deepEqual(steps(), ['-@1', 'NTLM1@1']);
});

test('NTLM and Basic offered: NTLM by default, Basic with schemes: [basic]', async () => {
  reset({ offers: ['NTLM', 'Basic realm="corp"'] });
  await dial('CORP%5Calice');
  assert.deepEqual(steps(), ['-@1', 'NTLM1@1', 'NTLM3@1']);
  reset({ offers: ['NTLM', 'Basic realm="corp"'] });
  await dial('CORP%5Calice', { schemes: ['basic'], preemptive: 'none' });
  assert.deepEqual(steps(), ['-@1', 'Basic@1']);
});

test('pre-emptive Basic (the default for user:pass@) refused by an NTLM proxy, then NTLM', async () => {
  reset({ offers: ['NTLM'] });
  await dial('CORP%5Calice', {});
  assert.deepEqual(steps(), ['Basic@1', 'NTLM1@1', 'NTLM3@1']);
});

test('through the gateway, a refused NTLM handshake is SOCKS5 0x01 and HTTP 502 naming the outbound', async () => {
  reset({ refuse: true });
  const g = await startGateway({
    inbounds: [{ name: 'mix', type: 'mixed', listen: '127.0.0.1:0' }],
    outbounds: [
      {
        name: 'corp',
        url: `http://CORP%5Calice:${PASSWORD}@127.0.0.1:${port}`,
        auth: { preemptive: 'none' },
      },
    ],
    rules: [{ outbound: 'corp' }],
  });
  try {
    const socks = await socks5Connect(g.port('mix'), 'example.test', 443);
    assert.equal(socks.reply, 0x01);
    socks.client.socket.destroy();
    const client = await rawConnect(g.port('mix'));
    client.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    const text = (await client.readToEnd(10_000)).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(text, /upstream proxy "corp" authentication failed \(NTLM\)/);
  } finally {
    await g.stop();
  }
});

test('a plain GET through an NTLM-and-Basic proxy is answered with NTLM, the handshake on one kept connection', async () => {
  reset({ offers: ['NTLM', 'Basic realm="corp"'] });
  const g = await startGateway({
    inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }],
    outbounds: [
      {
        name: 'corp',
        url: `http://CORP%5Calice:${PASSWORD}@127.0.0.1:${port}`,
        auth: { preemptive: 'none' },
      },
    ],
    rules: [{ outbound: 'corp' }],
  });
  try {
    const client = await rawConnect(g.port('web'));
    client.write(
      'GET http://example.test/page HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n',
    );
    const text = (await client.readToEnd(10_000)).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok\n$/);
    assert.deepEqual(
      seen.map((s) => s.what),
      ['-', 'NTLM1', 'NTLM3'],
    );
    assert.equal(new Set(seen.map((s) => s.connection)).size, 1, 'one connection');
    assert.equal(seen.at(-1)?.authenticate?.valid, true);
  } finally {
    await g.stop();
  }
});

import type { RawClient } from '../../test/helpers/net.js';
import { readResponse, requestBytes } from './http-client.js';
import { LIMITS } from './junction.js';
import { CLOSE_BOUND_MS, STEP_MS, check, delay, type Run, type Scenario } from './scenario.js';
import { originUrl } from './scenarios-transfer.js';
import {
  credentialsFor,
  NAMING_WAYS,
  RAW_WAYS,
  SOCKS4_ON_AUTH_INBOUND,
  USER_INBOUND_WAYS,
  WAYS,
  type CredentialChoice,
  type Way,
} from './ways.js';

/** Sessions that must fail, and clients that never finish a handshake. */

/** A probe's socket is closed "at once": well before handshake_timeout would close it. */
export const PROBE_CLOSE_MS = LIMITS.handshakeMs / 2;
/** A dripping client's bytes come this far apart, each one well inside handshake_timeout. */
export const DRIP_INTERVAL_MS = 250;
/** How long past handshake_timeout a dripping client may stay connected. */
export const DRIP_SLACK_MS = 1_500;

const SOCKS4_FAILED = 0x5b;

/** The answer each protocol gives for a failed connect (errors.ts: SOCKS5 REP, HTTP status). */
function failureCode(way: Way, socks5: number): number {
  if (way.kind === 'socks5') return socks5;
  if (way.kind === 'socks4' || way.kind === 'socks4a') return SOCKS4_FAILED;
  return 502;
}

async function expectClosed(client: RawClient, ms: number, after: string): Promise<Buffer> {
  const started = performance.now();
  try {
    return await client.readToEnd(ms);
  } catch {
    const open = Math.round(performance.now() - started);
    throw new Error(`client connection still open ${open} ms after ${after}`);
  }
}

/** Connects to a target that cannot be reached; the answer must be the protocol's exact code. */
async function failedConnect(
  run: Run,
  host: string,
  port: number,
  socks5: number,
  label: string,
  result: string,
): Promise<void> {
  run.expectLine(result, label);
  const expected = failureCode(run.way, socks5);
  if (run.way.kind === 'forward') {
    const client = await run.connect();
    client.write(
      requestBytes({ method: 'GET', url: `http://${host}:${port}/` }, credentialsFor(run.way)),
    );
    const response = await readResponse(client, STEP_MS);
    check(response.status === expected, `answered ${response.status}, expected ${expected}`);
    client.socket.end();
    return;
  }
  const opened = await run.tunnel({ host, port });
  check(
    opened.stage === 'reply' && opened.code === expected,
    `${opened.stage} answered 0x${opened.code.toString(16)}, expected 0x${expected.toString(16)}`,
  );
  await expectClosed(opened.client, CLOSE_BOUND_MS, 'the failure reply');
}

export const refused: Scenario = {
  name: 'refused',
  weight: 6,
  ways: WAYS,
  run: (run) =>
    failedConnect(run, '127.0.0.1', run.env.refusedPort, 0x05, 'refused', 'CONN_REFUSED'),
};

export const unresolvable: Scenario = {
  name: 'unresolvable',
  weight: 5,
  ways: NAMING_WAYS,
  run: (run) =>
    failedConnect(run, run.env.unresolvableHost, 80, 0x04, 'unresolvable', 'DNS_FAILED'),
};

/**
 * A load balancer's health check: connect, then close without a byte (a FIN, or sometimes a
 * reset). Junction writes nothing and closes its side at once.
 */
export const probe: Scenario = {
  name: 'probe',
  weight: 6,
  ways: RAW_WAYS,
  async run(run) {
    const client = await run.connect();
    if (run.rng.chance(0.3)) {
      client.socket.resetAndDestroy();
      return;
    }
    client.socket.end();
    const got = await expectClosed(client, PROBE_CLOSE_MS, "a probe's FIN");
    check(got.length === 0, `a probe was sent ${got.length} bytes`);
  },
};

/**
 * The handshake of a way, as bytes that never complete it: the last field announces (or, for
 * SOCKS4 and HTTP, never ends) more bytes than the client will drip before the deadline.
 */
function dripBytes(run: Run): Buffer {
  const { way } = run;
  const endless = (unit: string): string => unit.repeat(200);
  if (way.kind === 'socks5') {
    const credentials = credentialsFor(way);
    if (!credentials) {
      return Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, 255]), Buffer.from(endless('d'))]);
    }
    const user = Buffer.from(credentials.username);
    const greetingAndUser = Buffer.from([5, 1, 2, 1, user.length, ...user, 255]);
    return Buffer.concat([greetingAndUser, Buffer.from(endless('p'))]);
  }
  if (way.kind === 'socks4' || way.kind === 'socks4a') {
    return Buffer.concat([Buffer.from([4, 1, 0, 80, 127, 0, 0, 1]), Buffer.from(endless('u'))]);
  }
  const line =
    way.kind === 'connect'
      ? `CONNECT 127.0.0.1:${run.originPort} HTTP/1.1\r\n`
      : `GET ${originUrl(run, '/')} HTTP/1.1\r\n`;
  return Buffer.from(`${line}${endless('X-Drip: 1\r\n')}`, 'latin1');
}

/**
 * A client that sends its handshake a byte at a time, each byte well within handshake_timeout.
 * The deadline runs from accept, so junction closes it about handshake_timeout after connecting,
 * having answered at most the first step (the SOCKS5 method choice) or HTTP 408.
 */
export const drip: Scenario = {
  name: 'drip',
  weight: 0.5,
  ways: WAYS,
  async run(run) {
    const client = await run.connect();
    const started = performance.now();
    const deadline = started + LIMITS.handshakeMs + DRIP_SLACK_MS;
    // Set by the close, which the loop below does not see coming.
    let closed = false as boolean;
    const closing = client.closed(deadline - started).then(
      () => (closed = true),
      () => false,
    );
    for (const byte of dripBytes(run)) {
      if (closed || performance.now() >= deadline) break;
      client.write(Buffer.from([byte]));
      await delay(DRIP_INTERVAL_MS); // the fault itself: a client this slow
    }
    await closing;
    const open = Math.round(performance.now() - started);
    check(closed, `a dripping client was still connected ${open} ms after connecting`);
    const got = await client.readToEnd(1);
    const { way } = run;
    if (way.kind === 'socks5') {
      const method = Buffer.from([5, credentialsFor(way) ? 2 : 0]);
      check(got.equals(method.subarray(0, got.length)), `drip answered ${got.toString('hex')}`);
    } else if (way.kind === 'socks4' || way.kind === 'socks4a') {
      check(got.length === 0, `drip answered ${got.toString('hex')}`);
    } else {
      const text = got.toString('latin1');
      check(
        text === '' || text.startsWith('HTTP/1.1 408 '),
        `drip answered "${text.slice(0, 30)}"`,
      );
    }
  },
};

/** The inbound with a user, asked without credentials or with a wrong password. */
export const authRefused: Scenario = {
  name: 'auth-refused',
  weight: 3,
  ways: [...USER_INBOUND_WAYS, SOCKS4_ON_AUTH_INBOUND],
  async run(run) {
    const { way } = run;
    const choice: CredentialChoice = run.rng.chance(0.5) ? 'wrong' : 'none';
    if (way.kind === 'socks4') {
      run.expectLine('AUTH_REQUIRED');
      const opened = await run.tunnel();
      check(opened.code === SOCKS4_FAILED, `SOCKS4 answered 0x${opened.code.toString(16)}`);
      await expectClosed(opened.client, CLOSE_BOUND_MS, 'the SOCKS4 refusal');
      return;
    }
    if (way.kind === 'socks5') {
      // Refused before any request: there is no session to log.
      const opened = await run.tunnel(undefined, choice);
      const [stage, code] = choice === 'none' ? ['method', 0xff] : ['auth', 0x01];
      check(
        opened.stage === stage && opened.code === code,
        `${choice} credentials: ${opened.stage} answered 0x${opened.code.toString(16)}`,
      );
      await expectClosed(opened.client, CLOSE_BOUND_MS, 'the SOCKS5 refusal');
      return;
    }
    run.expectLine(choice === 'none' ? 'AUTH_REQUIRED' : 'AUTH_FAILED');
    let status: number;
    let challenge: string | undefined;
    if (way.kind === 'forward') {
      const client = await run.connect();
      const url = originUrl(run, `/get/${run.token}/0/0/1`);
      client.write(requestBytes({ method: 'GET', url }, credentialsFor(way, choice)));
      const response = await readResponse(client, STEP_MS);
      status = response.status;
      challenge = response.headers.get('proxy-authenticate');
      client.socket.end();
    } else {
      const opened = await run.tunnel(undefined, choice);
      status = opened.code;
      challenge = opened.challenge;
    }
    check(status === 407, `${choice} credentials answered ${status}, expected 407`);
    check(
      challenge === 'Basic realm="junction"',
      `407 with Proxy-Authenticate "${challenge ?? ''}"`,
    );
  },
};

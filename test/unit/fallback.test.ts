import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ProxyError, type ErrorCode } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createFallbackOutbound, isMemberFault } from '../../src/outbound/fallback.js';
import { refusal } from '../../src/outbound/http-refusal.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { fromSocksError } from '../../src/outbound/socks-hop.js';
import type { DialContext, Outbound } from '../../src/outbound/types.js';
import { createDestinationPolicy } from '../../src/policy.js';
import type { Target } from '../../src/target.js';
import { configFrom } from '../helpers/gateway.js';

const log = createLogger('silent');
const target: Target = { host: { kind: 'domain', name: 'example.com' }, port: 443 };
const context = (signal = new AbortController().signal): DialContext => ({ signal, log });

test('member faults: the proxy unreachable, broken or refusing our credentials', () => {
  const fault = (code: ErrorCode, message = 'x', rep?: number, timedOut = false): boolean =>
    isMemberFault(new ProxyError(code, message, rep === undefined ? {} : { reply: rep }), timedOut);
  assert.equal(fault('UPSTREAM_FAILED', 'cannot reach upstream proxy socks5://127.0.0.1:1'), true);
  assert.equal(fault('UPSTREAM_FAILED', 'upstream proxy x closed the connection during'), true);
  assert.equal(fault('UPSTREAM_AUTH_FAILED'), true);
  assert.equal(fault('CONNECT_TIMEOUT', 'outbound "a" did not connect', undefined, true), true);
});

test('not member faults: what a working upstream reports about the target, and policy', () => {
  const fault = (code: ErrorCode, message = 'x', rep?: number): boolean =>
    isMemberFault(new ProxyError(code, message, rep === undefined ? {} : { reply: rep }));
  assert.equal(fault('CONN_REFUSED', 'x', 0x05), false);
  assert.equal(fault('CONN_REFUSED'), false);
  assert.equal(fault('DNS_FAILED'), false);
  assert.equal(fault('HOST_UNREACHABLE', 'x', 0x04), false);
  assert.equal(fault('UPSTREAM_REFUSED', 'x', 0x02), false);
  assert.equal(fault('UPSTREAM_TIMEOUT'), false);
  assert.equal(fault('RULE_REJECT'), false);
  assert.equal(fault('DESTINATION_DENIED'), false);
  // The session's own timeout or a client that left says nothing about the member.
  assert.equal(fault('CONNECT_TIMEOUT'), false);
  assert.equal(fault('CLIENT_CLOSED'), false);
  // The proxy answered: a SOCKS5 general failure REP, an HTTP status, a SOCKS4 rejection.
  assert.equal(fault('UPSTREAM_FAILED', 'upstream proxy x could not connect', 0x01), false);
  // Decided from what the error says of the upstream, never from its text.
  assert.equal(isMemberFault(refusal(503, '"p"', 'a:1', false)), false);
  assert.equal(isMemberFault(refusal(407, '"p"', 'a:1', true)), true);
  assert.equal(
    isMemberFault(
      fromSocksError('Socks4 Proxy rejected connection - (Rejected)', '"p"', 'a:1', false),
    ),
    false,
  );
  assert.equal(isMemberFault(new ProxyError('UPSTREAM_FAILED', 'x answered 503 y')), true);
});

/** An outbound answering each dial from `script`, counting its dials. */
function fake(
  name: string,
  script: () => ProxyError | 'ok' | 'hang',
): Outbound & { dials: number } {
  const outbound = {
    name,
    dials: 0,
    dial(_target: Target, { signal }: DialContext) {
      outbound.dials++;
      const next = script();
      if (next === 'ok') return Promise.resolve({ stream: new PassThrough(), bound: undefined });
      if (next === 'hang') {
        return new Promise<never>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(signal.reason as Error);
          });
        });
      }
      return Promise.reject(next);
    },
  };
  return outbound;
}

const unreachable = (): ProxyError => new ProxyError('UPSTREAM_FAILED', 'cannot reach upstream');
const options = { attemptTimeoutMs: 5000, retryAfterMs: 60_000, checked: false };

test('the first member up takes the session; a failed one is marked down and skipped after', async () => {
  const a = fake('a', unreachable);
  const b = fake('b', () => 'ok');
  const states: string[] = [];
  const group = createFallbackOutbound('g', [a, b], {
    ...options,
    metrics: { memberState: (g, m, up) => states.push(`${g}/${m}=${up ? 1 : 0}`) },
  });
  await group.dial(target, context());
  assert.deepEqual([a.dials, b.dials], [1, 1]);
  assert.deepEqual(
    group.members.map((m) => m.up),
    [false, true],
  );
  await group.dial(target, context());
  assert.deepEqual([a.dials, b.dials], [1, 2]);
  assert.deepEqual(states, ['g/a=1', 'g/b=1', 'g/a=0']);
});

test('a target failure ends the session with that error, trying no further member', async () => {
  const refused = new ProxyError('CONN_REFUSED', 'refused', { reply: 0x05 });
  const a = fake('a', () => refused);
  const b = fake('b', () => 'ok');
  const group = createFallbackOutbound('g', [a, b], options);
  await assert.rejects(group.dial(target, context()), refused);
  assert.deepEqual([a.dials, b.dials], [1, 0]);
  assert.equal(group.members[0]?.up, true);
});

test('all members down: still tried in order; the client gets the last one error', async () => {
  const last = new ProxyError('UPSTREAM_AUTH_FAILED', 'b: authentication failed');
  const a = fake('a', unreachable);
  const b = fake('b', () => last);
  const group = createFallbackOutbound('g', [a, b], options);
  await assert.rejects(group.dial(target, context()), last);
  await assert.rejects(group.dial(target, context()), last);
  assert.deepEqual([a.dials, b.dials], [2, 2]);
});

test('a down member that gets a session through is marked up again', async () => {
  let aOk = false;
  const a = fake('a', () => (aOk ? 'ok' : unreachable()));
  const b = fake('b', unreachable);
  const group = createFallbackOutbound('g', [a, b], options);
  await assert.rejects(group.dial(target, context()));
  aOk = true;
  await group.dial(target, context());
  assert.deepEqual(
    group.members.map((m) => m.up),
    [true, false],
  );
});

test('a member that hangs past the attempt limit is marked down and the next one tried', async () => {
  const a = fake('a', () => 'hang');
  const b = fake('b', () => 'ok');
  const group = createFallbackOutbound('g', [a, b], { ...options, attemptTimeoutMs: 50 });
  await group.dial(target, context(AbortSignal.timeout(5000)));
  assert.deepEqual([a.dials, b.dials], [1, 1]);
  assert.equal(group.members[0]?.up, false);
});

test('the session timeout ends the dial without marking the member down', async () => {
  const a = fake('a', () => 'hang');
  const group = createFallbackOutbound('g', [a], options);
  const controller = new AbortController();
  const dialing = group.dial(target, context(controller.signal));
  controller.abort(new ProxyError('CONNECT_TIMEOUT', 'connect timed out'));
  await assert.rejects(dialing, { code: 'CONNECT_TIMEOUT' });
  assert.equal(group.members[0]?.up, true);
});

test('createOutbounds builds groups over any member, nested too; a group cannot be chained (a configuration error)', () => {
  const policy = createDestinationPolicy([]);
  const config = configFrom({
    outbounds: [
      { name: 'outer', fallback: ['inner', 'direct'] },
      { name: 'inner', fallback: ['a', 'ab'], check: { tcp: '127.0.0.1:9', interval: '1s' } },
      { name: 'a', url: 'socks5h://127.0.0.1:1080' },
      { name: 'ab', chain: ['a', 'direct'] },
    ],
  });
  const outbounds = createOutbounds(config.outbounds, policy);
  assert.deepEqual([...outbounds.keys()], ['direct', 'reject', 'outer', 'inner', 'a', 'ab']);
  for (const outbound of outbounds.values()) outbound.close?.();
  // What the outbounds cannot be built from is a configuration error, with its position.
  assert.throws(
    () =>
      configFrom({
        outbounds: [
          { name: 'f', fallback: ['direct'] },
          { name: 'c', chain: ['f'] },
        ],
      }),
    /:\d+:\d+: .*fallback group "f" cannot be part of a chain/,
  );
  assert.throws(
    () =>
      configFrom({ outbounds: [{ name: 'f', fallback: ['direct'], check: { tcp: 'nowhere' } }] }),
    /check\.tcp: expected host:port/,
  );
});

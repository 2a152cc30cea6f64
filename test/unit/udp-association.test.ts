import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { ProxyError } from '../../src/errors.js';
import { encodeUdpDatagram } from '../../src/inbound/socks-udp-codec.js';
import { createClientGate } from '../../src/inbound/socks5-udp/client-gate.js';
import type { DropCounter } from '../../src/inbound/socks5-udp/drops.js';
import { createQueueBudget, QUEUE_ENTRY_COST } from '../../src/inbound/socks5-udp/queue-budget.js';
import {
  createRouteTable,
  MAX_TARGETS,
  type Destination,
} from '../../src/inbound/socks5-udp/routes.js';
import type { UdpChannel, UdpDrop } from '../../src/outbound/udp-types.js';
import { formatTarget, parseHost, type Target } from '../../src/target.js';

/** The parts of a SOCKS5 UDP association that need no socket: the client gate and the routes. */

const target = (host: string, port: number): Target => ({ host: parseHost(host)!, port });
const from = (address: string, port: number): RemoteInfo => ({
  address,
  port,
  family: address.includes(':') ? 'IPv6' : 'IPv4',
  size: 0,
});
const frame = (payload: string, frag = 0) =>
  encodeUdpDatagram(target('192.0.2.1', 53), Buffer.from(payload), frag);

function recordingDrops(): DropCounter & { readonly seen: [UdpDrop, string][] } {
  const seen: [UdpDrop, string][] = [];
  return {
    seen,
    dropped(kind, detail) {
      seen.push([kind, detail]);
    },
    counts: () => undefined,
  };
}

test('client gate, declared port: only that IP and port pass; replies go there from the start', () => {
  const gate = createClientGate('127.0.0.1', 5353);
  assert.deepEqual(gate.client, { ip: '127.0.0.1', port: 5353 });
  assert.deepEqual(gate.admit(frame('a'), from('127.0.0.1', 5354)), {
    kind: 'drop',
    drop: 'foreign_source',
    detail: 'from 127.0.0.1:5354',
  });
  const ok = gate.admit(frame('b'), from('127.0.0.1', 5353));
  assert.ok(ok.kind === 'ok');
  assert.equal(ok.payload.toString(), 'b');
  assert.equal(formatTarget(ok.target), '192.0.2.1:53');
});

test('client gate, no declared port: the first valid datagram fixes it; invalid ones and fragments do not', () => {
  const gate = createClientGate('127.0.0.1', 0);
  assert.equal(gate.client, undefined);
  assert.equal(gate.admit(Buffer.from('0000', 'hex'), from('127.0.0.1', 1000)).kind, 'drop');
  assert.deepEqual(gate.admit(frame('f', 1), from('127.0.0.1', 1001)), {
    kind: 'drop',
    drop: 'fragmented',
    detail: 'FRAG 1: fragments are not reassembled',
  });
  assert.equal(gate.admit(frame('x'), from('127.0.0.2', 1002)).kind, 'drop');
  assert.equal(gate.client, undefined, 'nothing valid from the client yet');
  assert.equal(gate.admit(frame('y'), from('127.0.0.1', 1003)).kind, 'ok');
  assert.deepEqual(gate.client, { ip: '127.0.0.1', port: 1003 });
  assert.equal(gate.admit(frame('z'), from('127.0.0.1', 1000)).kind, 'drop');
});

/** A channel that records what it was asked to send. */
function recordingChannel(): UdpChannel & { readonly sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    send(to, payload) {
      sent.push(`${formatTarget(to)} ${payload.toString()}`);
    },
    onMessage() {
      // Replies are not part of the route table.
    },
    close() {
      // Nothing to close.
    },
  };
}

test('route table: datagrams wait (within the budget) while their target is routed, then go in order', async () => {
  const channel = recordingChannel();
  const drops = recordingDrops();
  let answer: (to: Destination) => void = () => undefined;
  const routing = new Promise<Destination>((resolve) => (answer = resolve));
  let asked = 0;
  // Room for two 1-byte datagrams.
  const budget = createQueueBudget(2 * (1 + QUEUE_ENTRY_COST), 256);
  const routes = createRouteTable({
    resolve: () => {
      asked += 1;
      return routing;
    },
    budget,
    drops,
    failed: () => assert.fail('routing did not fail'),
  });
  const to = target('192.0.2.1', 53);
  for (const payload of ['1', '2', '3']) routes.send(to, Buffer.from(payload));
  assert.deepEqual(drops.seen, [['queue_full', '192.0.2.1:53 is not routed yet']]);
  answer(channel);
  await routing;
  await new Promise((resolve) => setImmediate(resolve));
  routes.send(to, Buffer.from('4'));
  assert.deepEqual(channel.sent, ['192.0.2.1:53 1', '192.0.2.1:53 2', '192.0.2.1:53 4']);
  assert.equal(asked, 1, 'one routing decision per target');
  assert.equal(budget.take(1) && budget.take(1), true, 'the budget is whole again');
});

test(`route table: a refused target drops its datagrams; past ${MAX_TARGETS} targets new ones are dropped; a failed route ends the association`, async () => {
  const drops = recordingDrops();
  const failures: ProxyError[] = [];
  const routes = createRouteTable({
    resolve: (to) =>
      to.port === 1
        ? Promise.reject(new ProxyError('UPSTREAM_FAILED', 'upstream refused UDP ASSOCIATE'))
        : Promise.resolve({ kind: 'rejected', detail: 'rejected by rule', once: 'rejected' }),
    budget: createQueueBudget(64 * 1024, 256),
    drops,
    failed: (err) => failures.push(err),
  });
  for (let i = 0; i < MAX_TARGETS; i++)
    routes.send(target('192.0.2.1', 1000 + i), Buffer.from('x'));
  await new Promise((resolve) => setImmediate(resolve));
  routes.send(target('192.0.2.1', 1000), Buffer.from('again'));
  routes.send(target('192.0.2.1', 1), Buffer.from('one too many'));
  const kinds = drops.seen.map(([kind]) => kind);
  assert.equal(kinds.filter((k) => k === 'rejected').length, MAX_TARGETS + 1);
  assert.deepEqual(kinds.slice(-1), ['too_many_targets']);
  assert.equal(failures.length, 0);

  const failing = createRouteTable({
    resolve: () => Promise.reject(new ProxyError('UPSTREAM_FAILED', 'upstream refused')),
    budget: createQueueBudget(64 * 1024, 256),
    drops,
    failed: (err) => failures.push(err),
  });
  failing.send(target('192.0.2.1', 1), Buffer.from('x'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    failures.map((e) => [e.code, e.message]),
    [['UPSTREAM_FAILED', 'upstream refused']],
  );
  failing.close();
  failing.send(target('192.0.2.1', 2), Buffer.from('after close'));
  assert.equal(failures.length, 1, 'nothing happens once closed');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOutbounds } from '../../src/outbound/index.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { configFrom } from '../helpers/gateway.js';

/**
 * UDP is a capability of the outbound graph: `createOutbounds` gives each outbound that can carry
 * datagrams its `udp` side, in the same walk that builds its TCP side, and no other.
 */

test('the outbounds that carry UDP have `udp`: direct, reject, socks5(h), a chain that is direct or one SOCKS5 proxy; http, socks4, longer chains and fallback groups have none', () => {
  const config = configFrom({
    outbounds: [
      { name: 's5', url: 'socks5://127.0.0.1:1080' },
      { name: 's5h', url: 'socks5h://u:pw@127.0.0.1:1080' },
      { name: 's4', url: 'socks4a://127.0.0.1:1080' },
      { name: 'web', url: 'http://127.0.0.1:3128' },
      { name: 'tls', url: 'https://127.0.0.1:3129' },
      { name: 'plain', chain: ['direct'] },
      { name: 'one', chain: ['direct', 's5', 'direct'] },
      { name: 'nested', chain: ['one'] },
      { name: 'two', chain: ['web', 's5'] },
      { name: 'twice', chain: ['s5', 's5h'] },
      { name: 'group', fallback: ['s5', 'direct'] },
    ],
  });
  const outbounds = createOutbounds(config.outbounds, createDestinationPolicy([]));
  const carrying = [...outbounds.values()].filter((o) => o.udp).map((o) => o.name);
  assert.deepEqual(carrying, ['direct', 'reject', 's5', 's5h', 'plain', 'one', 'nested']);
  for (const outbound of outbounds.values()) outbound.close?.();
});

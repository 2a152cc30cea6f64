import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { configSchema } from '../../src/config/schema.js';
import { parseHost } from '../../src/target.js';
import { createRouter } from '../../src/route/router.js';
import type { Resolver } from '../../src/route/types.js';

const rules = configSchema('/tmp').parse({
  rules: [
    { domain: ['a.example'], domain_suffix: ['example.com'], outbound: 'reject' },
    { domain_keyword: ['x'], domain_regex: ['^[a-z]+\\d$'], port: ['1-1024'], outbound: 'reject' },
    { ip_cidr: ['10.0.0.0/8', 'fd00::/8'], resolve: true, user: ['bob'], outbound: 'reject' },
    { source_cidr: ['192.168.0.0/16'], inbound: ['lan'], outbound: 'reject' },
  ],
  inbounds: [{ name: 'lan', type: 'mixed', listen: '127.0.0.1:1080' }],
}).rules;

// Answers garbage as often as addresses: whatever DNS hands back must not break routing.
const resolver: Resolver = (name) =>
  name.length % 3 === 0
    ? Promise.reject(new Error('ENOTFOUND'))
    : Promise.resolve([name, '10.0.0.1', '::ffff:10.0.0.1', '']);

test('decide never throws for any host string that parseHost accepts', async () => {
  const router = createRouter(rules, resolver);
  const hostText = fc.oneof(
    fc.string(),
    fc.domain(),
    fc.ipV4(),
    fc.ipV6().map((ip) => `[${ip}]`),
    fc.stringMatching(/^[a-z0-9.-]{1,40}\.?$/),
  );
  await fc.assert(
    fc.asyncProperty(
      hostText,
      fc.integer({ min: 1, max: 65535 }),
      fc.option(fc.constantFrom('bob', 'alice'), { nil: undefined }),
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()),
      async (raw, port, user, sourceIp) => {
        const host = parseHost(raw);
        if (!host) return;
        const source = { ip: sourceIp, port: 1 };
        const target = { host, port };
        const decision = await router.decide({ inbound: 'lan', source, user, target });
        assert.ok(decision.outbound === 'reject' || decision.outbound === 'direct');
      },
    ),
    { numRuns: 2000 },
  );
});

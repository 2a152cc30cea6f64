import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseChallenges } from '../../src/outbound/proxy-auth/challenge.js';
import { ntlm } from '../../src/outbound/proxy-auth/ntlm.js';
import { parseChallengeMessage } from '../../src/outbound/proxy-auth/ntlm-messages.js';

/**
 * The CHALLENGE_MESSAGE comes from the network: whatever its bytes, reading it gives a message
 * whose parts lie within it, or nothing; answering it gives a header, or nothing. Never a throw.
 */

interface AvPair {
  readonly id: number;
  readonly value: Buffer;
}

interface Model {
  readonly flags: number;
  readonly serverChallenge: Buffer;
  readonly targetName: Buffer;
  readonly pairs: readonly AvPair[];
  readonly timestamp: bigint | undefined;
}

const bytes = (max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));

const model: fc.Arbitrary<Model> = fc.record({
  // NEGOTIATE_TARGET_INFO set three times in four: it says whether the target info is there.
  flags: fc
    .tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 3 }))
    .map(([flags, info]) => (info === 0 ? flags & ~0x00800000 : flags | 0x00800000) >>> 0),
  serverChallenge: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b)),
  targetName: bytes(40),
  // Ids 1-6 and 8-10: every defined AvId but MsvAvEOL and MsvAvTimestamp, placed by the model.
  pairs: fc.array(
    fc.record({
      id: fc.constantFrom(1, 2, 3, 4, 5, 6, 8, 9, 10),
      value: bytes(60),
    }),
    { maxLength: 6 },
  ),
  timestamp: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
});

function avPairs(m: Model): Buffer {
  const pair = (id: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(id, 0);
    head.writeUInt16LE(value.length, 2);
    return Buffer.concat([head, value]);
  };
  const stamp = Buffer.alloc(8);
  if (m.timestamp !== undefined) stamp.writeBigUInt64LE(m.timestamp);
  return Buffer.concat([
    ...m.pairs.map((p) => pair(p.id, p.value)),
    ...(m.timestamp === undefined ? [] : [pair(7, stamp)]),
    pair(0, Buffer.alloc(0)),
  ]);
}

/** A CHALLENGE_MESSAGE as MS-NLMP §2.2.1.2 lays it out: payload after a 56-byte header. */
function write(m: Model): Buffer {
  const info = avPairs(m);
  const header = Buffer.alloc(56);
  Buffer.from('NTLMSSP\0', 'latin1').copy(header);
  header.writeUInt32LE(2, 8);
  header.writeUInt16LE(m.targetName.length, 12);
  header.writeUInt16LE(m.targetName.length, 14);
  header.writeUInt32LE(56, 16);
  header.writeUInt32LE(m.flags, 20);
  m.serverChallenge.copy(header, 24);
  header.writeUInt16LE(info.length, 40);
  header.writeUInt16LE(info.length, 42);
  header.writeUInt32LE(56 + m.targetName.length, 44);
  return Buffer.concat([header, m.targetName, info]);
}

function wellFormed(message: Buffer): void {
  const parsed = parseChallengeMessage(message);
  if (parsed === undefined) return;
  assert.equal(parsed.serverChallenge.length, 8);
  assert.ok(parsed.targetInfo.length <= message.length);
  assert.ok(message.includes(parsed.targetInfo), 'the target info is part of the message');
}

test('NTLM: CHALLENGE_MESSAGEs written by MS-NLMP §2.2.1.2 read back unchanged', () => {
  fc.assert(
    fc.property(model, (m) => {
      const parsed = parseChallengeMessage(write(m));
      assert.ok(parsed);
      assert.equal(parsed.flags, m.flags);
      assert.deepEqual(parsed.serverChallenge, m.serverChallenge);
      const withInfo = (m.flags & 0x00800000) !== 0;
      assert.deepEqual(parsed.targetInfo, withInfo ? avPairs(m) : Buffer.alloc(0));
      assert.equal(parsed.timestamp, withInfo ? m.timestamp : undefined);
    }),
    { numRuns: 2000 },
  );
});

test('NTLM: a CHALLENGE_MESSAGE with bytes changed, cut or added is read or refused, never thrown at', () => {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), byte: fc.constant(0) }),
    fc.record({ kind: fc.constant('add' as const), at: fc.nat({ max: 64 }), byte: fc.nat(255) }),
  );
  fc.assert(
    fc.property(model, fc.array(edit, { minLength: 1, maxLength: 6 }), (m, edits) => {
      let message = write(m);
      for (const e of edits) {
        if (message.length === 0) break;
        const at = e.at % message.length;
        if (e.kind === 'set') message[at] = e.byte;
        else if (e.kind === 'cut') message = message.subarray(0, at);
        else message = Buffer.concat([message, Buffer.alloc(e.at, e.byte)]);
      }
      wellFormed(message);
    }),
    { numRuns: 5000 },
  );
});

test('NTLM: any bytes are read or refused, never thrown at', () => {
  const signed = bytes(200).map((rest) =>
    Buffer.concat([Buffer.from('NTLMSSP\0\x02\0\0\0', 'latin1'), rest]),
  );
  fc.assert(
    fc.property(fc.oneof(bytes(300), signed), (message) => {
      wellFormed(message);
    }),
    { numRuns: 5000 },
  );
});

test('NTLM: any second challenge is answered with NTLM <base64> or not at all', () => {
  const token = fc.oneof(
    model.map((m) => write(m).toString('base64')),
    bytes(300).map((b) => b.toString('base64')),
    fc.string({ maxLength: 100 }),
  );
  fc.assert(
    fc.property(token, (text) => {
      const exchange = ntlm.start({ username: 'CORP\\user', password: 'pw' });
      const request = { method: 'CONNECT', uri: 'example.test:443' };
      const [bare] = parseChallenges(['NTLM']);
      assert.ok(bare);
      assert.ok(exchange.answer(bare, request));
      for (const challenge of parseChallenges([`NTLM ${text}`])) {
        const answer = exchange.answer(challenge, request);
        if (answer !== undefined) assert.match(answer, /^NTLM [A-Za-z0-9+/]+=*$/);
      }
    }),
    { numRuns: 3000 },
  );
});

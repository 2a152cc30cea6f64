import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges, type Challenge } from '../../src/outbound/proxy-auth/challenge.js';
import { md4 } from '../../src/outbound/proxy-auth/md4.js';
import {
  authenticate,
  challengeMessageOf,
  ntlm,
  ntlmAccount,
} from '../../src/outbound/proxy-auth/ntlm.js';
import {
  filetime,
  lmv2Response,
  ntlmv2Response,
  ntowfv2,
} from '../../src/outbound/proxy-auth/ntlm-crypto.js';
import {
  FLAGS,
  negotiateMessage,
  parseChallengeMessage,
} from '../../src/outbound/proxy-auth/ntlm-messages.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** MS-NLMP §4.2.1: the values every example of §4.2 uses. */
const SPEC = {
  user: 'User',
  domain: 'Domain',
  password: 'Password',
  serverChallenge: hex('0123456789abcdef'),
  clientChallenge: hex('aaaaaaaaaaaaaaaa'),
  time: 0n,
};

/** MS-NLMP §4.2.4.3: the CHALLENGE_MESSAGE of the NTLMv2 example. */
const SPEC_CHALLENGE = hex(`
  4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef
  0000000000000000 24002400 44000000 060070170000000f
  530065007200760065007200
  02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000`);
/** Its TargetInfo: MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server", MsvAvEOL. */
const SPEC_TARGET_INFO = hex(`
  02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000`);

/** §4.2.4.1.1 */
const RESPONSE_KEY = hex('0c868a403bfd7a93a3001ef22ef02e3f');

function only(text: string): Challenge {
  const [challenge] = parseChallenges([text]);
  assert.ok(challenge);
  return challenge;
}

/** The payload a Len/MaxLen/Offset triple of `message` points to. */
function field(message: Buffer, at: number): Buffer {
  const length = message.readUInt16LE(at);
  const offset = message.readUInt32LE(at + 4);
  return message.subarray(offset, offset + length);
}

test('MD4 gives the digests of the RFC 1320 §A.5 test suite', () => {
  const suite: readonly (readonly [string, string])[] = [
    ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
    ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
    ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
    ['message digest', 'd9130a8164549fe818874806e1c7014b'],
    ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
    [
      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
      '043f8582f241db351ce627e153e7f0e4',
    ],
    ['1234567890'.repeat(8), 'e33b4ddc9c38f2199c3e7b164fcc0536'],
  ];
  for (const [input, digest] of suite) {
    assert.equal(md4(Buffer.from(input, 'latin1')).toString('hex'), digest, JSON.stringify(input));
  }
});

test('MD4 pads across block boundaries (55 to 65, 119 and 120 bytes)', () => {
  // The lengths where the bit count fits the last block or needs one more. Expected values
  // from OpenSSL's legacy provider (openssl dgst -md4 -provider legacy).
  const expected: readonly (readonly [number, string])[] = [
    [55, 'c889c81dd86c4d2e025778944ea02881'],
    [56, 'd5f9a9e9257077a5f08b0b92f348b0ad'],
    [63, '7ea3da77432d44c323671097d1348fc8'],
    [64, '52f5076fabd22680234a3fa9f9dc5732'],
    [65, '330e377bf231f3cacfecc2c182fe7e5b'],
    [119, 'e65dd227ccef97fa1d34d70189120f76'],
    [120, 'b03ddbd470b47c013e0c7ab2ddd763db'],
  ];
  for (const [length, digest] of expected) {
    assert.equal(md4(Buffer.alloc(length, 0x61)).toString('hex'), digest, `${length} bytes`);
  }
});

test('NTOWFv2 of the MS-NLMP §4.2.4.1.1 example', () => {
  assert.deepEqual(ntowfv2(SPEC.password, SPEC.user, SPEC.domain), RESPONSE_KEY);
});

test('LMv2 response of the MS-NLMP §4.2.4.2.1 example', () => {
  assert.deepEqual(
    lmv2Response(RESPONSE_KEY, SPEC.serverChallenge, SPEC.clientChallenge),
    hex('86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa'),
  );
});

test('NTLMv2 response and session base key of the MS-NLMP §4.2.4 example', () => {
  const { ntResponse, sessionBaseKey } = ntlmv2Response({
    responseKey: RESPONSE_KEY,
    serverChallenge: SPEC.serverChallenge,
    clientChallenge: SPEC.clientChallenge,
    time: SPEC.time,
    targetInfo: SPEC_TARGET_INFO,
  });
  // §4.2.4.2.2: NTProofStr, then the blob as §4.2.4.4's AUTHENTICATE_MESSAGE carries it.
  assert.deepEqual(
    ntResponse,
    Buffer.concat([
      hex('68cd0ab851e51c96aabc927bebef6a1c'),
      hex('0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000'),
      SPEC_TARGET_INFO,
      hex('00000000'),
    ]),
  );
  // §4.2.4.1.2
  assert.deepEqual(sessionBaseKey, hex('8de40ccadbc14a82f15cb0ad0de95ca3'));
});

test('the §4.2.4.3 CHALLENGE_MESSAGE is read: flags, server challenge, target info', () => {
  const message = parseChallengeMessage(SPEC_CHALLENGE);
  assert.ok(message);
  assert.equal(message.flags, 0xe28a8233);
  assert.deepEqual(message.serverChallenge, SPEC.serverChallenge);
  assert.deepEqual(message.targetInfo, SPEC_TARGET_INFO);
  assert.equal(message.timestamp, undefined);
});

test('the AUTHENTICATE_MESSAGE for the §4.2.4 example carries its LMv2 and NTLMv2 responses', () => {
  const challenge = parseChallengeMessage(SPEC_CHALLENGE);
  assert.ok(challenge);
  // A clock at FILETIME 0, as in the example: the server sent no MsvAvTimestamp.
  const answer = authenticate(
    { user: SPEC.user, domain: SPEC.domain, workstation: 'COMPUTER', password: SPEC.password },
    challenge,
    { clientChallenge: SPEC.clientChallenge, now: () => -11_644_473_600_000 },
  );
  assert.ok(answer);
  const { message } = answer;
  assert.deepEqual(message.subarray(0, 12), hex('4e544c4d53535000 03000000'));
  assert.deepEqual(field(message, 12), hex('86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa'));
  assert.deepEqual(field(message, 20).subarray(0, 16), hex('68cd0ab851e51c96aabc927bebef6a1c'));
  assert.deepEqual(field(message, 28), Buffer.from('Domain', 'utf16le'));
  assert.deepEqual(field(message, 36), Buffer.from('User', 'utf16le'));
  assert.deepEqual(field(message, 44), Buffer.from('COMPUTER', 'utf16le'));
  assert.equal(field(message, 52).length, 0, 'no EncryptedRandomSessionKey');
  const flags = message.readUInt32LE(60);
  assert.ok(flags & FLAGS.UNICODE && flags & FLAGS.NTLM);
  assert.equal(flags & FLAGS.OEM, 0);
  assert.equal(flags & FLAGS.KEY_EXCH, 0, 'no key exchange: nothing is signed or sealed');
  assert.deepEqual(answer.response.sessionBaseKey, hex('8de40ccadbc14a82f15cb0ad0de95ca3'));
});

test('with an MsvAvTimestamp the server time goes in the blob and the LM response is Z(24)', () => {
  const stamp = hex('0090d336b734c301');
  const info = Buffer.concat([hex('07000800'), stamp, SPEC_TARGET_INFO]);
  const header = Buffer.alloc(48);
  Buffer.from('NTLMSSP\0', 'latin1').copy(header);
  header.writeUInt32LE(2, 8);
  header.writeUInt32LE(FLAGS.OEM | FLAGS.NTLM | FLAGS.TARGET_INFO, 20);
  SPEC.serverChallenge.copy(header, 24);
  header.writeUInt16LE(info.length, 40);
  header.writeUInt16LE(info.length, 42);
  header.writeUInt32LE(48, 44);
  const challenge = parseChallengeMessage(Buffer.concat([header, info]));
  assert.ok(challenge);
  assert.equal(challenge.timestamp, stamp.readBigUInt64LE(0));
  const answer = authenticate(ntlmAccount({ username: 'u', password: 'p' }), challenge, {
    now: () => {
      throw new Error('the clock is not read when the server gives the time');
    },
  });
  assert.ok(answer);
  assert.deepEqual(field(answer.message, 12), Buffer.alloc(24));
  assert.deepEqual(field(answer.message, 20).subarray(24, 32), stamp);
  // OEM only offered: strings in OEM.
  assert.deepEqual(field(answer.message, 36), Buffer.from('u', 'latin1'));
  assert.equal(answer.message.readUInt32LE(60) & FLAGS.UNICODE, 0);
});

test('FILETIME counts 100 ns since 1601', () => {
  assert.equal(filetime(0), 116_444_736_000_000_000n);
  assert.equal(filetime(-11_644_473_600_000), 0n);
});

test('the NEGOTIATE_MESSAGE asks for NTLM, Unicode or OEM, the target, extended security, 128/56, no key exchange', () => {
  const message = negotiateMessage();
  assert.equal(message.length, 32);
  assert.deepEqual(message.subarray(0, 12), hex('4e544c4d53535000 01000000'));
  assert.equal(message.readUInt32LE(12), 0xa0088207);
  assert.deepEqual(message.subarray(16), hex('00000000 20000000 00000000 20000000'));
});

test('account: DOMAIN\\user splits, user@domain goes whole, the configured domain otherwise', () => {
  const password = 'pw';
  assert.deepEqual(ntlmAccount({ username: 'CORP\\alice', password, domain: 'OTHER' }), {
    user: 'alice',
    domain: 'CORP',
    workstation: '',
    password,
  });
  assert.deepEqual(ntlmAccount({ username: 'alice@corp.example', password, domain: 'X' }), {
    user: 'alice@corp.example',
    domain: '',
    workstation: '',
    password,
  });
  assert.deepEqual(
    ntlmAccount({ username: 'alice', password, domain: 'CORP', workstation: 'WS' }),
    {
      user: 'alice',
      domain: 'CORP',
      workstation: 'WS',
      password,
    },
  );
});

test('the exchange: NEGOTIATE for a bare NTLM, AUTHENTICATE for the CHALLENGE, then nothing', () => {
  const exchange = ntlm.start({ username: 'CORP\\alice', password: 'pw' });
  const request = { method: 'CONNECT', uri: 'example.test:443' };
  const first = exchange.answer(only('NTLM'), request);
  assert.equal(first, `NTLM ${negotiateMessage().toString('base64')}`);
  const second = exchange.answer(only(`NTLM ${SPEC_CHALLENGE.toString('base64')}`), request);
  assert.ok(second !== undefined && second.startsWith('NTLM '));
  const message = Buffer.from(second.slice(5), 'base64');
  assert.deepEqual(field(message, 36), Buffer.from('alice', 'utf16le'));
  assert.deepEqual(field(message, 28), Buffer.from('CORP', 'utf16le'));
  // A third challenge: the proxy refused the AUTHENTICATE_MESSAGE.
  assert.equal(exchange.answer(only('NTLM'), request), undefined);
});

test('the exchange refuses a CHALLENGE nobody asked for, and a malformed one', () => {
  const request = { method: 'CONNECT', uri: 'example.test:443' };
  const unasked = ntlm.start({ username: 'u', password: 'p' });
  assert.equal(
    unasked.answer(only(`NTLM ${SPEC_CHALLENGE.toString('base64')}`), request),
    undefined,
  );
  const malformed = ntlm.start({ username: 'u', password: 'p' });
  assert.ok(malformed.answer(only('NTLM'), request));
  assert.equal(malformed.answer(only('NTLM AAAA'), request), undefined);
});

test('a CHALLENGE_MESSAGE is refused when a field points outside it', () => {
  const truncated = SPEC_CHALLENGE.subarray(0, SPEC_CHALLENGE.length - 4);
  assert.equal(parseChallengeMessage(truncated), undefined);
  const lying = Buffer.from(SPEC_CHALLENGE);
  lying.writeUInt32LE(0xffffff00, 44);
  assert.equal(parseChallengeMessage(lying), undefined);
  const noEol = Buffer.from(SPEC_CHALLENGE);
  noEol.writeUInt16LE(0x20, 40); // the target info without its MsvAvEOL
  assert.equal(parseChallengeMessage(noEol), undefined);
  assert.equal(challengeMessageOf(only('NTLM not-base-64_~')), undefined);
  assert.equal(challengeMessageOf(only(`NTLM ${'A'.repeat(20_000)}`)), undefined);
});

test('a CHALLENGE_MESSAGE without TargetInfo, its TargetName pointing nowhere, is read (ntlm_fake_auth)', () => {
  // As squid's ntlm_fake_auth sends it: no TARGET_INFO flag, a 40-byte header, the name
  // "WORKGROUP" after it and a garbage offset for it.
  const fake = Buffer.from(
    'TlRMTVNTUAACAAAACQAJAK6qqqoHggigW2JPh+ydnCgAAAAAAAA6AFdPUktHUk9VUA==',
    'base64',
  );
  const message = parseChallengeMessage(fake);
  assert.ok(message);
  assert.deepEqual(message.serverChallenge, hex('5b624f87ec9d9c28'));
  assert.equal(message.targetInfo.length, 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basic } from '../../src/outbound/proxy-auth/basic.js';
import { parseChallenges, type Challenge } from '../../src/outbound/proxy-auth/challenge.js';
import { digest, digestAuthorization } from '../../src/outbound/proxy-auth/digest.js';
import { chooseScheme, DEFAULT_POLICY } from '../../src/outbound/proxy-auth/negotiate-schemes.js';

/** RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5. */
const RFC_CHALLENGE = (algorithm: string): string =>
  `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, ` +
  'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", ' +
  'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"';
const MUFASA = { username: 'Mufasa', password: 'Circle of Life' };
const RFC_CNONCE = 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ';

function only(text: string): Challenge {
  const [challenge, ...rest] = parseChallenges([text]);
  assert.ok(challenge);
  assert.equal(rest.length, 0);
  return challenge;
}

function responseOf(header: string | undefined): string | undefined {
  return only(header ?? '').params.get('response');
}

test('Digest MD5 answers the RFC 7616 §3.9.1 example exactly', () => {
  const header = digestAuthorization({
    challenge: only(RFC_CHALLENGE('MD5')),
    request: { method: 'GET', uri: '/dir/index.html' },
    credentials: MUFASA,
    nc: 1,
    cnonce: RFC_CNONCE,
  });
  assert.equal(responseOf(header), '8ca523f5e9506fed4657c9700eebdbec');
  assert.equal(
    header,
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", ' +
      'algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, ' +
      `cnonce="${RFC_CNONCE}", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", ` +
      'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
  );
});

test('Digest SHA-256 answers the RFC 7616 §3.9.1 example exactly', () => {
  const header = digestAuthorization({
    challenge: only(RFC_CHALLENGE('SHA-256')),
    request: { method: 'GET', uri: '/dir/index.html' },
    credentials: MUFASA,
    nc: 1,
    cnonce: RFC_CNONCE,
  });
  assert.equal(
    responseOf(header),
    '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
  );
});

test('Digest userhash sends H(user:realm) as the username (RFC 7616 §3.4.4)', () => {
  const header = digestAuthorization({
    challenge: only(`${RFC_CHALLENGE('SHA-256')}, userhash=true`),
    request: { method: 'GET', uri: '/dir/index.html' },
    credentials: MUFASA,
    nc: 1,
    cnonce: RFC_CNONCE,
  });
  const params = only(header ?? '').params;
  // sha256("Mufasa:http-auth@example.org")
  assert.equal(
    params.get('username'),
    'a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23b6ee12b5b6',
  );
  assert.equal(params.get('userhash'), 'true');
});

test('Digest without qop answers as RFC 2069: H(HA1:nonce:HA2), no nc or cnonce', () => {
  // RFC 2069 §2.4's example: Mufasa / "CircleOfLife", GET /dir/index.html.
  const header = digestAuthorization({
    challenge: only(
      'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    ),
    request: { method: 'GET', uri: '/dir/index.html' },
    credentials: { username: 'Mufasa', password: 'CircleOfLife' },
    nc: 1,
    cnonce: 'unused',
  });
  const params = only(header ?? '').params;
  assert.equal(params.get('response'), '1949323746fe6a43ef61f9606e7febea');
  assert.equal(params.has('nc'), false);
  assert.equal(params.has('cnonce'), false);
});

test('Digest MD5-sess hashes HA1 with the nonce and cnonce (RFC 7616 §3.4.2)', () => {
  const header = digestAuthorization({
    challenge: only(RFC_CHALLENGE('MD5-sess')),
    request: { method: 'CONNECT', uri: 'example.com:443' },
    credentials: MUFASA,
    nc: 1,
    cnonce: RFC_CNONCE,
  });
  const params = only(header ?? '').params;
  assert.equal(params.get('algorithm'), 'MD5-sess');
  assert.equal(params.get('uri'), 'example.com:443');
  assert.notEqual(params.get('response'), undefined);
});

test('Digest answers once, again on stale=true once, then gives up', () => {
  const exchange = digest.start(MUFASA);
  const request = { method: 'CONNECT', uri: 'example.com:443' };
  assert.match(exchange.answer(only(RFC_CHALLENGE('MD5')), request) ?? '', /^Digest /);
  const stale = only(`${RFC_CHALLENGE('MD5')}, stale=true`);
  assert.match(exchange.answer(stale, request) ?? '', /^Digest /);
  assert.equal(exchange.answer(stale, request), undefined);
});

test('Basic answers once', () => {
  const exchange = basic.start({ username: 'Aladdin', password: 'open sesame' });
  const challenge = only('Basic realm="WallyWorld"');
  const request = { method: 'CONNECT', uri: 'h:1' };
  assert.equal(exchange.answer(challenge, request), 'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  assert.equal(exchange.answer(challenge, request), undefined);
});

test('Proxy-Authenticate: several challenges in one field and across fields', () => {
  const challenges = parseChallenges([
    'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
    'NTLM, Negotiate TlRMTVNTUAACAAAA==',
  ]);
  assert.deepEqual(
    challenges.map((c) => [c.scheme, c.token68, Object.fromEntries(c.params)]),
    [
      ['Newauth', undefined, { realm: 'apps', type: '1', title: 'Login to "apps"' }],
      ['Basic', undefined, { realm: 'simple' }],
      ['NTLM', undefined, {}],
      ['Negotiate', 'TlRMTVNTUAACAAAA==', {}],
    ],
  );
});

test('a malformed challenge keeps the ones before it', () => {
  const challenges = parseChallenges(['Basic realm="a", Digest realm="unterminated']);
  assert.deepEqual(
    challenges.map((c) => c.scheme),
    ['Basic'],
  );
});

test('negotiation picks Digest over Basic, and the strongest Digest algorithm', () => {
  const challenges = parseChallenges([
    'Basic realm="r"',
    'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"',
    'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"',
  ]);
  const choice = chooseScheme(challenges, DEFAULT_POLICY);
  assert.equal(choice.scheme?.name, 'digest');
  assert.ok(choice.scheme);
  assert.equal(choice.challenge.params.get('algorithm'), 'SHA-256');
});

test('negotiation picks NTLM over Digest and Basic', () => {
  const challenges = parseChallenges(['Basic realm="r"', 'Digest realm="r", nonce="n"', 'NTLM']);
  assert.equal(chooseScheme(challenges, DEFAULT_POLICY).scheme?.name, 'ntlm');
});

test('negotiation follows the configured list', () => {
  const challenges = parseChallenges(['Digest realm="r", nonce="n"', 'Basic realm="r"']);
  const choice = chooseScheme(challenges, { schemes: ['basic'], preemptiveBasic: false });
  assert.equal(choice.scheme?.name, 'basic');
});

test('negotiation names what the proxy offers when junction can answer none of it', () => {
  const choice = chooseScheme(parseChallenges(['Bearer', 'Mutual']), DEFAULT_POLICY);
  assert.equal(choice.scheme, undefined);
  assert.ok(!choice.scheme);
  assert.deepEqual(choice.offered, ['Bearer', 'Mutual']);
  assert.deepEqual(choice.usable, ['NTLM', 'Digest', 'Basic']);
});

test('Digest with qop=auth-int only cannot be answered, and the offer says so', () => {
  const choice = chooseScheme(
    parseChallenges(['Digest realm="r", nonce="n", qop="auth-int"']),
    DEFAULT_POLICY,
  );
  assert.equal(choice.scheme, undefined);
  assert.ok(!choice.scheme);
  assert.deepEqual(choice.offered, ['Digest (with parameters junction cannot answer)']);
});

test("Digest sends a user name beyond ASCII as username*=UTF-8'' (RFC 7616 §3.4.4)", () => {
  const header = digestAuthorization({
    challenge: only(RFC_CHALLENGE('SHA-256')),
    request: { method: 'CONNECT', uri: 'example.com:443' },
    credentials: { username: 'J\u00e4s\u00f8n Doe', password: 'Secret, or not?' },
    nc: 1,
    cnonce: RFC_CNONCE,
  });
  assert.match(header ?? '', /^Digest username\*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=/);
});

// The published example's username and response are wrong (RFC erratum 4897); the corrected
// userhash is checked here.
test('Digest SHA-512-256 with userhash hashes the UTF-8 user name (RFC 7616 §3.9.2)', () => {
  const header = digestAuthorization({
    challenge: only(
      'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, ' +
        'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", ' +
        'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true',
    ),
    request: { method: 'GET', uri: '/doe.json' },
    credentials: { username: 'J\u00e4s\u00f8n Doe', password: 'Secret, or not?' },
    nc: 1,
    cnonce: 'NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v',
  });
  const params = only(header ?? '').params;
  assert.equal(
    params.get('username'),
    '793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b',
  );
  assert.equal(params.get('algorithm'), 'SHA-512-256');
});

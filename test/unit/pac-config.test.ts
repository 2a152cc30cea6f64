import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfigFile } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createDestinationPolicy } from '../../src/policy.js';
import { createOutbounds } from '../../src/outbound/index.js';
import { pacUrl } from '../../src/outbound/pac/outbound.js';
import { parseHostPort } from '../../src/target.js';

const dir = mkdtempSync(join(tmpdir(), 'junction-pac-config-'));
writeFileSync(join(dir, 'proxy.pac'), 'function FindProxyForURL(url, host) { return "DIRECT"; }\n');

function load(text: string) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return { file, config: () => loadConfigFile(file) };
}

/** Every problem the loader reports, as printed, without the file name. */
function problemsOf(text: string): string[] {
  const { file, config } = load(text);
  try {
    config();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').map((line) => line.slice(file.length + 1));
  }
  return [];
}

test('a pac outbound takes a file relative to the configuration, or an http(s) URL', () => {
  const { config } = load(
    'outbounds:\n' +
      '  - { name: a, pac: ./proxy.pac, user: svc, password: pw, interval: 30m }\n' +
      '  - { name: b, pac: "http://wpad.corp.example/wpad.dat?site=1" }\n',
  );
  const [a, b] = config().outbounds;
  assert.ok(a && b);
  assert.deepEqual(a.pac, { file: join(dir, 'proxy.pac') });
  assert.equal(a.interval, 1_800_000);
  assert.equal(a.password, 'pw');
  assert.deepEqual(b.pac, { url: 'http://wpad.corp.example/wpad.dat?site=1' });
  assert.equal(b.interval, undefined);
});

test('pac problems are reported at their position', () => {
  assert.deepEqual(
    problemsOf(
      'outbounds:\n' +
        '  - { name: a, pac: ./missing.pac }\n' +
        '  - { name: b, pac: "ftp://wpad/wpad.dat" }\n' +
        '  - { name: c, pac: "http://u:p@wpad/wpad.dat" }\n' +
        '  - { name: d, url: "http://127.0.0.1:3128", pac: ./proxy.pac }\n' +
        '  - { name: e, url: "http://127.0.0.1:3128", interval: 5m, user: x }\n' +
        '  - { name: f, pac: ./proxy.pac, password: pw }\n' +
        '  - { name: g, chain: [h] }\n' +
        '  - { name: h, pac: ./proxy.pac }\n',
    ),
    [
      `2:21: outbounds.0.pac: cannot read PAC file ${join(dir, 'missing.pac')}: no such file`,
      '3:21: outbounds.1.pac: a PAC file is an http:// or https:// URL, or a file path',
      '4:21: outbounds.2.pac: a PAC URL cannot carry credentials',
      '5:5: outbounds.3: an outbound has exactly one of url, chain, fallback or pac',
      '6:56: outbounds.4.interval: interval applies to pac outbounds only',
      '6:66: outbounds.4.user: user applies to pac outbounds only',
      '7:44: outbounds.5.password: password needs user',
      '8:24: outbounds.6.chain.0: PAC outbound "h" cannot be part of a chain',
    ],
  );
});

test('a pac outbound password may come from the environment, for its user', () => {
  process.env.JUNCTION_TEST_PAC_PW = 'from-env';
  try {
    const { config } = load(
      'outbounds:\n  - { name: a, pac: ./proxy.pac, user: svc, password_env: JUNCTION_TEST_PAC_PW }\n',
    );
    assert.equal(config().outbounds[0]?.password, 'from-env');
    assert.deepEqual(
      problemsOf(
        'outbounds:\n  - { name: a, pac: ./proxy.pac, password_env: JUNCTION_TEST_PAC_PW }\n',
      ),
      ['2:48: outbounds.0.password_env: password_env needs user'],
    );
  } finally {
    delete process.env.JUNCTION_TEST_PAC_PW;
  }
});

test('a bare build (junction check) of a pac outbound reads nothing and answers UPSTREAM_FAILED', async () => {
  const { config } = load('outbounds:\n  - { name: corp, pac: "http://127.0.0.1:9/proxy.pac" }\n');
  const built = createOutbounds(config().outbounds, createDestinationPolicy([]));
  const corp = built.get('corp');
  assert.ok(corp);
  assert.equal(corp.udp, undefined);
  const target = parseHostPort('example.com:443');
  assert.ok(target);
  await assert.rejects(
    corp.dial(target, { signal: new AbortController().signal, log: createLogger('silent') }),
    { code: 'UPSTREAM_FAILED', message: 'outbound "corp": PAC file not loaded' },
  );
  corp.close?.();
});

test('the URL a PAC file is asked about: http for plain requests and port 80, https otherwise', () => {
  const at = (text: string) => {
    const target = parseHostPort(text);
    assert.ok(target);
    return target;
  };
  assert.equal(pacUrl(at('example.com:443'), 'tunnel'), 'https://example.com/');
  assert.equal(pacUrl(at('example.com:8443'), 'tunnel'), 'https://example.com:8443/');
  assert.equal(pacUrl(at('example.com:80'), 'tunnel'), 'http://example.com/');
  assert.equal(pacUrl(at('example.com:80'), 'http'), 'http://example.com/');
  assert.equal(pacUrl(at('example.com:8080'), 'http'), 'http://example.com:8080/');
  assert.equal(pacUrl(at('[::1]:22'), 'tunnel'), 'https://[::1]:22/');
});

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createPacResolver } from 'pac-resolver';
import { QuickJS } from 'quickjs-wasi';
import { createRouter } from '../../src/route/router.js';
import { parseHostPort } from '../../src/target.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort, rawConnect } from '../helpers/net.js';

/**
 * The PAC file generated from the rules, evaluated by a real PAC engine (pac-resolver in a
 * QuickJS sandbox, as proxy-agent uses it), agrees with what junction's router decides.
 */

const dir = mkdtempSync(join(tmpdir(), 'junction-pac-'));
const listFile = join(dir, 'intranet.txt');
writeFileSync(listFile, 'wiki.intra\nfull:exact.intra\n');

const RULES = [
  { domain_suffix: ['corp.example'], outbound: 'direct' },
  { domain: ['exact.example.org'], outbound: 'direct' },
  { domain_keyword: ['doubleclick'], outbound: 'reject' },
  { domain_regex: ['^cdn\\d+\\.example\\.net$'], outbound: 'direct' },
  { ip_cidr: ['10.0.0.0/8'], outbound: 'direct' },
  { ip_cidr: ['192.168.0.0/16'], port: ['8000-8999'], outbound: 'corp' },
  { ip_cidr: ['192.168.0.0/16'], outbound: 'direct' },
  { ip_cidr: ['fd00::/8'], outbound: 'direct' },
  { user: ['bob'], domain_suffix: ['bob.example'], outbound: 'corp' },
  { domain_suffix: ['bob.example'], outbound: 'direct' },
  { source_cidr: ['10.1.0.0/16'], domain: ['lab.example'], outbound: 'direct' },
  { inbound: ['sock'], domain: ['socks-only.example'], outbound: 'direct' },
  { domain: ['plain.example'], port: [80], outbound: 'direct' },
  // A list's entries stay in junction: from here on every name goes to junction.
  { domain_list: listFile, outbound: 'direct' },
  { ip_cidr: ['172.16.0.0/12'], outbound: 'direct' },
  { outbound: 'corp' },
];

/** [url, what the PAC must answer: DIRECT, or junction] */
const TABLE: readonly [string, 'DIRECT' | 'junction'][] = [
  ['http://corp.example/', 'DIRECT'],
  ['https://a.b.corp.example/x', 'DIRECT'],
  ['http://badcorp.example/', 'junction'],
  ['http://exact.example.org/', 'DIRECT'],
  ['http://sub.exact.example.org/', 'junction'],
  ['http://x.doubleclick.net/', 'junction'],
  ['http://cdn12.example.net/', 'DIRECT'],
  ['http://cdnx.example.net/', 'junction'],
  ['http://10.1.2.3/', 'DIRECT'],
  ['http://192.168.1.1:8080/', 'junction'],
  ['http://192.168.1.1/', 'DIRECT'],
  ['http://[fd00::1]/', 'junction'],
  ['http://bob.example/', 'junction'],
  ['http://lab.example/', 'junction'],
  ['http://wiki.intra/', 'junction'],
  ['http://socks-only.example/', 'junction'],
  ['http://plain.example/', 'DIRECT'],
  ['https://plain.example/', 'junction'],
  ['http://CORP.EXAMPLE./', 'DIRECT'],
  ['http://elsewhere.org/', 'junction'],
  ['http://172.16.0.1/', 'DIRECT'],
];

let g: TestGateway;
let adminPort: number;
let qjs: QuickJS;

before(async () => {
  adminPort = await freePort();
  g = await startGateway({
    admin: { listen: `127.0.0.1:${adminPort}` },
    inbounds: [
      { name: 'web', type: 'http', listen: '127.0.0.1:0' },
      { name: 'sock', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'guarded', type: 'mixed', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
    ],
    outbounds: [{ name: 'corp', url: 'http://127.0.0.1:9' }],
    rules: RULES,
  });
  const wasm = await readFile(createRequire(import.meta.url).resolve('quickjs-wasi/quickjs.wasm'));
  qjs = await QuickJS.create({ wasm });
});

after(async () => {
  await g.stop();
});

async function fetchPac(port: number, path = '/proxy.pac', host?: string): Promise<string> {
  const client = await rawConnect(port);
  client.write(
    `GET ${path} HTTP/1.1\r\nHost: ${host ?? `127.0.0.1:${port}`}\r\nConnection: close\r\n\r\n`,
  );
  const answer = (await client.readToEnd()).toString('utf8');
  client.socket.destroy();
  return answer;
}

function bodyOf(answer: string): string {
  assert.match(answer, /^HTTP\/1\.1 200 /);
  assert.match(answer, /\r\ncontent-type: application\/x-ns-proxy-autoconfig\r\n/i);
  return answer.slice(answer.indexOf('\r\n\r\n') + 4);
}

test('an HTTP inbound serves GET /proxy.pac; a real PAC engine sends each URL where the rules do', async () => {
  const web = g.port('web');
  const find = createPacResolver(qjs, bodyOf(await fetchPac(web)));
  const viaJunction = `PROXY 127.0.0.1:${web}`;
  for (const [url, expected] of TABLE) {
    assert.equal(await find(url), expected === 'DIRECT' ? 'DIRECT' : viaJunction, url);
  }
});

test('the PAC never sends direct what the router would send elsewhere, for any user or source', async () => {
  const find = createPacResolver(qjs, bodyOf(await fetchPac(g.port('web'))));
  const router = createRouter(g.gateway.config.rules);
  for (const [url] of TABLE) {
    const parsed = new URL(url.toLowerCase());
    const port = Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
    const target = parseHostPort(`${parsed.hostname.replace(/\.$/, '')}:${port}`);
    assert.ok(target, url);
    const decisions = await Promise.all(
      [undefined, 'bob'].flatMap((user) =>
        ['127.0.0.1', '10.1.2.3'].map((ip) =>
          router.decide({ inbound: 'web', source: { ip, port: 1 }, user, target }),
        ),
      ),
    );
    const answer = await find(url);
    if (answer === 'DIRECT') {
      for (const d of decisions)
        assert.equal(d.outbound, 'direct', `${url}: ${d.rule?.text ?? ''}`);
    }
    if (decisions[0]?.outbound !== 'direct') assert.notEqual(answer, 'DIRECT', url);
  }
});

test('the admin endpoint serves the PAC of a named inbound; a SOCKS inbound is named as SOCKS5', async () => {
  const sock = g.port('sock');
  const find = createPacResolver(qjs, bodyOf(await fetchPac(adminPort, '/proxy.pac?inbound=sock')));
  assert.equal(await find('http://socks-only.example/'), 'DIRECT', 'its inbound-only rule applies');
  assert.equal(
    await find('http://elsewhere.org/'),
    `SOCKS5 127.0.0.1:${sock}; SOCKS 127.0.0.1:${sock}`,
  );
  assert.match(
    await fetchPac(adminPort, '/proxy.pac?inbound=nope'),
    /^HTTP\/1\.1 404 [^]*no inbound "nope"/,
  );
});

test('a client outside allow gets 403 for the PAC, and a reload changes what it says', async () => {
  assert.match(await fetchPac(g.port('guarded')), /^HTTP\/1\.1 403 /);
  g.gateway.reload(
    (await import('../helpers/gateway.js')).configFrom({
      admin: { listen: `127.0.0.1:${adminPort}` },
      inbounds: [
        { name: 'web', type: 'http', listen: '127.0.0.1:0' },
        { name: 'sock', type: 'socks', listen: '127.0.0.1:0' },
        { name: 'guarded', type: 'mixed', listen: '127.0.0.1:0', allow: ['10.0.0.0/8'] },
      ],
      rules: [{ domain: ['elsewhere.org'], outbound: 'direct' }, { outbound: 'reject' }],
    }),
  );
  const find = createPacResolver(qjs, bodyOf(await fetchPac(g.port('web'))));
  assert.equal(await find('http://elsewhere.org/'), 'DIRECT');
  assert.equal(await find('http://corp.example/'), `PROXY 127.0.0.1:${g.port('web')}`);
});

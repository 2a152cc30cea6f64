import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pngSize, spkiHash, startChromium, VIEWPORT, type Chromium } from '../helpers/chromium.js';
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { startHttpOrigin, type HttpOrigin } from '../helpers/net.js';
import { selfSignedCertificate, unavailable } from '../helpers/peers.js';
import { serveWebSocketEcho, type WebSocketUpgrade } from '../helpers/websocket-echo.js';
import { recordCell } from '../helpers/matrix.js';

/**
 * Headless Chromium against junction's http, socks and mixed inbounds, configured with
 * --proxy-server or with the PAC file junction serves itself. Each configuration is one browser
 * with a fresh profile; it loads a page over http and over https and echoes a WebSocket message.
 * The loopback origins record every request, and junction's access log records each session
 * with the protocol the browser spoke. Chromium cannot answer a proxy's 407 without a prompt
 * when headless, so only open inbounds are driven.
 */

const skip = unavailable('chromium', 'openssl');
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let origin: HttpOrigin;
let tlsOrigin: HttpOrigin;
let upgrades: WebSocketUpgrade[];
let tlsUpgrades: WebSocketUpgrade[];
let certDir: string;
let spki: string;
let g: TestGateway;

before(async () => {
  if (skip) return;
  certDir = mkdtempSync(join(tmpdir(), 'junction-chromium-cert-'));
  const cert = selfSignedCertificate(certDir);
  spki = spkiHash(cert.cert);
  origin = await startHttpOrigin();
  upgrades = serveWebSocketEcho(origin.server);
  tlsOrigin = await startHttpOrigin('127.0.0.1', {
    cert: readFileSync(cert.cert, 'utf8'),
    key: readFileSync(cert.key, 'utf8'),
  });
  tlsUpgrades = serveWebSocketEcho(tlsOrigin.server);
  g = await startGateway({
    inbounds: [
      { name: 'http', type: 'http', listen: '127.0.0.1:0' },
      { name: 'socks', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'mixed', type: 'mixed', listen: '127.0.0.1:0' },
    ],
    // Loopback goes through a group that is not `direct`, so that the PAC file sends it to
    // junction; anything else the browser might try on its own is refused.
    outbounds: [{ name: 'loopback', fallback: ['direct'] }],
    rules: [
      { ip_cidr: ['127.0.0.0/8', '0.0.0.0/32'], outbound: 'loopback' },
      { domain: ['localhost'], outbound: 'loopback' },
      { outbound: 'reject' },
    ],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (skip) return;
  await g.stop();
  await Promise.all([origin.close(), tlsOrigin.close()]);
  rmSync(certDir, { recursive: true, force: true });
});

interface Case {
  /** Names the screenshot. */
  readonly name: string;
  /** How the interop matrix names the client's proxy setting. */
  readonly matrix: string;
  readonly title: string;
  readonly inbound: string;
  /** Chromium's proxy flags. */
  readonly flags: () => string[];
  /** The origins' address in the page URLs. */
  readonly host: string;
  /** The access-log protocol of a plain http:// page load. */
  readonly pageProtocol: string;
  /** The access-log protocol of an https:// page or a WebSocket (a tunnel). */
  readonly tunnelProtocol: string;
}

/**
 * Chromium sends loopback (127.0.0.0/8, localhost) straight to it, past any proxy (its
 * "implicit bypass rules"), unless --proxy-bypass-list says <-loopback>. A PAC configuration
 * has no such override: there the pages are at 0.0.0.0, which the implicit rules leave to the
 * PAC and which Linux connects to as this host's loopback.
 */
const BYPASS_NOTHING = '--proxy-bypass-list=<-loopback>';

const proxyServer = (scheme: string, inbound: string) => (): string[] => [
  `--proxy-server=${scheme}://127.0.0.1:${g.port(inbound)}`,
  BYPASS_NOTHING,
];

const cases: Case[] = [
  {
    name: 'http',
    matrix: '--proxy-server=http://',
    title: '--proxy-server http:// on the http inbound',
    inbound: 'http',
    flags: proxyServer('http', 'http'),
    host: '127.0.0.1',
    pageProtocol: 'http',
    tunnelProtocol: 'connect',
  },
  {
    name: 'socks5',
    matrix: '--proxy-server=socks5://',
    title: '--proxy-server socks5:// on the socks inbound',
    inbound: 'socks',
    flags: proxyServer('socks5', 'socks'),
    // Chromium's socks5:// resolves nothing itself: junction gets the name.
    host: 'localhost',
    pageProtocol: 'socks5',
    tunnelProtocol: 'socks5',
  },
  {
    name: 'mixed-http',
    matrix: '--proxy-server=http://',
    title: '--proxy-server http:// on the mixed inbound',
    inbound: 'mixed',
    flags: proxyServer('http', 'mixed'),
    host: '127.0.0.1',
    pageProtocol: 'http',
    tunnelProtocol: 'connect',
  },
  {
    name: 'mixed-socks5',
    matrix: '--proxy-server=socks5://',
    title: '--proxy-server socks5:// on the mixed inbound',
    inbound: 'mixed',
    flags: proxyServer('socks5', 'mixed'),
    host: '127.0.0.1',
    pageProtocol: 'socks5',
    tunnelProtocol: 'socks5',
  },
  {
    name: 'pac',
    matrix: '--proxy-pac-url',
    title: '--proxy-pac-url, the PAC file the http inbound serves',
    inbound: 'http',
    flags: () => [`--proxy-pac-url=http://127.0.0.1:${g.port('http')}/proxy.pac`],
    host: '0.0.0.0',
    pageProtocol: 'http',
    tunnelProtocol: 'connect',
  },
];

for (const c of cases) {
  describe(`Chromium with ${c.title}`, { skip }, () => {
    let browser: Chromium | undefined;
    /** Sessions the browser must have made, checked once it has closed its connections. */
    const expected: { target: string; protocol: string }[] = [];
    let firstLog = 0;
    const url = (site: HttpOrigin, scheme: string, path: string): string =>
      `${scheme}://${c.host}:${site.port}${path}`;

    before(async () => {
      firstLog = g.logs.length;
      browser = await startChromium([
        ...c.flags(),
        `--ignore-certificate-errors-spki-list=${spki}`,
      ]);
    });

    after(async () => {
      await browser?.stop();
    });

    test('loads an http page; the screenshot is kept', async () => {
      const path = `/tiny?client=chromium-${c.name}-http`;
      await browser!.navigate(url(origin, 'http', path));
      assert.equal(await browser!.evaluate('document.body.textContent'), 'ok\n');
      const seen = origin.requests.filter((r) => r.url === path);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.method, 'GET');
      assert.equal(seen[0].headers['proxy-connection'], undefined);
      expected.push({ target: `${c.host}:${origin.port}`, protocol: c.pageProtocol });
      const png = await browser!.screenshot();
      writeFileSync(join(ARTIFACTS, `chromium-${c.name}.png`), png);
      assert.deepEqual(pngSize(png), VIEWPORT);
      assert.ok(png.length > 1000, `a ${png.length}-byte screenshot`);
    });

    test('loads an https page from an origin whose certificate it pins', async () => {
      const path = `/tiny?client=chromium-${c.name}-https`;
      await browser!.navigate(url(tlsOrigin, 'https', path));
      assert.equal(await browser!.evaluate('document.body.textContent'), 'ok\n');
      assert.equal(tlsOrigin.requests.filter((r) => r.url === path).length, 1);
      expected.push({ target: `${c.host}:${tlsOrigin.port}`, protocol: c.tunnelProtocol });
    });

    for (const secure of [false, true]) {
      const scheme = secure ? 'wss' : 'ws';
      test(`echoes a WebSocket message over ${scheme}:// from a page of its origin`, async () => {
        const site = secure ? tlsOrigin : origin;
        // A page of the same origin: an https page may not open ws://.
        await browser!.navigate(
          url(site, secure ? 'https' : 'http', `/tiny?client=chromium-${c.name}-${scheme}-page`),
        );
        const message = `hello from chromium over ${c.name} (${scheme})`;
        const path = `/ws?client=chromium-${c.name}-${scheme}`;
        const echoed = await browser!.evaluate(`new Promise((resolve, reject) => {
          const ws = new WebSocket(${JSON.stringify(url(site, scheme, path))});
          ws.onopen = () => ws.send(${JSON.stringify(message)});
          ws.onmessage = (event) => { resolve(event.data); ws.close(); };
          ws.onerror = () => reject(new Error('WebSocket failed'));
        })`);
        assert.equal(echoed, message);
        const upgrade = (secure ? tlsUpgrades : upgrades).find((u) => u.url === path);
        assert.deepEqual(upgrade?.messages, [message]);
        expected.push({ target: `${c.host}:${site.port}`, protocol: c.tunnelProtocol });
      });
    }

    test('junction logged each session with the protocol the browser spoke', async () => {
      // Idle keep-alive connections end their sessions only when the browser goes.
      await browser!.stop();
      const matches = (line: LogLine, want: (typeof expected)[number]): boolean =>
        line.msg === 'session' &&
        g.logs.indexOf(line) >= firstLog &&
        line.inbound === c.inbound &&
        line.target === want.target &&
        line.protocol === want.protocol;
      assert.equal(expected.length, 4, 'every load above succeeded');
      for (const want of expected) {
        const line = await g.waitForLog((line) => matches(line, want), 10_000);
        assert.equal(line.result, 'ok', JSON.stringify(line));
        assert.equal(line.outbound, 'loopback');
      }
      recordCell({ client: `Chromium ${c.matrix}`, inbound: c.inbound, auth: false });
    });
  });
}

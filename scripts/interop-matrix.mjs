#!/usr/bin/env node
// Writes docs/interop.md from the outcomes the interop tests recorded (test/helpers/matrix.ts):
// client × inbound × auth, inbound × upstream, and the versions of the programs that ran.
// `--reset` empties the record before a run. The output depends only on the record and the
// installed versions, so a run that sees the same results leaves the file unchanged.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RECORD = process.env.JUNCTION_MATRIX_OUT ?? join(ROOT, 'test-artifacts/interop-matrix.jsonl');
const OUTPUT = join(ROOT, 'docs/interop.md');

const INBOUNDS = ['http', 'https', 'socks', 'mixed'];
/** What a client spoke to junction in front of an upstream, as column headings. */
const SPOKEN = { http: 'HTTP proxy / CONNECT in', https: 'HTTPS proxy in', socks: 'SOCKS in' };

/** Debian packages of the programs the interop tests start, as CI installs them. */
const PACKAGES = [
  ['curl', 'curl'],
  ['Python', 'python3'],
  ['Python requests', 'python3-requests'],
  ['PySocks', 'python3-socks'],
  ['git', 'git'],
  ['OpenSSH client', 'openssh-client'],
  ['OpenSSH server', 'openssh-server'],
  ['OpenBSD netcat', 'netcat-openbsd'],
  ['socat', 'socat'],
  ['Chromium', 'chromium'],
  ['apt', 'apt'],
  ['iproute2', 'iproute2'],
  ['squid', 'squid'],
  ['tinyproxy', 'tinyproxy'],
  ['privoxy', 'privoxy'],
  ['dante', 'dante-server'],
  ['microsocks', 'microsocks'],
  ['HAProxy', 'haproxy'],
  ['MIT Kerberos KDC', 'krb5-kdc'],
];

/** npm packages the Node client tests load, from node_modules as installed. */
const NPM_PACKAGES = ['undici', 'https-proxy-agent', 'socks-proxy-agent'];

function debianVersion(name) {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f', '${db:Status-Status} ${Version}', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [status, version] = out.split(' ');
    return status === 'installed' ? version : undefined;
  } catch {
    return undefined;
  }
}

function npmVersion(name) {
  try {
    const manifest = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
    );
    return typeof manifest.version === 'string' ? manifest.version : undefined;
  } catch {
    return undefined;
  }
}

function readRecord() {
  if (!existsSync(RECORD)) return [];
  return readFileSync(RECORD, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
}

/** Passes and fails per key, so a cell proved by several tests shows all of them. */
function tally(cells, keyOf) {
  const counts = new Map();
  for (const cell of cells) {
    const key = keyOf(cell);
    const count = counts.get(key) ?? { pass: 0, fail: 0 };
    if (cell.ok) count.pass += 1;
    else count.fail += 1;
    counts.set(key, count);
  }
  return counts;
}

function show(count) {
  if (!count) return '';
  const total = count.pass + count.fail;
  return count.fail === 0 ? `pass (${total})` : `**FAIL** (${count.fail} of ${total})`;
}

/** Case-blind order, then exact: the same on every machine, unlike a locale's collation. */
const byName = (a, b) => {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  if (x !== y) return x < y ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
};

function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function clientTable(cells) {
  const columns = INBOUNDS.flatMap((inbound) =>
    [false, true].map((auth) => ({ inbound, auth })),
  ).filter((c) => cells.some((cell) => cell.inbound === c.inbound && cell.auth === c.auth));
  const counts = tally(cells, (c) => `${c.client}\u0000${c.inbound}\u0000${String(c.auth)}`);
  const clients = [...new Set(cells.map((c) => c.client))].sort(byName);
  return table(
    ['client', ...columns.map((c) => `${c.inbound}${c.auth ? ' + auth' : ''}`)],
    clients.map((client) => [
      client,
      ...columns.map((c) => show(counts.get(`${client}\u0000${c.inbound}\u0000${String(c.auth)}`))),
    ]),
  );
}

function upstreamTable(cells) {
  const columns = Object.keys(SPOKEN).filter((inbound) => cells.some((c) => c.inbound === inbound));
  const counts = tally(cells, (c) => `${c.upstream}\u0000${c.inbound}`);
  const upstreams = [...new Set(cells.map((c) => c.upstream))].sort(byName);
  return table(
    ['upstream', ...columns.map((inbound) => SPOKEN[inbound] ?? inbound)],
    upstreams.map((upstream) => [
      upstream,
      ...columns.map((inbound) => show(counts.get(`${upstream}\u0000${inbound}`))),
    ]),
  );
}

function versionTable() {
  const rows = [
    ['Node.js', process.version],
    ...PACKAGES.map(([label, name]) => [
      label,
      debianVersion(name) ? `${debianVersion(name)} (Debian \`${name}\`)` : 'not installed',
    ]),
    ...NPM_PACKAGES.map((name) => [name, `${npmVersion(name) ?? 'not installed'} (npm)`]),
  ];
  return table(['program', 'version'], rows);
}

function render(record) {
  const clients = record.filter((c) => c.upstream === undefined);
  const upstreams = record.filter((c) => c.upstream !== undefined);
  const failed = record.filter((c) => !c.ok).length;
  return `# Interop matrix

Generated by \`npm run test:interop\` (scripts/interop-matrix.mjs) from the outcome of each
interop test that proves a cell; do not edit by hand. A cell reads \`pass (n)\` when the n tests
that prove it passed, **FAIL** when one of them failed (and the run failed with it). An empty cell
was not proved in this run: a combination that does not apply, a program missing where the tests
ran, or an upstream test that failed (those record a cell only once their assertions hold).
${failed > 0 ? `\n**${failed} recorded outcomes failed.**\n` : ''}
## Clients × inbounds

Each client is the real program, started by the test against junction's inbound, with and without
proxy authentication; the loopback origin's record of what arrived proves the traffic.

${clients.length > 0 ? clientTable(clients) : '_No client test ran._'}

## Inbounds × upstreams

junction in front of a real upstream proxy (or a chain, or what a PAC file answers): a client
speaks HTTP or SOCKS to junction, junction dials the upstream, and the origin sees the request
arrive by that way (from the upstream's own source address, or in the upstream's log).

${upstreams.length > 0 ? upstreamTable(upstreams) : '_No upstream test ran._'}

## Versions

${versionTable()}

## Tests that recorded these cells

${[...new Set(record.map((c) => c.source))]
  .sort(byName)
  .map((source) => `- \`${source}\``)
  .join('\n')}
`;
}

if (process.argv.includes('--reset')) {
  rmSync(RECORD, { force: true });
} else {
  // Formatted as `npm run lint` checks it, so the committed file passes as it was written.
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(OUTPUT)) ?? {};
  const text = await prettier.format(render(readRecord()), { ...options, filepath: OUTPUT });
  mkdirSync(dirname(OUTPUT), { recursive: true });
  writeFileSync(OUTPUT, text);
  console.log(`wrote ${OUTPUT}`);
}

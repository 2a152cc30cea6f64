// npm run bench:rules: a 10⁶-entry domain_list through the real loader, router and reload.
// Prints load time, heap per entry, decision cost and the longest stall of a live session while
// a reload builds the list, each beside its target.
//
//   RULES_ENTRIES=1000000 RULES_CORPUS=100000 RULES_EXACT_SHARE=0.3 npm run bench:rules
//   RULES_LEGACY=1 writes exact entries as bare lines, for code that reads no `full:`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { loadConfigFile, loadConfigFileInSlices } from '../../src/config/load.js';
import { createGateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { createRouter } from '../../src/route/router.js';
import type { RouteInput } from '../../src/route/types.js';
import { parseHost } from '../../src/target.js';
import { openLiveTunnel, type LiveTunnel } from './live-tunnel.js';
import { syntheticList } from './list.js';

const ENTRIES = Number(process.env.RULES_ENTRIES ?? 1_000_000);
const CORPUS = Number(process.env.RULES_CORPUS ?? 100_000);
const EXACT_SHARE = Number(process.env.RULES_EXACT_SHARE ?? 0.3);
const LEGACY = process.env.RULES_LEGACY === '1';

const QUIET_MS = 500;
const TARGETS = { loadMs: 2000, decisionP50Us: 2, bytesPerEntry: 150, reloadStallMs: 50 };

const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('run with node --expose-gc');
const gc: () => void = collect;

/** What the list costs lives on the JS heap and, for typed arrays, in ArrayBuffers. */
function retainedBytes(): number {
  gc();
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/** The longest round trip of a live tunnel, and event-loop gap, while `work` runs. */
async function watchSession(tunnel: LiveTunnel, work: () => Promise<unknown>) {
  const loop = watchEventLoop();
  const ping = tunnel.measure();
  await work();
  const loopGapMs = loop.stop();
  const { longestMs, pings } = await ping.stop();
  return { roundTripMs: longestMs, loopGapMs, pings };
}

/** A 1 ms ticker: the longest gap between its ticks is the longest the event loop was held. */
function watchEventLoop(): { stop(): number } {
  let last = performance.now();
  let longest = 0;
  const tick = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  };
  const timer = setInterval(tick, 1);
  return {
    stop() {
      tick();
      clearInterval(timer);
      return longest;
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

const dir = mkdtempSync(join(tmpdir(), 'junction-bench-rules-'));
const configPath = join(dir, 'junction.yaml');
const rows: [string, string, string, boolean][] = [];

try {
  const list = syntheticList({
    entries: ENTRIES,
    corpus: CORPUS,
    exactShare: EXACT_SHARE,
    legacy: LEGACY,
  });
  writeFileSync(join(dir, 'list.txt'), list.text);
  writeFileSync(
    configPath,
    [
      'log: { level: error, access: false }',
      'inbounds:',
      '  - { name: mixed, type: mixed, listen: "127.0.0.1:0" }',
      'rules:',
      '  - { domain_suffix: [internal.example], outbound: direct }',
      '  - { ip_cidr: [10.0.0.0/8], port: [25], outbound: reject }',
      '  - { domain_list: ./list.txt, outbound: reject }',
      '',
    ].join('\n'),
  );
  const inputs: RouteInput[] = list.corpus.map(({ name }) => {
    // As an inbound decodes a name from the wire: a flat string, not a concatenation.
    const host = parseHost(Buffer.from(name, 'latin1').toString('latin1'));
    if (host?.kind !== 'domain') throw new Error(`corpus name ${name} does not parse`);
    return {
      inbound: 'mixed',
      source: { ip: '127.0.0.1', port: 50000 },
      user: undefined,
      target: { host, port: 443 },
    };
  });
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}; node ${process.version}`,
  );
  console.log(
    `list: ${list.entries} entries (${list.exactEntries} exact${LEGACY ? ', written as suffixes' : ''}), ` +
      `${(list.text.length / 1e6).toFixed(1)} MB; corpus: ${inputs.length} targets, half listed`,
  );

  // Load: the file read, parse and index build, as `junction run` and `check` do it.
  const before = retainedBytes();
  const loadStart = performance.now();
  const config = loadConfigFile(configPath);
  const loaded = performance.now();
  const router = createRouter(config.rules);
  const built = performance.now();
  const bytesPerEntry = (retainedBytes() - before) / list.entries;
  const loadMs = built - loadStart;
  rows.push([
    'load (read + parse + index)',
    `${loadMs.toFixed(0)} ms (loader ${(loaded - loadStart).toFixed(0)}, router ${(built - loaded).toFixed(0)})`,
    `≤ ${TARGETS.loadMs} ms`,
    loadMs <= TARGETS.loadMs,
  ]);
  rows.push([
    'heap per entry',
    `${bytesPerEntry.toFixed(0)} B`,
    `≤ ${TARGETS.bytesPerEntry} B`,
    bytesPerEntry <= TARGETS.bytesPerEntry,
  ]);

  // Decisions: the real router, its rules in order; the first pass warms the code up.
  let wrong = 0;
  const costs = new Float64Array(inputs.length);
  for (const pass of [0, 1]) {
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i] as RouteInput;
      const start = process.hrtime.bigint();
      const decision = await router.decide(input);
      const cost = Number(process.hrtime.bigint() - start) / 1000;
      if (pass === 1) costs[i] = cost;
      const expected = list.corpus[i]?.listed ? 'reject' : 'direct';
      if (pass === 1 && decision.outbound !== expected) wrong++;
    }
  }
  costs.sort();
  const p50 = percentile(costs, 0.5);
  rows.push([
    'decision p50 / p99',
    `${p50.toFixed(2)} / ${percentile(costs, 0.99).toFixed(2)} µs`,
    `p50 ≤ ${TARGETS.decisionP50Us} µs`,
    p50 <= TARGETS.decisionP50Us,
  ]);

  // Reload: what SIGHUP does, while a live tunnel pings and the event loop is watched.
  const silent = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const gateway = createGateway(config, createLogger('error', silent), {
    // What `junction run` reloads from on SIGHUP.
    source: () => loadConfigFileInSlices(configPath),
  });
  const port = (await gateway.start()).get('mixed')?.port ?? 0;
  const tunnel = await openLiveTunnel(port);
  // The same watch with no reload: how long this machine's scheduler alone holds a session.
  const quiet = await watchSession(tunnel, () => delay(QUIET_MS));
  const reloadStart = performance.now();
  const loud = await watchSession(tunnel, () => gateway.reloadFromSource());
  const reloadMs = performance.now() - reloadStart;
  await tunnel.close();
  await gateway.stop(0);
  rows.push([
    'reload: longest stall',
    `${loud.roundTripMs.toFixed(1)} ms live-session round trip (event-loop gap ${loud.loopGapMs.toFixed(1)}; ` +
      `reload ${reloadMs.toFixed(0)} ms, ${loud.pings} round trips; with no reload over ${QUIET_MS} ms: ` +
      `${quiet.roundTripMs.toFixed(1)} / ${quiet.loopGapMs.toFixed(1)} ms)`,
    `≤ ${TARGETS.reloadStallMs} ms`,
    loud.roundTripMs <= TARGETS.reloadStallMs,
  ]);

  const width = Math.max(...rows.map(([figure]) => figure.length));
  for (const [figure, measured, target, met] of rows) {
    console.log(
      `${figure.padEnd(width)}  ${measured}  [target ${target}: ${met ? 'met' : 'MISSED'}]`,
    );
  }
  if (wrong > 0) {
    console.error(`${wrong} decisions differ from the list's meaning`);
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

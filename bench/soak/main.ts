// npm run soak: junction (the built dist/main.js, as a child process) under a mix of hostile
// clients and failing origins, then checked for leaks, wrong bytes and unexpected log lines.
//
//   npm run soak -- --sessions 100000 --concurrency 50 --reload-every 3000 --seed 42
//   npm run soak -- --sessions 200 --only drip,probe      (some scenarios only)
//
// Exits 0 when every invariant holds, 1 when one does not, 2 when the soak itself could not run.
import { parseArgs } from 'node:util';
import { startOrigins, UNRESOLVABLE_HOST } from './env.js';
import { settle, violations } from './invariants.js';
import { startJunction, type Junction } from './junction.js';
import { startLoad, type Load } from './load.js';
import { Rng } from './random.js';
import { printReport, type RunSettings } from './report.js';
import { SCENARIOS } from './scenarios.js';

const PROGRESS_EVERY_MS = 5_000;
const FD_SAMPLE_EVERY_MS = 500;

function settingsFromArgs(): RunSettings {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '100000' },
      concurrency: { type: 'string', default: '50' },
      'reload-every': { type: 'string', default: '3000' },
      seed: { type: 'string' },
      only: { type: 'string' },
    },
  });
  const only = values.only?.split(',');
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name));
  if (unknown?.length) throw new Error(`--only: no scenario ${unknown.join(', ')}`);
  const number = (text: string | undefined, name: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  return {
    sessions: number(values.sessions, 'sessions'),
    concurrency: number(values.concurrency, 'concurrency'),
    reloadEveryMs: number(values['reload-every'], 'reload-every'),
    seed:
      values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : number(values.seed, 'seed'),
    scenarios: only ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS,
  };
}

async function soak(settings: RunSettings): Promise<number> {
  const origins = await startOrigins(SCENARIOS);
  const junction = await startJunction((target) => origins.label(target));
  try {
    const env = {
      proxy: junction.ports,
      tracker: origins.tracker,
      originPort: (name: string, kind: 'tcp' | 'http') => origins.originPort(name, kind),
      refusedPort: origins.refusedPort,
      unresolvableHost: UNRESOLVABLE_HOST,
    };
    if (!(await junction.healthy())) throw new Error('junction is not healthy at start');
    const fdBaseline = junction.fds();
    const rssBaselineMiB = junction.memory().rssMiB;
    const soakCpuBefore = process.cpuUsage();
    const junctionCpuBefore = junction.cpuSeconds();
    console.log(
      `junction pid ${junction.pid}: http ${junction.ports.http}, socks ${junction.ports.socks}, ` +
        `mixed ${junction.ports.mixed}; ${fdBaseline} fds; refused port ${origins.refusedPort}`,
    );

    const load = startLoad(env, settings.scenarios, { ...settings, rng: new Rng(settings.seed) });
    const meanwhile = duringLoad(junction, load, settings, fdBaseline);
    const result = await load.finished;
    const fdPeak = meanwhile.stop();
    if (!junction.alive()) {
      console.log(`\nVIOLATION: junction exited during the soak; stderr:\n${junction.stderr()}`);
      return 1;
    }

    const settled = await settle(junction, origins, fdBaseline);
    const { rssMiB, peakMiB } = junction.memory();
    const soakCpu = process.cpuUsage(soakCpuBefore);
    const cpu = {
      junction: junction.cpuSeconds() - junctionCpuBefore,
      soak: (soakCpu.user + soakCpu.system) / 1e6,
    };
    const healthy = junction.alive() && (await junction.healthy());
    const exit = await junction.stop();
    const observed = {
      load: result,
      settled,
      fdBaseline,
      fdPeak,
      rssBaselineMiB,
      rssAfterMiB: rssMiB,
      rssPeakMiB: peakMiB,
      healthy,
      reloadsSent: junction.reloadsSent,
      exit,
      cpu,
    };
    const found = violations(junction, observed);
    printReport(settings, junction, observed, found);
    return found.length === 0 ? 0 : 1;
  } finally {
    junction.dispose();
    await origins.close();
  }
}

/**
 * While the load runs: a reload every few seconds, the descriptor count sampled for its peak,
 * and a progress line. stop() ends all three and gives the peak.
 */
function duringLoad(
  junction: Junction,
  load: Load,
  settings: RunSettings,
  fdBaseline: number,
): { stop(): number } {
  const reloads = setInterval(() => junction.reload(), settings.reloadEveryMs);
  const started = performance.now();
  let fdPeak = fdBaseline;
  const sampler = setInterval(() => {
    if (junction.alive()) fdPeak = Math.max(fdPeak, junction.fds());
  }, FD_SAMPLE_EVERY_MS);
  const progress = setInterval(() => {
    if (!junction.alive()) return;
    const { done, failed } = load.progress();
    const rate = done / ((performance.now() - started) / 1000);
    console.log(
      `  ${done}/${settings.sessions} sessions, ${failed} failed, ${rate.toFixed(0)}/s; ` +
        `junction ${junction.fds()} fds, ${junction.memory().rssMiB.toFixed(0)} MiB`,
    );
  }, PROGRESS_EVERY_MS);
  return {
    stop() {
      clearInterval(reloads);
      clearInterval(sampler);
      clearInterval(progress);
      return fdPeak;
    },
  };
}

// Interrupted, the soak still takes its junction down with it (junction.ts kills it at exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130));
}

try {
  process.exitCode = await soak(settingsFromArgs());
} catch (err) {
  console.error(`soak could not run: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 2;
}

import { FD_TOLERANCE, RSS_BOUND_MIB, type Observed } from './invariants.js';
import type { Junction } from './junction.js';
import type { Scenario } from './scenario.js';

/** The soak's figures, in the form the README quotes. */

export interface RunSettings {
  readonly sessions: number;
  readonly concurrency: number;
  readonly seed: number;
  readonly reloadEveryMs: number;
  /** The mix (all scenarios unless --only). */
  readonly scenarios: readonly Scenario[];
}

const REASONS_SHOWN = 3;

export function printReport(
  settings: RunSettings,
  junction: Junction,
  observed: Observed,
  found: readonly string[],
): void {
  const { load, settled, exit } = observed;
  const out: string[] = [];
  const seconds = load.ms / 1000;
  const accessLines = [...junction.log.access.values()].reduce((a, b) => a + b, 0);
  out.push(
    '',
    `junction fault soak: ${load.runs} sessions, concurrency ${settings.concurrency}, ` +
      `seed ${settings.seed}, a reload every ${settings.reloadEveryMs} ms`,
    `duration ${seconds.toFixed(1)} s, ${(load.runs / seconds).toFixed(0)} sessions/s, ` +
      `${accessLines} access lines; CPU: junction ${observed.cpu.junction.toFixed(1)} s, ` +
      `soak clients and origins ${observed.cpu.soak.toFixed(1)} s`,
    '',
    '| scenario | sessions | failed |',
    '|---|--:|--:|',
  );
  for (const [name, tally] of load.tallies)
    out.push(`| ${name} | ${tally.runs} | ${tally.failures} |`);
  const reasons = [...load.tallies].filter(([, t]) => t.failures > 0);
  if (reasons.length > 0) {
    out.push('', 'failures (most frequent reasons, one example each):');
    for (const [name, tally] of reasons) {
      const byWay = [...tally.ways]
        .map(([way, runs]) => `${way} ${tally.failedWays.get(way) ?? 0}/${runs}`)
        .join(', ');
      out.push(`  ${name}, failed/run by way: ${byWay}`);
      const top = [...tally.reasons.values()].sort((a, b) => b.count - a.count);
      for (const { count, example } of top.slice(0, REASONS_SHOWN)) {
        out.push(`    ×${count}: ${example}`);
      }
    }
  }
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal']
    .map((level) => `${level} ${junction.log.levels.get(level) ?? 0}`)
    .join(', ');
  out.push(
    '',
    `fds: baseline ${observed.fdBaseline}, peak ${observed.fdPeak}, after ${settled.fds} ` +
      `(tolerance ${FD_TOLERANCE}); ` +
      `settled in ${(settled.ms / 1000).toFixed(1)} s with ${settled.live} live client ` +
      `connections and ${settled.originOpen} origin connections`,
    `RSS: baseline ${observed.rssBaselineMiB.toFixed(0)} MiB, peak ${observed.rssPeakMiB.toFixed(0)} MiB, after ${observed.rssAfterMiB.toFixed(0)} MiB ` +
      `(bound ${RSS_BOUND_MIB} MiB)`,
    `log lines: ${levels}; reloads sent ${observed.reloadsSent}`,
  );
  const messages = [...junction.log.messages].sort((a, b) => b[1] - a[1]);
  out.push(
    `log messages besides access lines: ${messages.map(([m, n]) => `${m} ×${n}`).join('; ')}`,
  );
  if (junction.log.samples.length > 0) {
    out.push('first lines at warn or above:', ...junction.log.samples.map((s) => `  ${s}`));
  }
  out.push(`SIGTERM: exit ${String(exit.code ?? exit.signal)} after ${Math.round(exit.ms)} ms`, '');
  if (found.length === 0) out.push('all invariants hold');
  else out.push(`VIOLATIONS (${found.length}):`, ...found.map((v) => `  - ${v}`));
  console.log(out.join('\n'));
}

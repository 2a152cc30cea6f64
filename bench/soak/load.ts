import type { Rng } from './random.js';
import { createRun, type Env, type Scenario } from './scenario.js';
import type { Way } from './ways.js';

/** Runs scenarios `sessions` times, `concurrency` at once, and tallies what happened. */

export interface Tally {
  runs: number;
  failures: number;
  /** Runs by way in. */
  readonly ways: Map<string, number>;
  /** Failed runs by way in. */
  readonly failedWays: Map<string, number>;
  /** Failure reasons with their digits masked, each with a count and one full example. */
  readonly reasons: Map<string, { count: number; example: string }>;
}

export interface LoadResult {
  readonly tallies: ReadonlyMap<string, Tally>;
  /** The access lines junction must have written, by key (see log-stats.ts). */
  readonly expectedLines: ReadonlyMap<string, number>;
  readonly runs: number;
  readonly ms: number;
}

export interface LoadOptions {
  readonly sessions: number;
  readonly concurrency: number;
  readonly rng: Rng;
}

/** A run taking longer than this has hung somewhere no step timeout covers. */
const RUN_LIMIT_MS = 60_000;

export interface Load {
  /** Runs finished so far, and failed so far. */
  progress(): { done: number; failed: number };
  readonly finished: Promise<LoadResult>;
}

export function startLoad(env: Env, scenarios: readonly Scenario[], options: LoadOptions): Load {
  const { rng } = options;
  const tallies = new Map<string, Tally>(
    scenarios.map((s) => [
      s.name,
      { runs: 0, failures: 0, ways: new Map(), failedWays: new Map(), reasons: new Map() },
    ]),
  );
  const expectedLines = new Map<string, number>();
  // Smooth weighted round-robin (as nginx balances upstreams): each scenario gets its exact share
  // of any stretch of runs, and each takes its ways in turn, so a short soak covers them all.
  const totalWeight = scenarios.reduce((sum, s) => sum + s.weight, 0);
  const credit = new Map(scenarios.map((s) => [s, 0]));
  const pick = (): Scenario => {
    let best: Scenario | undefined;
    for (const [scenario, value] of credit) {
      const next = value + scenario.weight;
      credit.set(scenario, next);
      if (best === undefined || next > (credit.get(best) ?? 0)) best = scenario;
    }
    if (!best) throw new Error('no scenarios');
    credit.set(best, (credit.get(best) ?? 0) - totalWeight);
    return best;
  };
  let started = 0;
  let done = 0;
  let failed = 0;

  const runOne = async (index: number): Promise<void> => {
    const scenario = pick();
    const tally = tallies.get(scenario.name) as Tally;
    const way = scenario.ways[tally.runs % scenario.ways.length] as Way;
    const state = createRun(env, scenario, way, rng, `t${index}`);
    tally.runs++;
    tally.ways.set(way.name, (tally.ways.get(way.name) ?? 0) + 1);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`the run did not finish within ${RUN_LIMIT_MS} ms`));
      }, RUN_LIMIT_MS);
    });
    try {
      await Promise.race([scenario.run(state.run), limit]);
    } catch (err) {
      failed++;
      tally.failures++;
      tally.failedWays.set(way.name, (tally.failedWays.get(way.name) ?? 0) + 1);
      const reason = err instanceof Error ? err.message : String(err);
      const key = reason.replace(/\d+/g, '#');
      const entry = tally.reasons.get(key) ?? { count: 0, example: `${reason} (via ${way.name})` };
      entry.count++;
      tally.reasons.set(key, entry);
    } finally {
      clearTimeout(timer);
      state.dispose();
      for (const key of state.expected) expectedLines.set(key, (expectedLines.get(key) ?? 0) + 1);
      done++;
    }
  };

  const worker = async (): Promise<void> => {
    while (started < options.sessions) await runOne(started++);
  };

  const startedAt = performance.now();
  const finished = Promise.all(Array.from({ length: options.concurrency }, worker)).then(() => ({
    tallies,
    expectedLines,
    runs: done,
    ms: performance.now() - startedAt,
  }));
  return { progress: () => ({ done, failed }), finished };
}

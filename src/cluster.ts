// Several worker processes on one set of ports (node:cluster): the primary listens and hands
// each new connection to a worker in turn; each worker runs the whole gateway. Workers share no
// state: a session, a UDP association (its control connection and its sockets) and an HTTP
// keep-alive connection live and end in the worker that accepted them.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { startAdmin, type Admin } from './admin.js';
import type { Config } from './config/schema.js';
import { pacForInbound } from './pac.js';
import { hostToString } from './target.js';
import type { Logger } from './log.js';

/** How long a worker that keeps crashing waits before it is started again. */
const RESTART_DELAY_MS = 1000;
/** Past the shutdown grace, how long workers get before they are killed. */
const STOP_BACKSTOP_MS = 5000;

export function workerCount(setting: Config['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

export const isWorker = (): boolean => cluster.isWorker;

/** This worker's number (1, 2, …), or undefined in a process that is not a worker. */
export const workerId = (): number | undefined => cluster.worker?.id;

/** In a worker: the primary's /metrics asks each worker for its registry's figures. */
export function serveMetricsToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs the listener that answers the primary's requests.
  new AggregatorRegistry();
}

export interface PrimaryOptions {
  readonly count: number;
  readonly config: Config;
  /** Reads and validates the configuration again (SIGHUP, POST /reload); throws when refused. */
  readonly reload: () => Promise<Config>;
  readonly log: Logger;
}

/**
 * Runs the primary until it is told to stop: starts `count` workers (each re-runs this command
 * line), replaces one that dies, passes SIGHUP to every worker once the configuration reads
 * valid, serves the admin endpoint with every worker's metrics summed, and on SIGTERM/SIGINT
 * lets every worker stop gracefully. Resolves with the exit code.
 */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { count, log } = options;
  let config = options.config;
  let stopping = false;
  const workers = new Set<Worker>();

  const start = (): void => {
    const worker = cluster.fork();
    workers.add(worker);
    worker.on('error', (err) => log.warn({ worker: worker.id, err }, 'worker channel error'));
  };
  cluster.on('exit', (worker, code, signal) => {
    workers.delete(worker);
    if (stopping) return;
    log.error(
      { worker: worker.id, pid: worker.process.pid, code, signal },
      'worker exited: starting another',
    );
    setTimeout(start, RESTART_DELAY_MS).unref();
  });

  const signalAll = (signal: NodeJS.Signals): void => {
    for (const worker of workers) worker.process.kill(signal);
  };
  const reload = async (): Promise<void> => {
    // Checked here first, so that a refused file is answered once, not by every worker.
    config = await options.reload();
    signalAll('SIGHUP');
  };

  let admin: Admin | undefined;
  if (config.admin) {
    const aggregator = new AggregatorRegistry();
    admin = await startAdmin({
      listen: config.admin.listen,
      metrics: {
        registry: {
          metrics: () => aggregator.clusterMetrics(),
          contentType: aggregator.contentType,
        },
      },
      log: log.child({ admin: true }),
      reload,
      token: () => config.admin?.token,
      // The workers listen where the configuration says (a shared port: never 0 in practice).
      pac: (name, host) =>
        pacForInbound(config, name, host, (n) => {
          const listen = config.inbounds.find((i) => i.name === n)?.listen;
          return listen && { address: hostToString(listen.host), port: listen.port };
        }),
    });
  }
  for (let i = 0; i < count; i++) start();
  log.info({ workers: count }, 'workers started');

  return new Promise<number>((resolve) => {
    const finish = async (): Promise<void> => {
      process.off('SIGHUP', onHup);
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      await admin?.close();
      log.info('stopped');
      log.flush(() => {
        resolve(0);
      });
    };
    const onHup = (): void => {
      reload().catch((err: unknown) => {
        const problems = err instanceof Error ? err.message : String(err);
        log.error({ problems }, 'reload refused: the running configuration stays');
      });
    };
    const onStop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        signalAll('SIGKILL');
        return;
      }
      stopping = true;
      log.info({ signal, workers: workers.size }, 'shutting down');
      signalAll('SIGTERM');
      const backstop = setTimeout(() => {
        log.warn('workers overran the shutdown grace: killing them');
        signalAll('SIGKILL');
      }, config.limits.shutdown_grace + STOP_BACKSTOP_MS);
      backstop.unref();
      const check = (): void => {
        if (workers.size > 0) return;
        cluster.off('exit', check);
        clearTimeout(backstop);
        void finish();
      };
      cluster.on('exit', check);
      check();
    };
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

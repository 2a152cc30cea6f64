import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

/**
 * A live session through the gateway, its two ends in a worker thread as they would be in other
 * processes: an echo origin, one CONNECT tunnel to it, and a ping that goes round the tunnel
 * back to back. Its longest round trip is the longest a session waited on the gateway.
 */
export interface LiveTunnel {
  /** Starts a fresh measurement; `stop` resolves with its longest round trip. */
  measure(): { stop(): Promise<{ longestMs: number; pings: number }> };
  close(): Promise<void>;
}

/** What live-peers.mjs is told, and what it answers to `stop`. */
type Command = 'measure' | 'stop' | 'close';
interface Report {
  readonly longestMs: number;
  readonly pings: number;
}

export async function openLiveTunnel(proxyPort: number): Promise<LiveTunnel> {
  // Plain JavaScript: a worker does not get the TypeScript loader this process runs under.
  const worker = new Worker(new URL('./live-peers.mjs', import.meta.url), {
    workerData: { proxyPort },
  });
  const [ready] = (await once(worker, 'message')) as [string];
  if (ready !== 'ready') throw new Error(ready);
  const send = (command: Command): void => {
    worker.postMessage(command);
  };
  return {
    measure() {
      send('measure');
      return {
        async stop() {
          send('stop');
          const [report] = (await once(worker, 'message')) as [Report];
          return report;
        },
      };
    },
    async close() {
      send('close');
      await once(worker, 'exit');
    },
  };
}

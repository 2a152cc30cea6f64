import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogStats, type LogStats } from './log-stats.js';

/** Short limits, so that a socket kept past one of them shows within a soak's bounded waits. */
export const LIMITS = {
  handshakeMs: 2_000,
  connectMs: 2_000,
  idleMs: 5_000,
  graceMs: 2_000,
} as const;

export const USER = { username: 'soak', password: 'soak-pass-7f3a' } as const;

export type InboundName = 'http' | 'socks' | 'mixed';

export interface Junction {
  readonly pid: number;
  readonly ports: Readonly<Record<InboundName, number>>;
  readonly log: LogStats;
  /** Whatever junction wrote on stderr (nothing, when all is well). */
  stderr(): string;
  /** Open file descriptors of the junction process. */
  fds(): number;
  /** VmRSS and VmHWM (the peak) in MiB. */
  memory(): { rssMiB: number; peakMiB: number };
  /** User plus system CPU seconds used so far. */
  cpuSeconds(): number;
  /** Client connections open now, per inbound, from the admin endpoint's /metrics. */
  liveConnections(): Promise<number>;
  healthy(): Promise<boolean>;
  /** Rewrites the configuration (one rule changes) and sends SIGHUP. */
  reload(): void;
  readonly reloadsSent: number;
  alive(): boolean;
  /** SIGTERM; resolves with the exit code and how long the exit took. */
  stop(): Promise<{ code: number | null; signal: string | null; ms: number }>;
  /** SIGKILL if still running, and removes the temporary directory. */
  dispose(): void;
}

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const CLOCK_TICKS = 100;

function configText(generation: number): string {
  const config = {
    log: { level: 'info', access: true },
    admin: { listen: '127.0.0.1:0' },
    limits: {
      handshake_timeout: `${LIMITS.handshakeMs}ms`,
      connect_timeout: `${LIMITS.connectMs}ms`,
      idle_timeout: `${LIMITS.idleMs}ms`,
      shutdown_grace: `${LIMITS.graceMs}ms`,
    },
    inbounds: [
      { name: 'http', type: 'http', listen: '127.0.0.1:0' },
      { name: 'socks', type: 'socks', listen: '127.0.0.1:0' },
      { name: 'mixed', type: 'mixed', listen: '127.0.0.1:0', auth: { users: [USER] } },
    ],
    // A rule that no soak target matches, changed by every reload so that each one is real.
    rules: [{ domain: [`reload-${generation}.invalid`], outbound: 'reject' }],
  };
  return JSON.stringify(config, null, 2); // JSON is YAML
}

/**
 * Starts `node dist/main.js -c <config>` and resolves once it has logged "listening" for every
 * inbound and "admin listening". `label` names an access line's target (see log-stats.ts).
 */
export async function startJunction(label: (target: string) => string): Promise<Junction> {
  const dir = mkdtempSync(join(tmpdir(), 'junction-soak-'));
  const configPath = join(dir, 'junction.yaml');
  let generation = 0;
  writeFileSync(configPath, configText(generation));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--trace-warnings', MAIN, '-c', configPath],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('junction did not start');
  const killAtExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killAtExit);
  child.once('exit', () => process.off('exit', killAtExit));
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => (stderr += text));
  const log = createLogStats(label);
  const ports: Partial<Record<InboundName, number>> = {};
  let adminPort: number | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`junction not listening within 10 s; stderr: ${stderr}`));
    }, 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`junction exited with ${String(code)} at start; stderr: ${stderr}`));
    });
    if (!child.stdout) throw new Error('junction has no stdout pipe');
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = log.add(text);
      if (line?.msg === 'listening' && typeof line.inbound === 'string') {
        ports[line.inbound as InboundName] = portOf(line.listen);
      } else if (line?.msg === 'admin listening') {
        adminPort = portOf(line.listen);
      }
      if (adminPort !== undefined && ports.http && ports.socks && ports.mixed) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let reloadsSent = 0;
  const admin = (path: string): Promise<{ status: number; body: string }> =>
    adminGet(adminPort ?? 0, path);
  return {
    pid,
    ports: ports as Record<InboundName, number>,
    log,
    stderr: () => stderr,
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
    memory() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kB = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1]);
      return { rssMiB: kB('VmRSS') / 1024, peakMiB: kB('VmHWM') / 1024 };
    },
    cpuSeconds() {
      // Fields 14 and 15 (utime, stime) after the parenthesised command name.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    },
    async liveConnections() {
      const { body } = await admin('/metrics');
      let sum = 0;
      for (const match of body.matchAll(/^junction_connections_active\{[^}]*\} (\d+)$/gm)) {
        sum += Number(match[1]);
      }
      return sum;
    },
    async healthy() {
      return (await admin('/healthz')).status === 200;
    },
    reload() {
      writeFileSync(configPath, configText(++generation));
      reloadsSent++;
      child.kill('SIGHUP');
    },
    get reloadsSent() {
      return reloadsSent;
    },
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      const started = performance.now();
      const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), LIMITS.graceMs + 10_000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      // Lines written just before the exit are still in the pipe.
      if (child.stdout && !child.stdout.readableEnded) await once(child.stdout, 'end');
      return { code, signal, ms: performance.now() - started };
    },
    dispose() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function portOf(listen: unknown): number {
  return Number(String(listen).split(':').pop());
}

/** A GET on its own connection (no agent), so no kept-alive socket is left in junction's count. */
function adminGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => (body += text));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`admin ${path} timed out`)));
    req.on('error', reject);
  });
}

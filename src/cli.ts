import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { hashPassword } from './auth.js';
import { isWorker, runPrimary, serveMetricsToPrimary, workerCount, workerId } from './cluster.js';
import { MAX_TIMER_MS } from './config/duration.js';
import {
  loadConfigFile,
  loadConfigFileInSlices,
  loadConfigText,
  type Amend,
} from './config/load.js';
import { amendFromUrls, DEFAULT_LISTEN, UsageError } from './config/one-liner.js';
import type { Config } from './config/schema.js';
import { buildRuntime, createGateway } from './gateway.js';
import { createLogger } from './log.js';
import { askPacOnce } from './outbound/pac/outbound.js';
import type { PacSource } from './outbound/pac/source.js';
import { watchProcessFaults } from './process-faults.js';
import { createRouter } from './route/router.js';
import { parseHost, parseHostPort, type Target } from './target.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stdin: () => Promise<string>;
  readonly version: string;
}

interface RunOptions {
  config?: string;
  /** Absent when no -L was given (commander would print a default of [] in the help). */
  listen?: string[];
  forward?: string[];
  logLevel?: string;
  workers?: string;
}

/** How long the log may take to flush at exit, and how long past the grace a stop may take. */
const FLUSH_LIMIT_MS = 2000;
const SHUTDOWN_BACKSTOP_MS = 5000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

function runAmend(options: RunOptions): Amend {
  const given = options.listen ?? [];
  const listen = given.length === 0 && !options.config ? [DEFAULT_LISTEN] : given;
  return amendFromUrls(listen, options.forward ?? []);
}

/** Loads `-c FILE` (if any) with the -L/-F additions; with neither, the embedded default. */
export function loadRunConfig(options: RunOptions): Config {
  const amend = runAmend(options);
  if (options.config) return loadConfigFile(options.config, amend);
  return loadConfigText('', '<command line>', process.cwd(), amend);
}

/** As loadRunConfig, for a reload: large domain lists are built while sessions are served. */
function reloadRunConfig(options: RunOptions): Config | Promise<Config> {
  if (options.config) return loadConfigFileInSlices(options.config, runAmend(options));
  return loadRunConfig(options);
}

/** Runs the command line; resolves with the exit code. A long-running `run` resolves on stop. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  const program = new Command('junction')
    .description(
      'Protocol-bridging proxy gateway: HTTP, CONNECT and SOCKS in; direct, upstream proxies or reject out',
    )
    .version(io.version, '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run "junction --help" for usage)')
    .usage('[run] [options]\n       junction <command> [options]');

  const run = program
    .command('run', { isDefault: true })
    .description('start the gateway (the default command)')
    .option('-c, --config <file>', 'configuration file (YAML)')
    .option(
      '-L, --listen <url>',
      'add an inbound, e.g. socks5://:1080 or mixed://user:pass@0.0.0.0:1080',
      collect,
    )
    .option(
      '-F, --forward <url>',
      'add an upstream hop, e.g. http://user:pass@proxy:3128; repeat for a chain',
      collect,
    )
    .addOption(new Option('--log-level <level>', 'override log.level').choices(LOG_LEVELS))
    .option('--workers <n|auto>', 'worker processes sharing every port (overrides workers:)')
    .action(async (options: RunOptions) => {
      exitCode = await runGateway(options);
    });
  // Users type `junction --help` first, and mostly use the default command.
  program.addHelpText('after', () => `\nOptions of run, the default command:\n${optionsHelp(run)}`);

  program
    .command('check')
    .description('validate a configuration file; print every problem as FILE:LINE:COL: message')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action((options: { config: string }) => {
      const config = loadConfigFile(options.config);
      buildRuntime(config);
      io.stdout(
        `${options.config}: ok (${config.inbounds.length} inbounds, ${config.outbounds.length} outbounds, ${config.rules.length} rules)\n`,
      );
    });

  program
    .command('route')
    .description('print which rule and outbound a target would take, without connecting')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--inbound <name>', 'inbound the session arrives on (default: the first)')
    .option('--user <name>', 'authenticated user')
    .option('--source <ip>', 'client address', '127.0.0.1')
    .argument('<host:port>', 'the target, e.g. example.com:443 or [::1]:80')
    .action(
      async (
        targetText: string,
        options: { config: string; inbound?: string; user?: string; source: string },
      ) => {
        const config = loadConfigFile(options.config);
        const target = parseHostPort(targetText);
        if (!target)
          throw new UsageError(`bad target "${targetText}" (use HOST:PORT or [IPv6]:PORT)`);
        const source = parseHost(options.source);
        if (!source || source.kind === 'domain')
          throw new UsageError(`bad --source "${options.source}" (use an IP address)`);
        const inbound = options.inbound ?? config.inbounds[0]?.name ?? '';
        if (options.inbound !== undefined && !config.inbounds.some((i) => i.name === inbound)) {
          throw new UsageError(`unknown inbound "${inbound}"`);
        }
        const decision = await createRouter(config.rules).decide({
          inbound,
          source: { ip: source.ip, port: 0 },
          user: options.user,
          target,
        });
        const rule = decision.rule
          ? `rules[${decision.rule.index}] ${decision.rule.text}`
          : 'no rule matched (default)';
        const pac = config.outbounds.find((o) => o.name === decision.outbound)?.pac;
        const answer = pac ? ` (${await pacAnswerText(pac, target)})` : '';
        io.stdout(`${rule}\noutbound: ${decision.outbound}${answer}\n`);
      },
    );

  program
    .command('hash-password')
    .description('read a password on stdin and print a password_hash for the configuration')
    .action(async () => {
      const password = (await io.stdin()).replace(/\r?\n$/, '');
      if (password === '') throw new UsageError('no password on stdin');
      io.stdout(`${await hashPassword(password)}\n`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    return reportFailure(err, io, argv.includes('debug'));
  }
}

/** What a PAC outbound's file answers for `target`, read and run once. */
async function pacAnswerText(source: PacSource, target: Target): Promise<string> {
  const asked = await askPacOnce(source, target, createLogger('error'));
  if ('error' in asked) return `PAC: no answer: ${asked.error}`;
  const { entries, ignored } = asked.answer;
  const answer = entries.length > 0 ? entries.map((e) => e.text).join('; ') : 'no usable proxy';
  return `PAC: ${answer}${ignored.length > 0 ? ` [ignored: ${ignored.join('; ')}]` : ''}`;
}

/** `--workers`, else `workers:` in the file. */
function workersOf(options: RunOptions, config: Config): number {
  if (options.workers === undefined) return workerCount(config.workers);
  if (options.workers === 'auto') return workerCount('auto');
  const count = Number(options.workers);
  if (!Number.isInteger(count) || count < 1) {
    throw new UsageError(`--workers ${options.workers}: use a number of processes or auto`);
  }
  return count;
}

async function runGateway(options: RunOptions): Promise<number> {
  const config = loadRunConfig(options);
  const level = options.logLevel ?? config.log.level;
  const root = createLogger(level as (typeof LOG_LEVELS)[number]);
  if (config.inbounds.length === 0)
    throw new UsageError(
      'nothing to listen on: the configuration has no inbounds (add one, or -L)',
    );
  const workers = workersOf(options, config);
  if (workers > 1 && !isWorker()) {
    const unwatchPrimary = watchProcessFaults(root);
    try {
      return await runPrimary({
        count: workers,
        config,
        reload: () => Promise.resolve(loadRunConfig(options)),
        log: root,
      });
    } finally {
      unwatchPrimary();
    }
  }
  const worker = workerId();
  const log = worker === undefined ? root : root.child({ worker });
  // In a worker the primary serves the admin endpoint, with every worker's metrics.
  const gateway = createGateway(config, log, {
    source: () => reloadRunConfig(options),
    admin: worker === undefined,
  });
  if (worker !== undefined) {
    serveMetricsToPrimary(gateway.metrics.registry);
    log.info({ pid: process.pid }, 'worker started');
  }
  const unwatch = watchProcessFaults(log);
  try {
    await gateway.start();
  } catch (err) {
    unwatch();
    throw err;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    let finished = false;
    const finish = (code: number): void => {
      if (finished) return;
      finished = true;
      process.off('SIGHUP', reload);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      process.off('SIGINT', ignore);
      unwatch();
      log.info('stopped');
      // The log's last lines are written before the exit, but a stuck destination must not
      // keep the process from exiting.
      const exit = setTimeout(() => resolve(code), FLUSH_LIMIT_MS);
      log.flush(() => {
        clearTimeout(exit);
        resolve(code);
      });
    };
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: closing every session now');
        void gateway.stop(0).finally(() => finish(EXIT_OK));
        return;
      }
      stopping = true;
      const grace = gateway.config.limits.shutdown_grace;
      log.info({ signal, grace_ms: grace }, 'shutting down');
      void gateway.stop().finally(() => finish(EXIT_OK));
      // A backstop: whatever happens to the sessions, the process ends soon after the grace.
      setTimeout(
        () => {
          log.warn('shutdown overran its grace period: exiting');
          finish(EXIT_RUNTIME);
        },
        Math.min(grace + SHUTDOWN_BACKSTOP_MS, MAX_TIMER_MS),
      ).unref();
    };
    const reload = (): void => {
      gateway.reloadFromSource().catch(() => {
        // Logged by the gateway; the running configuration stays.
      });
    };
    process.on('SIGTERM', stop);
    // A worker is stopped by its primary (SIGTERM); a terminal's Ctrl-C reaches the whole
    // process group, and a second signal would end the worker's sessions at once.
    process.on('SIGINT', worker === undefined ? stop : ignore);
    process.on('SIGHUP', reload);
  });
}

const ignore = (): void => undefined;

/** A command's options as its own help lists them, without --help. */
function optionsHelp(command: Command): string {
  const help = command.createHelp();
  const options = help.visibleOptions(command).filter((option) => option.long !== '--help');
  const width = Math.max(...options.map((option) => help.optionTerm(option).length));
  return options
    .map((option) =>
      help.formatItem(help.optionTerm(option), width, help.optionDescription(option), help),
    )
    .join('\n');
}

function reportFailure(err: unknown, io: CliIo, debug: boolean): number {
  if (err instanceof CommanderError) {
    // Help and version are successful exits; commander already printed its own message.
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err instanceof Error && (err.name === 'ConfigError' || err.name === 'UsageError')) {
    io.stderr(`${err.message}\n`);
    return EXIT_USAGE;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const { address, port } = err as { address?: string; port?: number };
    const why = {
      EADDRINUSE: 'address already in use',
      EACCES: 'permission denied',
      EADDRNOTAVAIL: 'address not available on this host',
    }[code];
    io.stderr(`junction: cannot listen on ${address ?? '?'}:${port ?? '?'}: ${why}\n`);
    return EXIT_RUNTIME;
  }
  io.stderr(`junction: ${err instanceof Error ? err.message : String(err)}\n`);
  if (debug && err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
  return EXIT_RUNTIME;
}

export function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/**
 * junction as a library: `import { startGateway } from 'junction'`. The configuration is an
 * object of the YAML file's shape, validated by the same schema; problems are thrown as one
 * ConfigError naming each key.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { DestinationStream, Logger } from 'pino';
import { loadConfigText, type Amend } from './config/load.js';
import type { Config } from './config/schema.js';
import { createGateway } from './gateway.js';
import type { SessionRecord } from './session.js';
import { createLogger } from './log.js';

export { ConfigError, type ConfigProblem } from './config/load.js';
export type { Config } from './config/schema.js';
export type { SessionRecord } from './session.js';

/** The YAML file's shape: `{ inbounds: [...], outbounds: [...], rules: [...], limits: {...} }`. */
export type GatewayConfig = Readonly<Record<string, unknown>>;

export interface StartOptions {
  /** Where relative paths in the configuration (domain lists, CA files, password files) start. */
  readonly baseDir?: string;
  /**
   * A pino logger to log through (junction logs JSON lines: its access lines and events), or
   * where to write them; by default nothing is logged.
   */
  readonly logger?: Logger | { readonly level?: string; readonly destination: DestinationStream };
}

export interface RunningGateway {
  /** Each inbound's bound address by name (a `:0` port is the one the system chose). */
  readonly addresses: ReadonlyMap<string, AddressInfo>;
  /** The admin endpoint's address, when the configuration has one. */
  readonly adminAddress: AddressInfo | undefined;
  /** The configuration in force, validated, with every default. */
  readonly config: Config;
  /** Client connections open now. */
  readonly activeConnections: number;
  /**
   * New sessions follow `config`; live ones keep what they started with. Rejects with a
   * ConfigError, keeping the running configuration, when `config` is refused.
   */
  reload(config: GatewayConfig): Promise<void>;
  /** Stops accepting, lets live sessions finish for up to `graceMs`, then closes the rest. */
  stop(graceMs?: number): Promise<void>;
  /**
   * 'session': every session that ends, with the fields of its access-log line (sid, client,
   * protocol, user, target, rule, outbound, up, down, ms, result, error), logged or not.
   */
  on(event: 'session', listener: (record: SessionRecord) => void): this;
  off(event: 'session', listener: (record: SessionRecord) => void): this;
}

/** Validates `config` and starts every inbound (and the admin endpoint, if configured). */
export async function startGateway(
  config: GatewayConfig,
  options: StartOptions = {},
): Promise<RunningGateway> {
  const baseDir = options.baseDir ?? process.cwd();
  const gateway = createGateway(validate(config, baseDir), loggerFrom(options.logger));
  const addresses = await gateway.start();
  const events = new EventEmitter();
  // Sessions build their record for listeners only while there are any.
  const observe = (): void => {
    gateway.observeSessions(
      events.listenerCount('session') > 0 ? (record) => events.emit('session', record) : undefined,
    );
  };
  const running: RunningGateway = {
    addresses,
    get adminAddress() {
      return gateway.adminAddress;
    },
    get config() {
      return gateway.config;
    },
    get activeConnections() {
      return gateway.activeConnections;
    },
    reload(next) {
      try {
        gateway.reload(validate(next, baseDir));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    stop: (graceMs) => gateway.stop(graceMs),
    on(event, listener) {
      events.on(event, listener);
      observe();
      return running;
    },
    off(event, listener) {
      events.off(event, listener);
      observe();
      return running;
    },
  };
  return running;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'silent']);

function loggerFrom(option: StartOptions['logger']): Logger {
  if (option === undefined) return createLogger('silent', { write: () => undefined });
  if (isLogger(option)) return option;
  const level = option.level ?? 'info';
  if (!LEVELS.has(level)) throw new Error(`unknown log level "${level}"`);
  return createLogger(level as 'info', option.destination);
}

function isLogger(option: NonNullable<StartOptions['logger']>): option is Logger {
  return typeof (option as Partial<Logger>).child === 'function';
}

/** The same loader as a file's, over the object instead of parsed YAML. */
function validate(config: GatewayConfig, baseDir: string): Config {
  const amend: Amend = (raw) => Object.assign(raw, structuredClone(config));
  return loadConfigText('', '<config>', baseDir, amend);
}

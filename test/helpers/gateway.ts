import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { loadConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { collectLogLines, type LogLine } from './log-lines.js';

export type { LogLine } from './log-lines.js';

export interface TestGateway {
  readonly gateway: Gateway;
  readonly addresses: ReadonlyMap<string, AddressInfo>;
  /** The bound port of an inbound (the first one when no name is given). */
  port(inbound?: string): number;
  readonly logs: LogLine[];
  /** Resolves with the first log line (past or future) that satisfies `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The access-log lines ("session") seen so far. */
  sessions(): LogLine[];
  stop(): Promise<void>;
}

/** A configuration from an object of the YAML shape, through the real loader and schema. */
export function configFrom(raw: Record<string, unknown>): Config {
  return loadConfigText('', '<test>', process.cwd(), (doc) => Object.assign(doc, raw));
}

/**
 * Starts a gateway in this process from a configuration object (the YAML shape), validated by
 * the real loader. Listen on port 0 to get a free port.
 */
export async function startGateway(
  raw: Record<string, unknown>,
  options: GatewayOptions = {},
): Promise<TestGateway> {
  const config = configFrom(raw);
  const log = collectLogLines();
  const logs = log.lines;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text === '') continue;
        log.push(JSON.parse(text) as LogLine);
      }
      callback();
    },
  });
  const gateway = createGateway(config, createLogger('debug', sink), options);
  const addresses = await gateway.start();
  return {
    gateway,
    addresses,
    logs,
    port(inbound) {
      const address = inbound ? addresses.get(inbound) : addresses.values().next().value;
      if (!address) throw new Error(`no inbound ${inbound ?? ''}`);
      return address.port;
    },
    waitForLog(predicate, timeoutMs = 5000) {
      return log.waitFor(predicate, timeoutMs);
    },
    sessions() {
      return logs.filter((l) => l.msg === 'session');
    },
    stop: () => gateway.stop(0),
  };
}

/** Runs `body` with a gateway started from `raw`, and stops the gateway whatever happens. */
export async function withGateway(
  raw: Record<string, unknown>,
  body: (g: TestGateway) => Promise<void> | void,
): Promise<void> {
  const g = await startGateway(raw);
  try {
    await body(g);
  } finally {
    await g.stop();
  }
}

import { execFile } from 'node:child_process';
import { startGateway, type LogLine, type TestGateway } from './gateway.js';

/**
 * Real client programs against junction's inbounds: one gateway with an `http`, `socks` and
 * `mixed` inbound, each with and without Basic/username auth, all routed direct.
 */

export const CLIENT_USER = { username: 'client', password: 'Client-pw-31' } as const;

export const INBOUND_TYPES = ['http', 'socks', 'mixed'] as const;
export type InboundType = (typeof INBOUND_TYPES)[number];

/** The inbound of `type`, with auth or open. */
export const inboundName = (type: InboundType, auth: boolean): string =>
  auth ? `${type}-auth` : type;

export function startClientGateway(extra: Record<string, unknown> = {}): Promise<TestGateway> {
  return startGateway({
    inbounds: INBOUND_TYPES.flatMap((type) => [
      { name: inboundName(type, false), type, listen: '127.0.0.1:0' },
      {
        name: inboundName(type, true),
        type,
        listen: '127.0.0.1:0',
        auth: { users: [CLIENT_USER] },
      },
    ]),
    ...extra,
  });
}

export interface ProgramResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

/** Runs a program to its end, killed after `timeoutMs`; never throws for a non-zero exit. */
export function runProgram(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<ProgramResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 20_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        cwd: options.cwd,
        env: options.env ?? { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      },
      (error, stdout, stderr) => {
        const code = error && typeof error.code === 'number' ? error.code : error ? 1 : 0;
        resolve({ exitCode: code, stdout, stderr });
      },
    );
  });
}

/**
 * Resolves with the next access-log line of inbound `inbound` written from now on that
 * satisfies `predicate`: the proof that a program's traffic went through that inbound, and as
 * which user. Call it before the program runs.
 */
export function nextSession(
  g: TestGateway,
  inbound: string,
  predicate: (line: LogLine) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<LogLine> {
  const from = g.logs.length;
  return g.waitForLog(
    (line) =>
      line.msg === 'session' &&
      line.inbound === inbound &&
      g.logs.indexOf(line) >= from &&
      predicate(line),
    timeoutMs,
  );
}

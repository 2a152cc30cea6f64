import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Lines are written in batches of this many bytes, or at least this often. */
const BATCH_BYTES = 4096;
const FLUSH_EVERY_MS = 200;

/**
 * The root logger. Redaction is a second line of defence: credentials are never put in log
 * objects in the first place, and foreign errors are not logged whole (the socks client's
 * carries the upstream password in `options`). The paths have no wildcards, which would make
 * every line pay for a slower redaction.
 */
export function createLogger(
  level: LevelWithSilent,
  destination: number | DestinationStream = 1,
): Logger {
  return pino(
    {
      level,
      base: null,
      redact: {
        paths: ['password', 'proxy.password', 'err.options', 'headers["proxy-authorization"]'],
        censor: '***',
      },
      serializers: { err: serializeError },
    },
    typeof destination === 'number' ? batchedDestination(destination) : destination,
  );
}

/**
 * One write per access line costs a thread-pool round trip each; batching them is most of the
 * logging cost saved. The periodic flush bounds how long a line can wait, so a quiet gateway's
 * log is still current.
 */
function batchedDestination(fd: number): DestinationStream {
  return pino.destination({
    dest: fd,
    sync: false,
    minLength: BATCH_BYTES,
    periodicFlush: FLUSH_EVERY_MS,
  });
}

/** Keeps what helps an operator (type, message, code); drops foreign properties and causes. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * The root logger. Redaction is a second line of defence: credentials are never put in log
 * objects in the first place, and foreign errors are not logged whole (the socks client's
 * carries the upstream password in `options`).
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
        paths: [
          'password',
          '*.password',
          '*.proxy.password',
          'err.options',
          'headers["proxy-authorization"]',
        ],
        censor: '***',
      },
      serializers: { err: serializeError },
    },
    typeof destination === 'number'
      ? pino.destination({ dest: destination, sync: false })
      : destination,
  );
}

/** Keeps what helps an operator (type, message, code); drops foreign properties and causes. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

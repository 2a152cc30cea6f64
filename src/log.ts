import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Lines are written in batches of this many bytes, or at least this often. */
const BATCH_BYTES = 16 * 1024;
const FLUSH_EVERY_MS = 200;
/** The most one write takes from the pending lines (sonic-boom's `maxWrite`). */
const WRITE_BYTES = 64 * 1024;

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
 *
 * sonic-boom in its text mode appends each line to one pending string and measures that string
 * before every append, which copies the whole batch once per line (a 4 KiB batch of ten access
 * lines copied 22 KB). In its buffer mode it keeps a list and joins it once per write; pino
 * writes strings, so each line is encoded here on its way in.
 */
function batchedDestination(fd: number): FlushableDestination {
  const boom = pino.destination({
    dest: fd,
    sync: false,
    minLength: BATCH_BYTES,
    maxWrite: WRITE_BYTES,
    periodicFlush: FLUSH_EVERY_MS,
    contentMode: 'buffer',
  });
  let broken = false;
  // A destination that fails for good (its reader gone: EPIPE) drops the lines from then on,
  // and says so once where it still can. pino's own guard quiets only EPIPE, and other errors it
  // passes on would reach the process as uncaught exceptions.
  boom.on('error', (err: NodeJS.ErrnoException) => {
    if (broken) return;
    broken = true;
    process.stderr.write(
      `junction: log destination failed (${err.code ?? err.message}): lines dropped\n`,
    );
  });
  return {
    write(line: string): void {
      // Typed for text, but in buffer mode sonic-boom takes (and counts) a Buffer.
      if (!broken) boom.write(Buffer.from(line) as unknown as string);
    },
    flush(done?: (err?: Error) => unknown): void {
      if (broken) done?.();
      else boom.flush(done);
    },
  };
}

/**
 * What a stop needs of the destination besides `write` (pino's `logger.flush()`). No
 * `flushSync`: pino would call it for every fatal line, and sonic-boom's retries a write that
 * failed for good without end, the main thread blocked (a fatal line logged before the first
 * asynchronous write had failed stopped the gateway for good); a fatal line goes out with the
 * next batch instead.
 */
interface FlushableDestination extends DestinationStream {
  flush(done?: (err?: Error) => unknown): void;
}

/** Keeps what helps an operator (type, message, code); drops foreign properties and causes. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

import type { Logger } from './log.js';

/**
 * Errors nothing caught, while the gateway runs. Both kinds are logged at fatal level, with the
 * stack and the session id when the error carries one (a `sid` property), and the process keeps
 * serving. An uncaught exception is almost always one connection's 'error' event that nothing
 * listened for; exiting for it would end every other session, and let any client that can
 * provoke one stop the gateway. Returns a function that removes the handlers.
 */
export function watchProcessFaults(log: Logger): () => void {
  const onRejection = (reason: unknown): void => {
    log.fatal(describe(reason), 'unhandled promise rejection: junction keeps running');
  };
  const onException = (err: unknown, origin: string): void => {
    log.fatal({ ...describe(err), origin }, 'uncaught exception: junction keeps running');
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}

function describe(value: unknown): Record<string, unknown> {
  const sid =
    typeof value === 'object' && value !== null && 'sid' in value && typeof value.sid === 'string'
      ? value.sid
      : undefined;
  if (value instanceof Error) return { err: value, stack: value.stack, sid };
  // Not an Error: its type only, as a foreign value may hold anything, credentials included.
  return { reason: value === null ? 'null' : typeof value, sid };
}

import { POOL_IDLE_MS, type HttpConnection, type IdleHolder } from './http-connection.js';
import type { Reuse } from './http-link.js';
import type { DialContext } from './types.js';

/**
 * Idle kept-alive connections to an origin or an upstream HTTP proxy, for plain http://
 * requests. A connection is filed under the target it carried requests for and handed out
 * again only for that target, so one client's request never travels on a connection opened for
 * another site. Only the HTTP client that parsed the last response (undici, or node:http for a
 * request that waited for a 100) decides that a connection is reusable; anything else (an
 * error, a close, a byte nobody asked for, too long idle) closes it.
 */
export interface HttpPool {
  /**
   * The most recently idled healthy connection for `key`, removed from the pool: one undici has
   * taken over when there is one, else one it has not; with `untaken`, only one it has not (for
   * a request node:http sends).
   */
  take(key: string, untaken?: boolean): HttpConnection | undefined;
  /** Files `conn` under its key. */
  put(conn: HttpConnection): void;
  readonly size: number;
}

export interface PoolLimits {
  /**
   * Closed after this long unused (a stream undici has not taken over; undici closes its own
   * after POOL_IDLE_MS): below the usual proxy keep-alive timeouts (undici uses 4 s).
   */
  readonly idleMs: number;
  readonly perTarget: number;
  readonly total: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = { idleMs: POOL_IDLE_MS, perTarget: 4, total: 64 };

type Unrefable = { ref?: () => void; unref?: () => void };

export function createHttpPool(limits: PoolLimits = DEFAULT_POOL_LIMITS): HttpPool {
  const idle = new Map<string, HttpConnection[]>();
  /** Stops watching an idle stream that undici has not taken over (timer and listeners). */
  const rawWatches = new Map<HttpConnection, () => void>();
  let size = 0;

  /** Out of the pool, with nothing of the pool left on it; false when it was not there. */
  const remove = (conn: HttpConnection): boolean => {
    const list = idle.get(conn.key);
    const at = list?.lastIndexOf(conn) ?? -1;
    if (!list || at < 0) return false;
    list.splice(at, 1);
    size--;
    if (list.length === 0) idle.delete(conn.key);
    conn.idleIn = undefined;
    const unwatch = rawWatches.get(conn);
    if (unwatch) {
      rawWatches.delete(conn);
      unwatch();
    }
    return true;
  };

  const discard = (conn: HttpConnection): void => {
    remove(conn);
    conn.close();
  };

  const holder: IdleHolder = { drop: discard };

  const evictOldest = (): void => {
    const list = idle.values().next().value;
    const oldest = list?.[0];
    if (oldest) discard(oldest);
  };

  return {
    get size() {
      return size;
    },
    take(key, untaken = false) {
      for (;;) {
        const conn = latest(idle.get(key), untaken);
        if (!conn) return undefined;
        remove(conn);
        if (conn.usable) return conn;
        conn.close();
      }
    },
    put(conn) {
      if (!conn.usable) {
        conn.close();
        return;
      }
      const { key } = conn;
      const list = idle.get(key) ?? [];
      if (list.length >= limits.perTarget) discard(list[0] as HttpConnection);
      if (size >= limits.total) evictOldest();
      // undici watches a stream it has taken over even while idle, and closes it itself for a
      // byte nobody asked for, a FIN, an error or too long idle (and unrefs it): its close is
      // all there is to see (`idleIn`).
      if (!conn.adopted) rawWatches.set(conn, watchRaw(conn, limits.idleMs, discard));
      conn.idleIn = holder;
      list.push(conn);
      if (!idle.has(key)) idle.set(key, list);
      size++;
    },
  };
}

/**
 * Requests whose client waits for a 100 go through node:http, the others through undici
 * (http-link.ts): each kind keeps the connections its client has, and the others take one that
 * has none yet rather than a new connection.
 */
function latest(
  list: readonly HttpConnection[] | undefined,
  untaken: boolean,
): HttpConnection | undefined {
  if (!list) return undefined;
  for (let i = list.length - 1; i >= 0; i--) {
    const conn = list[i] as HttpConnection;
    if (conn.adopted !== untaken) return conn;
  }
  return untaken ? undefined : list.at(-1);
}

/**
 * A stream nobody reads: while idle the far end has nothing to say, so any event ends it, as
 * does `idleMs` unused. Returns what stops watching it.
 */
function watchRaw(
  conn: HttpConnection,
  idleMs: number,
  discard: (conn: HttpConnection) => void,
): () => void {
  const { stream } = conn;
  const onEvent = (): void => {
    discard(conn);
  };
  const timer = setTimeout(onEvent, idleMs);
  timer.unref();
  stream.on('data', onEvent);
  stream.on('end', onEvent);
  stream.on('error', onEvent);
  // An idle connection does not keep the process alive (shutdown, tests).
  (stream as Unrefable).unref?.();
  return () => {
    clearTimeout(timer);
    stream.off('data', onEvent);
    stream.off('end', onEvent);
    stream.off('error', onEvent);
    (stream as Unrefable).ref?.();
  };
}

/**
 * A kept connection for `key` if the pool has one, else a new one from `dial`, with how it goes
 * back to the pool and how another one is had for a request node:http must send (http-link.ts).
 */
export async function pooledConnection(
  pool: HttpPool,
  key: string,
  context: DialContext,
  dial: (context: DialContext) => Promise<HttpConnection>,
): Promise<{ readonly conn: HttpConnection; readonly reuse: Reuse }> {
  const idle = pool.take(key);
  const conn = idle ?? (await dial(context));
  const reuse: Reuse = {
    reused: idle !== undefined,
    keep: (kept) => {
      pool.put(kept);
    },
    redial: async () =>
      pool.take(key, true) ?? (await dial({ ...context, signal: redialSignal(context) })),
  };
  return { conn, reuse };
}

/**
 * A dial after the session's own (a request for node:http, when the pooled connection it got is
 * undici's): bounded by what is left of the connect timeout, which the session's signal no
 * longer is.
 */
function redialSignal(context: DialContext): AbortSignal {
  const left = (context.deadline ?? Date.now()) - Date.now();
  return AbortSignal.timeout(Math.max(left, MIN_REDIAL_MS));
}

/** A pooled connection is taken at once, so most of the connect timeout is normally left. */
const MIN_REDIAL_MS = 1_000;

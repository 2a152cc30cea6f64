import type { HttpConnection } from './http-connection.js';

/**
 * Idle kept-alive connections to an origin or an upstream HTTP proxy, for plain http://
 * requests. A connection is filed under the target it carried requests for and handed out
 * again only for that target, so one client's request never travels on a connection opened for
 * another site. Only the HTTP client that parsed the last response (undici, or node:http for a
 * request that waited for a 100) decides that a connection is reusable; anything else (an
 * error, a close, a byte nobody asked for, too long idle) destroys it.
 */
export interface HttpPool {
  /** The most recently idled healthy connection for `key`, removed from the pool. */
  take(key: string): HttpConnection | undefined;
  put(key: string, conn: HttpConnection): void;
  readonly size: number;
}

export interface PoolLimits {
  /** Closed after this long unused: below the usual proxy keep-alive timeouts (undici uses 4 s). */
  readonly idleMs: number;
  readonly perTarget: number;
  readonly total: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = { idleMs: 4_000, perTarget: 4, total: 64 };

interface Idle {
  readonly conn: HttpConnection;
  /** Stops watching the connection (timer and listeners) without closing it. */
  readonly release: () => void;
  /** Takes it out of the pool and closes it: it cannot serve again. */
  discard: () => void;
}

type Unrefable = { ref?: () => void; unref?: () => void };

export function createHttpPool(limits: PoolLimits = DEFAULT_POOL_LIMITS): HttpPool {
  const idle = new Map<string, Idle[]>();
  let size = 0;

  const remove = (key: string, entry: Idle): void => {
    const list = idle.get(key);
    const at = list?.lastIndexOf(entry) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    size--;
    if (list.length === 0) idle.delete(key);
  };

  const evictOldest = (): void => {
    const [key, list] = idle.entries().next().value ?? [];
    const oldest = list?.[0];
    if (key === undefined || !oldest) return;
    remove(key, oldest);
    oldest.release();
    oldest.conn.close();
  };

  return {
    get size() {
      return size;
    },
    take(key) {
      const list = idle.get(key);
      while (list && list.length > 0) {
        const entry = list[list.length - 1] as Idle;
        remove(key, entry);
        entry.release();
        if (entry.conn.usable) return entry.conn;
        entry.conn.close();
      }
      return undefined;
    },
    put(key, conn) {
      if (!conn.usable) {
        conn.close();
        return;
      }
      const list = idle.get(key) ?? [];
      if (list.length >= limits.perTarget) {
        const oldest = list[0] as Idle;
        remove(key, oldest);
        oldest.release();
        oldest.conn.close();
      }
      if (size >= limits.total) evictOldest();
      const entry = conn.adopted
        ? watchAdopted(conn, limits.idleMs)
        : watchRaw(conn, limits.idleMs);
      entry.discard = () => {
        remove(key, entry);
        entry.release();
        conn.close();
      };
      list.push(entry);
      if (!idle.has(key)) idle.set(key, list);
      size++;
    },
  };
}

/**
 * undici reads a connection it has taken over even while idle, and closes it itself for a
 * byte nobody asked for, a FIN or an error (and unrefs it): a close or too long idle is all
 * there is to watch.
 */
function watchAdopted(conn: HttpConnection, idleMs: number): Idle {
  const { stream } = conn;
  const onClose = (): void => {
    entry.discard();
  };
  const timer = setTimeout(onClose, idleMs);
  timer.unref();
  stream.on('close', onClose);
  const entry: Idle = {
    conn,
    discard: () => undefined,
    release: () => {
      clearTimeout(timer);
      stream.off('close', onClose);
    },
  };
  return entry;
}

/** A stream nobody reads: while idle the far end has nothing to say, so any event ends it. */
function watchRaw(conn: HttpConnection, idleMs: number): Idle {
  const { stream } = conn;
  const onEvent = (): void => {
    entry.discard();
  };
  const timer = setTimeout(onEvent, idleMs);
  timer.unref();
  stream.on('data', onEvent);
  stream.on('end', onEvent);
  stream.on('error', onEvent);
  stream.on('close', onEvent);
  // An idle connection does not keep the process alive (shutdown, tests).
  (stream as Unrefable).unref?.();
  const entry: Idle = {
    conn,
    discard: () => undefined,
    release: () => {
      clearTimeout(timer);
      stream.off('data', onEvent);
      stream.off('end', onEvent);
      stream.off('error', onEvent);
      stream.off('close', onEvent);
      (stream as Unrefable).ref?.();
    },
  };
  return entry;
}

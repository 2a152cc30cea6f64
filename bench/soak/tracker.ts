/**
 * What the origins saw of one token (one client connection's requests), for the scenarios that
 * check the far side: when the origin's connection closed, and how many requests of one client
 * connection were in flight at once. Only watched tokens are kept, so a long soak does not
 * accumulate an entry per session.
 */
export interface Tracker {
  /** Starts keeping what happens to `token`; call before the client sends it. */
  watch(token: string): void;
  /** Forgets a token (the scenario is done with it). */
  forget(token: string): void;
  /** An origin received a request or stream carrying `token`. */
  seen(token: string): void;
  /** An origin connection carrying `token` closed. */
  closed(token: string): void;
  /** A request carrying `token` started (+1) or finished (-1) at an origin. */
  inFlight(token: string, delta: 1 | -1): void;
  /** Resolves true once an origin has seen `token`, false after `ms`. */
  waitSeen(token: string, ms: number): Promise<boolean>;
  /** Resolves true once an origin connection with `token` has closed, false after `ms`. */
  waitClosed(token: string, ms: number): Promise<boolean>;
  /** The most requests of `token` an origin was handling at the same time. */
  maxInFlight(token: string): number;
}

interface Entry {
  seen: boolean;
  closed: boolean;
  inFlight: number;
  maxInFlight: number;
  readonly waiters: Set<() => void>;
}

export function createTracker(): Tracker {
  const entries = new Map<string, Entry>();
  const update = (token: string, change: (entry: Entry) => void): void => {
    const entry = entries.get(token);
    if (!entry) return;
    change(entry);
    for (const wake of entry.waiters) wake();
  };
  const waitFor = (token: string, ms: number, done: (entry: Entry) => boolean): Promise<boolean> =>
    new Promise((resolve) => {
      const entry = entries.get(token);
      if (!entry) throw new Error(`token ${token} is not watched`);
      if (done(entry)) {
        resolve(true);
        return;
      }
      const wake = (): void => {
        if (!done(entry)) return;
        clearTimeout(timer);
        entry.waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        entry.waiters.delete(wake);
        resolve(false);
      }, ms);
      entry.waiters.add(wake);
    });
  return {
    watch(token) {
      entries.set(token, {
        seen: false,
        closed: false,
        inFlight: 0,
        maxInFlight: 0,
        waiters: new Set(),
      });
    },
    forget(token) {
      entries.delete(token);
    },
    seen(token) {
      update(token, (e) => (e.seen = true));
    },
    closed(token) {
      update(token, (e) => (e.closed = true));
    },
    inFlight(token, delta) {
      update(token, (e) => {
        e.inFlight += delta;
        e.maxInFlight = Math.max(e.maxInFlight, e.inFlight);
      });
    },
    waitSeen: (token, ms) => waitFor(token, ms, (e) => e.seen),
    waitClosed: (token, ms) => waitFor(token, ms, (e) => e.closed),
    maxInFlight: (token) => entries.get(token)?.maxInFlight ?? 0,
  };
}

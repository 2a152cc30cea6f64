import { ProxyError } from '../errors.js';
import type { DialContext } from './types.js';

/**
 * Why and when a session gives up a dial (the client left, the connect timeout), made cheap for
 * the dials that never read `signal`: its AbortController is made on the first read, and a
 * direct dial listens here instead (an AbortSignal is an EventTarget with maps of its own, a
 * measurable share of a short session).
 */
export class DialAbort {
  private controller: AbortController | undefined;
  private listeners: ((reason: ProxyError) => void)[] | undefined;
  reason: ProxyError | undefined;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: ProxyError): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener(reason);
  }

  /** Calls `listener` once at the abort; returns what stops listening. */
  listen(listener: (reason: ProxyError) => void): () => void {
    (this.listeners ??= []).push(listener);
    return () => {
      const at = this.listeners?.indexOf(listener) ?? -1;
      if (at >= 0) this.listeners?.splice(at, 1);
    };
  }
}

/**
 * Not enumerable, so a context derived with a spread (`{ ...context, signal }`: a fallback
 * member's own deadline, a redial) does not carry it, and listens to its own signal.
 */
const ABORT = Symbol('dial abort');

/** `context` with `abort` behind its `signal`, for the dials that read neither. */
export function withDialAbort<T extends DialContext>(context: T, abort: DialAbort): T {
  Object.defineProperty(context, ABORT, { value: abort });
  return context;
}

/** The session's own abort when `context` is the session's own context, else undefined. */
export function dialAbortOf(context: Pick<DialContext, 'signal'>): DialAbort | undefined {
  return (context as { [ABORT]?: DialAbort })[ABORT];
}

/** Calls `onAbort` once when the dial is given up; returns what stops listening. */
export function listenForAbort(
  context: Pick<DialContext, 'signal'>,
  onAbort: (reason: ProxyError) => void,
): () => void {
  const abort = dialAbortOf(context);
  if (abort) return abort.listen(onAbort);
  const { signal } = context;
  const listener = (): void => {
    onAbort(abortReason(signal));
  };
  signal.addEventListener('abort', listener, { once: true });
  return () => {
    signal.removeEventListener('abort', listener);
  };
}

/** Why the dial was given up, if it was. */
export function abortedFor(context: Pick<DialContext, 'signal'>): ProxyError | undefined {
  const abort = dialAbortOf(context);
  if (abort) return abort.reason;
  return context.signal.aborted ? abortReason(context.signal) : undefined;
}

/** A timeout aborts with a TimeoutError reason; any other abort means the client left. */
export function abortReason(signal: AbortSignal): ProxyError {
  const reason: unknown = signal.reason;
  if (reason instanceof ProxyError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new ProxyError('CONNECT_TIMEOUT', 'connect timed out');
  }
  return new ProxyError('CLIENT_CLOSED', 'connect abandoned');
}

import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { Target } from '../target.js';

export interface DialContext {
  /** Aborted when the connect timeout passes or the client goes away. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** A stream that already reaches the target, through every hop. */
export interface Connected {
  readonly stream: Duplex;
  /** The address the far end sees us as, when the outbound knows it (SOCKS BND). */
  readonly bound: Target | undefined;
}

export interface Outbound {
  readonly name: string;
  /** Resolves with a connected stream; rejects only with ProxyError. */
  dial(target: Target, context: DialContext): Promise<Connected>;
}

import type { Target } from './target.js';

export type Protocol = 'http' | 'connect' | 'socks4' | 'socks5' | 'socks5-udp';

/** What rules and logs know of a session. Fixed once the client's handshake is parsed. */
export interface SessionInfo {
  readonly id: string;
  readonly inbound: string;
  readonly protocol: Protocol;
  readonly source: { readonly ip: string; readonly port: number };
  readonly user: string | undefined;
  readonly target: Target;
}

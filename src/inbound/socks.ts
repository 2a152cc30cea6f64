import type { ProtocolEnv, ProtocolHandler } from './types.js';

export interface SocksVersions {
  readonly socks4: boolean;
  readonly socks5: boolean;
}

/** Not yet implemented: closes the connection. */
export function createSocksHandler(_env: ProtocolEnv, _versions: SocksVersions): ProtocolHandler {
  return {
    handle({ socket }) {
      socket.destroy();
    },
  };
}

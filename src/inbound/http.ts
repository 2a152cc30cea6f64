import type { ProtocolEnv, ProtocolHandler } from './types.js';

/** Not yet implemented: closes the connection. */
export function createHttpHandler(_env: ProtocolEnv): ProtocolHandler {
  return {
    handle({ socket }) {
      socket.destroy();
    },
  };
}

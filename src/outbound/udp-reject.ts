import { formatTarget } from '../target.js';
import type { UdpOutbound } from './udp-types.js';

/** The UDP side of `reject`: every datagram is dropped and counted as rejected by rule. */
export function createRejectUdp(): UdpOutbound {
  return {
    open(context) {
      return Promise.resolve({
        send(target) {
          context.dropped('rejected', `${formatTarget(target)}: rejected by rule`);
        },
        onMessage() {
          // Nothing is ever sent, so nothing comes back.
        },
        close() {
          // Nothing to close.
        },
      });
    },
  };
}

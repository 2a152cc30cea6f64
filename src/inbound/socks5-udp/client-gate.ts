/**
 * RFC 1928 §7: "the UDP relay server MUST acquire from the SOCKS server the expected IP address
 * of the client that will send datagrams to the BND.PORT". The client's IP is its control
 * connection's; its port is the one it declared in the request, or, when it declared none
 * (zeros: it may not know it yet, behind a NAT), the port of its first valid datagram.
 * Everything else arriving on the relay socket is dropped, and so are invalid frames and
 * fragments (reassembly is optional and not implemented).
 */
import type { RemoteInfo } from 'node:dgram';
import type { UdpDrop } from '../../outbound/udp-types.js';
import type { Target } from '../../target.js';
import { parseUdpDatagram } from '../socks-udp-codec.js';

export type Admission =
  | { readonly kind: 'ok'; readonly target: Target; readonly payload: Buffer }
  | { readonly kind: 'drop'; readonly drop: UdpDrop; readonly detail: string };

export interface ClientGate {
  /** Judges one datagram that arrived on the relay socket. */
  admit(message: Buffer, from: RemoteInfo): Admission;
  /** Where replies go: undefined until the client's port is known. */
  readonly client: { readonly ip: string; readonly port: number } | undefined;
}

/** `declaredPort` 0: the port is learned from the first valid datagram. */
export function createClientGate(ip: string, declaredPort: number): ClientGate {
  let client: ClientGate['client'] = declaredPort === 0 ? undefined : { ip, port: declaredPort };
  const drop = (kind: UdpDrop, detail: string): Admission => ({ kind: 'drop', drop: kind, detail });
  return {
    admit(message, from) {
      if (from.address !== ip || (client !== undefined && from.port !== client.port)) {
        return drop('foreign_source', `from ${from.address}:${from.port}`);
      }
      const parsed = parseUdpDatagram(message);
      if (parsed.kind === 'error') return drop('malformed', parsed.reason);
      const { frag, target, payload } = parsed.value;
      if (frag !== 0) return drop('fragmented', `FRAG ${frag}: fragments are not reassembled`);
      client ??= { ip, port: from.port };
      return { kind: 'ok', target, payload };
    },
    get client() {
      return client;
    },
  };
}

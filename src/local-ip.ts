import type { Socket } from 'node:net';

/**
 * The address a TCP connection uses on this host, IPv4-mapped IPv6 written as IPv4: a dual-stack
 * listener reports `::ffff:127.0.0.1`, and a dgram socket meant to meet the same peer must bind
 * it as IPv4. `fallback` when the socket has no local address (already destroyed).
 */
export function localIp(socket: Socket, fallback: string): string {
  const ip = socket.localAddress ?? fallback;
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

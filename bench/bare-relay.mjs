// The least a Node.js SOCKS5 (no auth, CONNECT, IPv4 or name) and HTTP CONNECT relay can do on
// node:net, with no limits, rules, logs or metrics: the floor junction's figures are read against
// in `npm run bench`. Not a proxy to use.
//   node bench/bare-relay.mjs SOCKS_PORT HTTP_PORT
import { connect, createServer } from 'node:net';

const [socksPort, httpPort] = process.argv.slice(2).map(Number);

/** Joins two sockets both ways; either one's error or close ends both. */
function splice(a, b) {
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.pipe(b).on('close', () => a.destroy());
  b.pipe(a);
}

/** Dials host:port, then answers the client with `ok` and relays; `rest` goes first upstream. */
function dialThenRelay(client, host, port, ok, rest) {
  const upstream = connect({ host, port, noDelay: true }, () => {
    client.write(ok);
    if (rest.length > 0) upstream.write(rest);
    splice(client, upstream);
  });
  upstream.on('error', () => client.destroy());
}

createServer({ noDelay: true }, (client) => {
  client.on('error', () => {});
  let buffered = Buffer.alloc(0);
  let greeted = false;
  const onData = (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (!greeted) {
      if (buffered.length < 2 || buffered.length < 2 + buffered[1]) return;
      buffered = buffered.subarray(2 + buffered[1]);
      greeted = true;
      client.write(Buffer.from([5, 0]));
    }
    if (buffered.length < 5) return;
    const ipv4 = buffered[3] === 1;
    const end = ipv4 ? 10 : 7 + buffered[4];
    if (buffered.length < end) return;
    const host = ipv4 ? buffered.subarray(4, 8).join('.') : buffered.toString('latin1', 5, end - 2);
    const port = buffered.readUInt16BE(end - 2);
    client.off('data', onData);
    const ok = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    dialThenRelay(client, host, port, ok, buffered.subarray(end));
  };
  client.on('data', onData);
}).listen(socksPort, '127.0.0.1');

createServer({ noDelay: true }, (client) => {
  client.on('error', () => {});
  let head = '';
  const onData = (chunk) => {
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    client.off('data', onData);
    const authority = head.split(' ')[1] ?? '';
    const colon = authority.lastIndexOf(':');
    const rest = Buffer.from(head.slice(end + 4), 'latin1');
    const ok = 'HTTP/1.1 200 Connection Established\r\n\r\n';
    dialThenRelay(client, authority.slice(0, colon), Number(authority.slice(colon + 1)), ok, rest);
  };
  client.on('data', onData);
}).listen(httpPort, '127.0.0.1');

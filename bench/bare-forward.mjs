// The least a Node.js forward proxy for plain http:// can do: node:http in front, undici behind
// it with one kept-alive pool per origin, no limits, rules, logs or metrics. The floor junction's
// forwarding figures are read against in `npm run bench`. Not a proxy to use.
//   node bench/bare-forward.mjs HTTP_PORT
import { createServer } from 'node:http';
import { Pool } from 'undici';

const port = Number(process.argv[2]);
const pools = new Map();
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding']);

function poolFor(origin) {
  let pool = pools.get(origin);
  if (!pool) pools.set(origin, (pool = new Pool(origin, { connections: 256 })));
  return pool;
}

createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const url = new URL(req.url ?? '');
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, req.rawHeaders[i + 1]);
  }
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  poolFor(url.origin).dispatch(
    { path: url.pathname + url.search, method: req.method, headers, body: bodyless ? null : req },
    {
      onConnect() {},
      onError() {
        if (!res.headersSent) res.statusCode = 502;
        res.end();
      },
      onHeaders(status, raw, resume) {
        res.on('drain', resume);
        const out = [];
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i].toString('latin1');
          if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1].toString('latin1'));
        }
        res.writeHead(status, out);
        return true;
      },
      onData(chunk) {
        return res.write(chunk);
      },
      onComplete() {
        res.end();
      },
    },
  );
  if (bodyless) req.resume();
}).listen(port, '127.0.0.1');

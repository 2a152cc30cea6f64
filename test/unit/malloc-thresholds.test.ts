import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

// A process that reads 512 MiB from a loopback socket and counts the page faults it took while
// reading the last 448: each read is a fresh 64 KiB buffer that a scavenge frees later, as in a
// relay. With glibc's thresholds left low, the heap is handed back to the kernel after each
// scavenge and faulted in again page by page.
const READER = `
import { readFileSync } from 'node:fs';
import net from 'node:net';
const faults = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
if (process.env.THRESHOLDS) await import(process.env.THRESHOLDS);
const chunk = Buffer.alloc(1 << 20, 7);
const server = net.createServer((s) => {
  let sent = 0;
  const more = () => {
    while (sent < 512) {
      sent++;
      if (!s.write(chunk)) return void s.once('drain', more);
    }
    s.end();
  };
  more();
});
server.listen(0, '127.0.0.1', () => {
  const c = net.connect(server.address().port, '127.0.0.1');
  let bytes = 0;
  let before = -1;
  c.on('data', (d) => {
    bytes += d.length;
    if (before < 0 && bytes > 64 << 20) before = faults();
  });
  c.on('end', () => {
    process.stdout.write(JSON.stringify({ faults: faults() - before, bytes }));
    server.close();
  });
});
`;

async function readFaults(
  thresholds: string | undefined,
): Promise<{ faults: number; bytes: number }> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', READER],
    { env: { ...process.env, THRESHOLDS: thresholds ?? '' }, timeout: 30_000 },
  );
  return JSON.parse(stdout) as { faults: number; bytes: number };
}

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header
  .glibcVersionRuntime;

test(
  'with malloc-thresholds loaded, reading 448 MiB through a socket faults in almost no pages',
  { skip: glibc === undefined ? 'not glibc: its trim threshold is what this is about' : false },
  async (t) => {
    const module = fileURLToPath(new URL('../../src/malloc-thresholds.ts', import.meta.url));
    const tuned = await readFaults(module);
    const untuned = await readFaults(undefined);
    t.diagnostic(`page faults: ${tuned.faults} with, ${untuned.faults} without (glibc ${glibc})`);
    assert.equal(tuned.bytes, 512 << 20);
    // 448 MiB is 114,688 pages; faulting each in once is what the module prevents.
    assert.ok(tuned.faults < 3000, `${tuned.faults} page faults`);
  },
);

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { createLogger } from '../../src/log.js';

test('lines written in batches to a descriptor arrive whole, in order, UTF-8 intact, after flush', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'junction-log-'));
  try {
    const file = join(dir, 'access.log');
    const log = createLogger('info', openSync(file, 'w'));
    const long = 'x'.repeat(100_000); // longer than one write takes from the batch
    const expected: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const msg = i === 1500 ? long : `line ${i} é — ✓ 日本`;
      expected.push(msg);
      log.info({ sid: `s${i}` }, msg);
      // Some lines land while a write is in flight, some after it.
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise<void>((resolve, reject) => {
      log.flush((err) => (err ? reject(err) : resolve()));
    });
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, expected.length);
    lines.forEach((line, i) => {
      const record = JSON.parse(line) as { sid: string; msg: string };
      assert.equal(record.sid, `s${i}`);
      assert.equal(record.msg, expected[i]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A process logging to a pipe nobody reads any more: lines, then at once a fatal one (pino
// flushes those synchronously), then it says so on stderr and exits.
const ORPHANED = `
const { createLogger } = await import(process.env.LOG_MODULE);
const log = createLogger('info', 1);
for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
log.fatal('a fatal line');
log.info('after the fatal line');
process.stderr.write('still running\\n');
`;

test('a log destination whose reader is gone drops lines; a fatal line does not hang the process', async () => {
  const module = fileURLToPath(new URL('../../src/log.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', ORPHANED],
    {
      env: { ...process.env, LOG_MODULE: module },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // The reader goes away before the first batch is written.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, `killed after 20 s: ${stderr}`);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /log destination failed \(EPIPE\): lines dropped/);
  assert.match(stderr, /still running/);
});

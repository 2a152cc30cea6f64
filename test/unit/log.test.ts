import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

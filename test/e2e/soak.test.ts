import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');
const SESSIONS = 3000;

test(`a ${SESSIONS}-session fault soak holds every invariant`, async (t) => {
  assert.ok(existsSync(join(ROOT, 'dist/main.js')), 'the soak runs dist/main.js: npm run build');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/soak/main.ts',
      '--sessions',
      String(SESSIONS),
      '--concurrency',
      '50',
    ],
    // The soak bounds every wait itself; this only stops a soak that is itself stuck.
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 110_000 },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  // The whole report (figures, failures, violations) goes to the test's diagnostics.
  for (const line of output.trimEnd().split('\n')) t.diagnostic(line);
  const violations = output
    .split('\n')
    .filter((line) => line.startsWith('  - '))
    .map((line) => line.slice(0, 200));
  assert.equal(code, 0, `the soak ended with ${String(code ?? signal)}: ${violations.join(' | ')}`);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

const src = (file: string): string =>
  pathToFileURL(new URL(`../../src/${file}`, import.meta.url).pathname).href;

/**
 * A process that watches for faults, then meets an unhandled rejection and an uncaught
 * exception (carrying a session id), and afterwards still answers. Run in a child: the test
 * runner has handlers of its own for both.
 */
const CHILD = `
import { createLogger } from '${src('log.ts')}';
import { watchProcessFaults } from '${src('process-faults.ts')}';
const log = createLogger('info', process.stdout);
watchProcessFaults(log);
Promise.reject(new Error('nobody awaited this'));
Promise.reject({ password: 'Fault-secret-9' });
setTimeout(() => {
  throw Object.assign(new Error('a handler threw'), { sid: 'abc123-7' });
}, 0);
// Timers of one delay run in the order they were set: this one after the throw above.
setTimeout(() => log.info('still running'), 0);
`;

test('an unhandled rejection and an uncaught exception are logged at fatal level; the process runs on', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  const lines = stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const fatal = lines.filter((l) => l.level === 60);
  assert.deepEqual(
    fatal.map((l) => [l.msg, (l.err as { message?: string } | undefined)?.message, l.sid]),
    [
      ['unhandled promise rejection: junction keeps running', 'nobody awaited this', undefined],
      ['unhandled promise rejection: junction keeps running', undefined, undefined],
      ['uncaught exception: junction keeps running', 'a handler threw', 'abc123-7'],
    ],
  );
  assert.equal(fatal[1]?.reason, 'object');
  assert.match(String(fatal[2]?.stack), /^Error: a handler threw\n\s+at /);
  assert.equal(lines.at(-1)?.msg, 'still running');
  assert.ok(!stdout.includes('Fault-secret-9'));
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

/**
 * junction as a user's dependency: the packed package (npm pack, as published) installed into a
 * fresh project, imported by name, type-checked by that project's TypeScript.
 */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const project = mkdtempSync(join(tmpdir(), 'junction-consumer-'));

before(async () => {
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', project], {
    cwd: root,
  });
  const tarball = stdout.trim().split('\n').at(-1) ?? '';
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  // Its dependencies come from npm's cache, filled by the project's own `npm ci`.
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent', `./${tarball}`],
    { cwd: project },
  );
});

after(() => {
  rmSync(project, { recursive: true, force: true });
});

const SCRIPT = `
import { createServer, request } from 'node:http';
import { ConfigError, startGateway } from 'junction';

const origin = createServer((req, res) => res.end('origin saw ' + req.url));
await new Promise((done) => origin.listen(0, '127.0.0.1', done));
const originPort = origin.address().port;

const lines = [];
const destination = { write: (line) => lines.push(JSON.parse(line)) };
const gateway = await startGateway(
  { inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }] },
  { logger: { level: 'info', destination } },
);
const port = gateway.addresses.get('web').port;
const records = [];
gateway.on('session', (record) => records.push(record.result + ' ' + record.target));

const get = () =>
  new Promise((done, fail) => {
    const req = request({ port, path: 'http://127.0.0.1:' + originPort + '/x', headers: { host: 'h' } });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => done(res.statusCode + ' ' + body));
    });
    req.on('error', fail);
    req.end();
  });

const out = { first: await get() };
await gateway.reload({
  inbounds: [{ name: 'web', type: 'http', listen: '127.0.0.1:0' }],
  rules: [{ outbound: 'reject' }],
});
out.afterReload = await get();
try {
  await gateway.reload({ inbounds: [{ name: 'web', type: 'nope', listen: 'x' }] });
} catch (err) {
  out.refused = err instanceof ConfigError ? err.message : 'not a ConfigError: ' + err;
}
out.stillRejecting = await get();
await gateway.stop(0);
origin.close();
out.sessions = lines.filter((l) => l.msg === 'session').map((l) => l.result);
out.records = records;
console.log(JSON.stringify(out));
`;

const TYPED = `
import { startGateway, type RunningGateway, type StartOptions } from 'junction';
const options: StartOptions = { baseDir: '.' };
const running: Promise<RunningGateway> = startGateway({ inbounds: [] }, options);
void running;
`;

test('the packed package starts, reloads and stops a gateway from a config object, and tells of each session', async () => {
  writeFileSync(join(project, 'use.mjs'), SCRIPT);
  const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: project, timeout: 20_000 });
  const out = JSON.parse(stdout) as Record<string, unknown>;
  assert.equal(out.first, '200 origin saw /x');
  assert.match(String(out.afterReload), /^403 /);
  assert.match(String(out.refused), /inbounds\.0\.type: expected one of/);
  assert.match(String(out.refused), /inbounds\.0\.listen: bad listen address "x"/);
  assert.match(String(out.stillRejecting), /^403 /, 'a refused reload keeps the running rules');
  assert.deepEqual(out.sessions, ['ok', 'RULE_REJECT', 'RULE_REJECT']);
  const target = String((out.records as string[])[0]).split(' ')[1];
  assert.match(target ?? '', /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(out.records, [`ok ${target}`, `RULE_REJECT ${target}`, `RULE_REJECT ${target}`]);
});

test('the packed package carries its types', async () => {
  writeFileSync(join(project, 'typed.ts'), TYPED);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2023',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')],
      },
      files: ['typed.ts'],
    }),
  );
  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, timeout: 60_000 });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { loadConfigFile, loadConfigText } from '../../src/config/load.js';

/** The packaging files are checked by the tools that read them, and their configurations by junction. */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

async function systemdAnalyze(): Promise<string | undefined> {
  try {
    await run('systemd-analyze', ['--version']);
    return 'systemd-analyze';
  } catch {
    return undefined;
  }
}

test('deploy/junction.service passes systemd-analyze verify', async (t) => {
  if (!(await systemdAnalyze())) {
    if (process.env.CI === 'true')
      assert.fail('systemd-analyze is missing (Debian package systemd)');
    t.skip('systemd-analyze is not installed (Debian package systemd)');
    return;
  }
  const unit = read('deploy/junction.service');
  const start = /^ExecStart=(\S+) /m.exec(unit)?.[1];
  assert.equal(start, '/usr/local/bin/junction');
  for (const line of [
    'DynamicUser=yes',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
  ]) {
    assert.ok(unit.split('\n').includes(line), line);
  }
  // verify checks that the command exists: a stand-in takes the installed command's place.
  const dir = mkdtempSync(join(tmpdir(), 'junction-unit-'));
  try {
    const stub = join(dir, 'junction');
    writeFileSync(stub, '#!/bin/sh\n');
    chmodSync(stub, 0o755);
    writeFileSync(join(dir, 'junction.service'), unit.replace(start, stub));
    const { stdout, stderr } = await run('systemd-analyze', ['verify', 'junction.service'], {
      cwd: dir,
    });
    assert.equal(`${stdout}${stderr}`.trim(), '', 'no warning');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the container image’s configuration is valid and serves /healthz where HEALTHCHECK asks', () => {
  const dockerfile = read('Dockerfile');
  assert.ok((dockerfile.match(/^FROM /gm) ?? []).length >= 2, 'a multi-stage build');
  assert.match(dockerfile, /^USER node$/m);
  const port = /127\.0\.0\.1:(\d+)\/healthz/.exec(dockerfile)?.[1];
  const config = loadConfigFile(join(root, 'deploy/config.yaml'));
  assert.equal(String(config.admin?.listen.port), port);
});

test('deploy/kubernetes.yaml: probes on /healthz, a PodDisruptionBudget, a valid configuration', () => {
  const documents = parseAllDocuments(read('deploy/kubernetes.yaml')).map(
    (doc) => doc.toJS() as Record<string, unknown>,
  );
  const kinds = documents.map((doc) => doc.kind);
  assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'Service', 'PodDisruptionBudget']);
  const [configMap, deployment] = documents as [
    { data: { 'config.yaml': string } },
    {
      spec: {
        template: {
          spec: {
            terminationGracePeriodSeconds: number;
            containers: {
              readinessProbe: { httpGet: { path: string } };
              livenessProbe: { httpGet: { path: string } };
              ports: { name: string; containerPort: number }[];
            }[];
          };
        };
      };
    },
  ];
  const config = loadConfigText(configMap.data['config.yaml'], 'kubernetes.yaml', root);
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  assert.ok(container);
  assert.equal(container.readinessProbe.httpGet.path, '/healthz');
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  const admin = container.ports.find((p) => p.name === 'admin');
  assert.equal(admin?.containerPort, config.admin?.listen.port);
  // Kubernetes must not kill a pod before junction's own shutdown grace has run out.
  assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.limits.shutdown_grace);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFileInSlices } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startTcpServer, type TcpServer } from '../helpers/net.js';
import { socks5Connect, type Socks5Tunnel } from '../helpers/socks-client.js';

const REJECTED_BY_RULE = 0x02;
const SUCCEEDED = 0x00;
const LARGE = 300_000;

/** A list of `count` names under list.example, with `extra` lines after them. */
function largeList(count: number, extra = ''): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++)
    lines.push(i % 3 === 0 ? `full:h${i}.list.example` : `h${i}.list.example`);
  return `${lines.join('\n')}\n${extra}`;
}

interface Setup {
  readonly gateway: TestGateway;
  readonly echo: TcpServer;
  readonly listFile: string;
  readonly configFile: string;
  /** The SOCKS5 reply byte for a new session to localhost (the echo server). */
  localhostReply(): Promise<number>;
  close(): Promise<void>;
}

/** A gateway whose one rule rejects what `list.txt` lists; at first, localhost. */
async function setup(source?: (configFile: string) => Promise<Config>): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'junction-list-reload-'));
  const listFile = join(dir, 'list.txt');
  const configFile = join(dir, 'junction.yaml');
  writeFileSync(listFile, 'localhost\n');
  const raw = {
    inbounds: [{ name: 'socks', type: 'socks', listen: '127.0.0.1:0' }],
    rules: [{ domain_list: listFile, outbound: 'reject' }],
  };
  writeFileSync(configFile, JSON.stringify(raw));
  const gateway = await startGateway(raw, {
    source: () => (source ?? loadConfigFileInSlices)(configFile),
  });
  const echo = await startTcpServer((socket) => socket.pipe(socket));
  const opened: Socks5Tunnel[] = [];
  return {
    gateway,
    echo,
    listFile,
    configFile,
    async localhostReply() {
      const tunnel = await socks5Connect(gateway.port(), 'localhost', echo.port);
      opened.push(tunnel);
      return tunnel.reply;
    },
    async close() {
      for (const tunnel of opened) tunnel.client.socket.destroy();
      await gateway.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Round trips through `tunnel` until `done` settles; resolves with how many completed. */
async function pingUntil(tunnel: Socks5Tunnel, done: Promise<unknown>): Promise<number> {
  let settled = false;
  const settle = (): void => {
    settled = true;
  };
  done.then(settle, settle);
  const pending = (): boolean => !settled;
  let completed = 0;
  while (pending()) {
    tunnel.client.write('ping\n');
    assert.equal((await tunnel.client.read(5)).toString(), 'ping\n');
    if (pending()) completed++;
  }
  return completed;
}

test('a reload building a large domain list keeps live sessions flowing, then applies it', async () => {
  const s = await setup();
  try {
    assert.equal(await s.localhostReply(), REJECTED_BY_RULE);
    const live = await socks5Connect(s.gateway.port(), '127.0.0.1', s.echo.port);
    assert.equal(live.reply, SUCCEEDED);
    writeFileSync(s.listFile, largeList(LARGE));

    const reloading = s.gateway.gateway.reloadFromSource();
    const pingsDuringReload = await pingUntil(live, reloading);
    await reloading;

    // Building the list in one go would answer no ping until it was done.
    assert.ok(pingsDuringReload > 0, 'no round trip completed while the list was built');
    assert.equal(await s.localhostReply(), SUCCEEDED);
    live.client.write('after\n');
    assert.equal((await live.client.read(6)).toString(), 'after\n');
    live.client.socket.destroy();
  } finally {
    await s.close();
  }
});

test('until a reload is complete, new sessions get the rules that were running', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const s = await setup(async (configFile) => {
    await gate;
    return loadConfigFileInSlices(configFile);
  });
  try {
    writeFileSync(s.listFile, 'other.example\n');
    const reloading = s.gateway.gateway.reloadFromSource();
    assert.equal(await s.localhostReply(), REJECTED_BY_RULE);
    release();
    await reloading;
    assert.equal(await s.localhostReply(), SUCCEEDED);
  } finally {
    await s.close();
  }
});

test('a large list with a bad line refuses the whole reload, with the line, and keeps the rules', async () => {
  const s = await setup();
  try {
    writeFileSync(s.listFile, largeList(LARGE, 'ok.example\nnot a name\n'));
    const refused = await s.gateway.gateway.reloadFromSource().then(
      () => assert.fail('the reload was accepted'),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof ConfigError);
    assert.equal(refused.problems.length, 1);
    const problem = refused.problems[0]!;
    assert.equal(problem.file, s.configFile);
    assert.equal(problem.line, 1);
    assert.match(
      problem.message,
      new RegExp(
        `^rules\\.0\\.domain_list: cannot use domain list .*list\\.txt: line ${LARGE + 2}: bad domain "not a name"$`,
      ),
    );
    await s.gateway.waitForLog(
      (line) => line.msg === 'reload refused: the running configuration stays',
    );
    assert.equal(await s.localhostReply(), REJECTED_BY_RULE);
  } finally {
    await s.close();
  }
});

import type { RawClient } from '../../test/helpers/net.js';
import { readHead } from './http-client.js';
import { bytesOf, randomSlice } from './random.js';
import { CLOSE_BOUND_MS, STEP_MS, check, checkBytes, type Run, type Scenario } from './scenario.js';
import { checkOpened, originUrl, sendRequest } from './scenarios-transfer.js';
import { FORWARD_WAYS, TUNNEL_WAYS } from './ways.js';

/** One side goes away mid-stream: the other side must be closed at once, not at idle_timeout. */

async function originClosesSoon(run: Run, after: string): Promise<void> {
  const started = performance.now();
  const closed = await run.env.tracker.waitClosed(run.token, CLOSE_BOUND_MS);
  check(
    closed,
    `origin connection still open ${Math.round(performance.now() - started)} ms after ${after}`,
  );
}

/** The client resets its connection while bytes flow both ways (or a response streams). */
export const clientReset: Scenario = {
  name: 'client-reset',
  weight: 8,
  ways: [...TUNNEL_WAYS, ...FORWARD_WAYS],
  async run(run) {
    run.expectLine('CLIENT_CLOSED');
    run.watch();
    const wanted = run.rng.int(1, 256 * 1024);
    if (run.way.kind === 'forward') {
      const client = await run.connect();
      sendRequest(run, client, { method: 'GET', url: originUrl(run, `/stream/${run.token}`) });
      const head = await readHead(client, STEP_MS);
      check(head.status === 200, `GET answered ${head.status}, expected 200`);
      await client.read(wanted, STEP_MS);
      client.socket.resetAndDestroy();
    } else {
      const client = checkOpened(await run.tunnel());
      client.write(`STREAM ${run.token}\n`);
      client.write(bytesOf(randomSlice(run.rng, run.rng.int(0, 64 * 1024))));
      await client.read(wanted, STEP_MS);
      client.socket.resetAndDestroy();
    }
    await originClosesSoon(run, 'the client reset');
  },
};

/**
 * The origin resets its connection after part of a stream (or of a response body). A tunnel's
 * client gets every byte sent before the reset, acknowledges them, and is then closed promptly;
 * a forwarded response is cut short (or, if it had not started, is a 502).
 */
export const originReset: Scenario = {
  name: 'origin-reset',
  weight: 7,
  ways: [...TUNNEL_WAYS, ...FORWARD_WAYS],
  async run(run) {
    run.expectLine('UPSTREAM_FAILED');
    const slice = randomSlice(run.rng, run.rng.int(0, 64 * 1024));
    const sent = bytesOf(slice);
    let client: RawClient;
    if (run.way.kind === 'forward') {
      client = await run.connect();
      const path = `/reset/${run.token}/${slice.offset}/${slice.length}`;
      sendRequest(run, client, { method: 'GET', url: originUrl(run, path) });
      const head = await readHead(client, STEP_MS);
      if (head.status === 502) return;
      check(head.status === 200, `GET answered ${head.status}, expected 200 (or 502)`);
    } else {
      client = checkOpened(await run.tunnel());
      client.write(`RESET ${run.token} ${slice.offset} ${slice.length}\n`);
      checkBytes(await client.read(sent.length, STEP_MS), sent, 'bytes before the reset');
      client.write('\n');
    }
    const started = performance.now();
    let rest: Buffer;
    try {
      rest = await client.readToEnd(CLOSE_BOUND_MS);
    } catch {
      const ms = Math.round(performance.now() - started);
      throw new Error(`client connection still open ${ms} ms after the origin reset`);
    }
    if (run.way.kind === 'forward') {
      check(rest.length < sent.length + 1_000_000, 'a response cut by a reset was completed');
      check(rest.equals(sent.subarray(0, rest.length)), 'the body before the reset differs');
    } else {
      check(rest.length === 0, `${rest.length} bytes arrived after the reset`);
    }
  },
};

/**
 * The client leaves before the origin has answered its request: the origin connection must
 * close at once, not at idle_timeout.
 */
export const leaveEarly: Scenario = {
  name: 'leave-early',
  weight: 3,
  ways: FORWARD_WAYS,
  async run(run) {
    run.expectLine('CLIENT_CLOSED');
    run.watch();
    const client = await run.connect();
    sendRequest(run, client, { method: 'GET', url: originUrl(run, `/hold/${run.token}`) });
    check(
      await run.env.tracker.waitSeen(run.token, STEP_MS),
      'the request never reached the origin',
    );
    if (run.rng.chance(0.5)) client.socket.resetAndDestroy();
    else client.socket.end();
    await originClosesSoon(run, 'the client left');
  },
};

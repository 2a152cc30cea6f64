import type { RawClient } from '../../test/helpers/net.js';
import { readBody, readHead, readResponse, requestBytes, type Request } from './http-client.js';
import { bytesOf, randomSlice, transferSize } from './random.js';
import { STEP_MS, check, checkBytes, delay, sha256, type Run, type Scenario } from './scenario.js';
import { credentialsFor, FORWARD_WAYS, TUNNEL_WAYS, type Opened } from './ways.js';

/** Full transfers whose bytes are compared at the other end, whatever the way in. */

export function checkOpened(opened: Opened): RawClient {
  check(
    opened.ok,
    `${opened.stage} answered 0x${opened.code.toString(16)} (${opened.code}), expected success`,
  );
  return opened.client;
}

export function originUrl(run: Run, path: string): string {
  return `http://${run.way.originHost}:${run.originPort}${path}`;
}

export function sendRequest(run: Run, client: RawClient, request: Request): void {
  client.write(requestBytes(request, credentialsFor(run.way)));
}

/** Random bytes one way or both (ECHO, SINK, SOURCE), each checked by SHA-256. */
export const transfer: Scenario = {
  name: 'transfer',
  weight: 30,
  ways: [...TUNNEL_WAYS, ...FORWARD_WAYS],
  async run(run) {
    run.expectLine('ok');
    if (run.way.kind === 'forward') {
      await forwardTransfer(run);
      return;
    }
    const client = checkOpened(await run.tunnel());
    const slice = randomSlice(run.rng, transferSize(run.rng));
    const payload = bytesOf(slice);
    const mode = run.rng.pick(['ECHO', 'SINK', 'SOURCE'] as const);
    if (mode === 'ECHO') {
      client.write(`ECHO ${run.token}\n`);
      client.write(payload);
      client.socket.end();
      checkBytes(await client.readToEnd(STEP_MS), payload, 'echoed bytes');
    } else if (mode === 'SINK') {
      client.write(`SINK ${run.token} ${payload.length}\n`);
      client.write(payload);
      client.socket.end();
      const answer = (await client.readToEnd(STEP_MS)).toString('latin1');
      check(answer === `${sha256(payload)}\n`, `the origin's checksum of the upload differs`);
    } else {
      client.write(`SOURCE ${run.token} ${slice.offset} ${slice.length}\n`);
      client.socket.end();
      checkBytes(await client.readToEnd(STEP_MS), payload, 'downloaded bytes');
    }
  },
};

/** One forwarded request: a POST echoed back, or a GET of a slice. */
async function forwardTransfer(run: Run): Promise<void> {
  const client = await run.connect();
  const slice = randomSlice(run.rng, transferSize(run.rng));
  const payload = bytesOf(slice);
  const post = run.rng.chance(0.5);
  const request: Request = post
    ? { method: 'POST', url: originUrl(run, `/echo/${run.token}/0`), body: payload }
    : {
        method: 'GET',
        url: originUrl(run, `/get/${run.token}/0/${slice.offset}/${slice.length}`),
      };
  sendRequest(run, client, request);
  const response = await readResponse(client, STEP_MS);
  check(response.status === 200, `${request.method} answered ${response.status}, expected 200`);
  check(response.headers.get('x-seq') === '0', 'the response is not the one asked for');
  checkBytes(response.body, payload, `${request.method} response body`);
  client.socket.end();
}

/**
 * Half-close: the client sends its bytes and a FIN, and only then does the origin answer (the
 * checksum of what it read, then bytes of its own). The FIN must reach the origin, and the other
 * direction must keep flowing after it.
 */
export const halfClose: Scenario = {
  name: 'half-close',
  weight: 8,
  ways: TUNNEL_WAYS,
  async run(run) {
    run.expectLine('ok');
    const client = checkOpened(await run.tunnel());
    const up = bytesOf(randomSlice(run.rng, transferSize(run.rng)));
    const downSlice = randomSlice(run.rng, transferSize(run.rng));
    client.write(`LATE ${run.token} ${downSlice.offset} ${downSlice.length}\n`);
    client.write(up);
    client.socket.end();
    const got = await client.readToEnd(STEP_MS);
    const line = got.subarray(0, 65).toString('latin1');
    check(line === `${sha256(up)}\n`, `after the FIN the origin answered "${line.slice(0, 20)}"`);
    checkBytes(got.subarray(65), bytesOf(downSlice), 'bytes sent after the FIN');
  },
};

/** A client that stops reading for a while in the middle of a large download. */
export const slowReader: Scenario = {
  name: 'slow-reader',
  weight: 3,
  ways: [...TUNNEL_WAYS, ...FORWARD_WAYS],
  async run(run) {
    run.expectLine('ok');
    const slice = randomSlice(run.rng, run.rng.int(256 * 1024, 1024 * 1024));
    const payload = bytesOf(slice);
    // Well under idle_timeout: a paused reader is slow, not idle.
    const pauseMs = run.rng.int(300, 1500);
    let client: RawClient;
    if (run.way.kind === 'forward') {
      client = await run.connect();
      const path = `/get/${run.token}/0/${slice.offset}/${slice.length}`;
      sendRequest(run, client, { method: 'GET', url: originUrl(run, path) });
      const head = await readHead(client, STEP_MS);
      check(head.status === 200, `GET answered ${head.status}, expected 200`);
      await pause(client, pauseMs);
      checkBytes(await readBody(client, head.headers, STEP_MS), payload, 'slowly read body');
      client.socket.end();
    } else {
      client = checkOpened(await run.tunnel());
      client.write(`SOURCE ${run.token} ${slice.offset} ${slice.length}\n`);
      client.socket.end();
      const first = await client.read(1, STEP_MS);
      await pause(client, pauseMs);
      const rest = await client.readToEnd(STEP_MS);
      checkBytes(Buffer.concat([first, rest]), payload, 'slowly read bytes');
    }
  },
};

async function pause(client: RawClient, ms: number): Promise<void> {
  client.socket.pause();
  await delay(ms); // the fault itself: a reader that does not read
  client.socket.resume();
}

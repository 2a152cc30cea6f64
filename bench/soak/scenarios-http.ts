import type { RawClient } from '../../test/helpers/net.js';
import { readResponse, requestBytes, type Request } from './http-client.js';
import { bytesOf, randomSlice, type Rng } from './random.js';
import { STEP_MS, check, checkBytes, type Run, type Scenario } from './scenario.js';
import { originUrl } from './scenarios-transfer.js';
import { credentialsFor, FORWARD_WAYS } from './ways.js';

/**
 * How many requests of one client connection may be at the origin at once. A pipelining client
 * must not fan out into a connection per request: one request in flight per client connection,
 * the responses in order.
 */
export const PIPELINE_IN_FLIGHT_BOUND = 1;

interface Exchange {
  readonly request: Request;
  readonly expected: Buffer;
}

/**
 * How long the origin takes to answer a pipelined request: long enough that requests sent on
 * before the previous answer would meet it at the origin.
 */
const ORIGIN_DELAY_MS = 10;

/**
 * Request `seq` of a run: a GET of a slice, or a POST echoed back, up to 16 KiB either way,
 * answered after `delayMs`.
 */
function exchange(run: Run, rng: Rng, seq: number, delayMs = 0): Exchange {
  const slice = randomSlice(rng, rng.int(0, 16 * 1024));
  const body = bytesOf(slice);
  if (rng.chance(0.5)) {
    const path = `/echo/${run.token}/${seq}/${delayMs}`;
    return { request: { method: 'POST', url: originUrl(run, path), body }, expected: body };
  }
  const path = `/get/${run.token}/${seq}/${slice.offset}/${slice.length}/${delayMs}`;
  return { request: { method: 'GET', url: originUrl(run, path) }, expected: body };
}

async function checkResponse(client: RawClient, sent: Exchange, seq: number): Promise<void> {
  const response = await readResponse(client, STEP_MS);
  const what = `request ${seq} (${sent.request.method})`;
  check(response.status === 200, `${what} answered ${response.status}, expected 200`);
  const got = response.headers.get('x-seq');
  check(got === String(seq), `${what} got the response to request ${got ?? '?'}: out of order`);
  checkBytes(response.body, sent.expected, `${what} response body`);
}

/**
 * Requests written back to back before any answer: each is answered, in order, exactly; and
 * the origin never has more than PIPELINE_IN_FLIGHT_BOUND of them at once.
 */
export const pipelined: Scenario = {
  name: 'pipelined',
  weight: 8,
  ways: FORWARD_WAYS,
  async run(run) {
    // Mostly short pipelines; some deep ones, which would fan out into many origin connections.
    const depth = run.rng.chance(0.1) ? run.rng.int(16, 32) : run.rng.int(2, 8);
    for (let seq = 0; seq < depth; seq++) run.expectLine('ok');
    run.watch();
    const exchanges = Array.from({ length: depth }, (_, seq) =>
      exchange(run, run.rng, seq, ORIGIN_DELAY_MS),
    );
    const credentials = credentialsFor(run.way);
    const client = await run.connect();
    client.write(Buffer.concat(exchanges.map((e) => requestBytes(e.request, credentials))));
    for (const [seq, sent] of exchanges.entries()) await checkResponse(client, sent, seq);
    client.socket.end();
    const inFlight = run.env.tracker.maxInFlight(run.token);
    check(
      inFlight <= PIPELINE_IN_FLIGHT_BOUND,
      `${inFlight} of ${depth} pipelined requests were at the origin at once (bound ${PIPELINE_IN_FLIGHT_BOUND})`,
    );
  },
};

/** Requests one after the other on one kept-alive client connection. */
export const keepAlive: Scenario = {
  name: 'keep-alive',
  weight: 6,
  ways: FORWARD_WAYS,
  async run(run) {
    const count = run.rng.int(2, 6);
    for (let seq = 0; seq < count; seq++) run.expectLine('ok');
    const credentials = credentialsFor(run.way);
    const client = await run.connect();
    for (let seq = 0; seq < count; seq++) {
      const sent = exchange(run, run.rng, seq);
      client.write(requestBytes(sent.request, credentials));
      await checkResponse(client, sent, seq);
    }
    client.socket.end();
  },
};

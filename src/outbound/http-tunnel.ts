// RFC 9110 §9.3.6 (CONNECT), §11.6.1-§11.7.2 (407, Proxy-Authenticate, Proxy-Authorization): a
// tunnel through an HTTP proxy, answering its challenges with the strongest scheme junction has
// credentials for. A retry after a 407 goes on the same connection when the proxy kept it open,
// else on a new one.
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatTarget, type Target } from '../target.js';
import { sendConnect, skipBody, type ConnectAnswer } from './http-connect-exchange.js';
import { canAnswer, ChallengeAnswerer, type ProxyAuth } from './proxy-auth/answerer.js';
import { FIRST_REST_MS } from './proxy-auth/lockout.js';
import type { AuthRequest } from './proxy-auth/types.js';
import type { Connected } from './types.js';

/** Enough for a multi-round scheme's handshake and a stale nonce; a proxy looping is refused. */
const MAX_ROUNDS = 5;

export interface TunnelRequest {
  readonly target: Target;
  readonly label: string;
  readonly auth: ProxyAuth;
  readonly via: readonly string[] | undefined;
  readonly log: Logger;
  /** A new stream to the same proxy (the hops before it dialled again), for a retry. */
  readonly reopen: (() => Promise<Duplex>) | undefined;
}

export async function openTunnel(first: Duplex, tunnel: TunnelRequest): Promise<Connected> {
  const { target, label, auth } = tunnel;
  const authority = formatTarget(target);
  const request: AuthRequest = { method: 'CONNECT', uri: authority };
  const answerer = new ChallengeAnswerer(auth, label, request, { keepsConnection: true });
  let stream = first;
  const blocked = auth.lockout.blocked();
  if (blocked) {
    stream.destroy();
    throw blocked;
  }
  let authorization = answerer.first();
  try {
    for (let round = 1; ; round++) {
      const answer = await sendConnect(stream, authority, headers(tunnel, authorization), label);
      if (answer.status >= 200 && answer.status <= 299) {
        answerer.succeeded();
        if (answer.head.length > 0) stream.unshift(answer.head);
        return { stream, bound: undefined };
      }
      if (answer.status !== 407 || !canAnswer(auth) || round >= MAX_ROUNDS) {
        throw answerer.refusal(answer.status, authority);
      }
      authorization = await answerer.answer(answer.challenges);
      tunnel.log.debug(
        { upstream: label, scheme: answerer.scheme, round },
        'answering the upstream proxy challenge',
      );
      stream = await nextStream(stream, answer, answerer.connectionBound, tunnel);
    }
  } catch (err) {
    stream.destroy();
    if (answerer.firstRefusal) {
      tunnel.log.warn(
        { upstream: label, rest_s: FIRST_REST_MS / 1000 },
        'upstream proxy refused our credentials: they are not sent again for a while, so that the account is not locked out',
      );
    }
    throw err;
  }
}

function headers(tunnel: TunnelRequest, authorization: string | undefined): Record<string, string> {
  return {
    ...(tunnel.via === undefined ? {} : { Via: tunnel.via.join(', ') }),
    ...(authorization === undefined ? {} : { 'Proxy-Authorization': authorization }),
    // node:http says `Connection: close` by default: a proxy would then close after a 407.
    ...(canAnswer(tunnel.auth) ? { Connection: 'keep-alive' } : {}),
  };
}

/** The stream for the next attempt: this one with the refusal's body skipped, or a new one. */
async function nextStream(
  stream: Duplex,
  answer: ConnectAnswer,
  connectionBound: boolean,
  tunnel: TunnelRequest,
): Promise<Duplex> {
  if (answer.reusableAfter !== undefined && !stream.destroyed && stream.readable) {
    await skipBody(stream, answer.head, answer.reusableAfter, tunnel.label);
    return stream;
  }
  if (connectionBound || tunnel.reopen === undefined) {
    throw new ProxyError(
      'UPSTREAM_FAILED',
      `upstream proxy ${tunnel.label} closed the connection during authentication`,
    );
  }
  stream.destroy();
  return tunnel.reopen();
}

// RFC 9110 §11.6.1-§11.7.2: the answers to an HTTP proxy's 407s for one request, and the
// errors that say why there is none.
import { ProxyError } from '../../errors.js';
import { refusal } from '../http-refusal.js';
import { parseChallenges, type Challenge } from './challenge.js';
import type { CredentialLockout } from './lockout.js';
import { NegotiateUnavailable } from './negotiate.js';
import {
  challengeFor,
  chooseScheme,
  usableSchemes,
  type SchemePolicy,
} from './negotiate-schemes.js';
import type {
  AsyncAuthExchange,
  AuthExchange,
  AuthRequest,
  AuthScheme,
  ProxyCredentials,
  SchemeName,
} from './types.js';

export interface ProxyAuth {
  readonly credentials: ProxyCredentials | undefined;
  readonly policy: SchemePolicy;
  /** The Basic header sent before any challenge, when the policy says so. */
  readonly preemptive: string | undefined;
  /** The last challenge answered successfully, shared by the requests of one proxy hop. */
  readonly memory: ChallengeMemory;
  /** Credentials the proxy refused rest before they are sent again (see lockout.ts). */
  readonly lockout: CredentialLockout;
}

/**
 * Whether junction has anything to answer a 407 with: the URL's credentials, or Kerberos ones
 * of the process (Negotiate).
 */
export function canAnswer(auth: ProxyAuth): boolean {
  return auth.credentials !== undefined || usableSchemes(auth.policy).some((s) => s.kerberos);
}

/**
 * A challenge a scheme may answer again for later requests (Digest, with a growing nonce
 * count), which saves each of them a 407.
 */
export interface ChallengeMemory {
  last: { readonly scheme: AuthScheme; readonly challenge: Challenge; uses: number } | undefined;
}

/** Picks a scheme on the first 407 and follows its exchange through the next ones. */
export class ChallengeAnswerer {
  private exchange:
    | { readonly scheme: AuthScheme; readonly answerer: AuthExchange | AsyncAuthExchange }
    | undefined;
  private readonly auth: ProxyAuth;
  private readonly label: string;
  private readonly request: AuthRequest;
  /** Whether the first attempt carried Basic (pre-emptive), which then had its one try. */
  private sentBasic: boolean;
  /** The first attempt answered a remembered challenge; a 407 to it is not a failure yet. */
  private resumed = false;
  private answered: Challenge | undefined;
  /** Answers given by the current exchange. */
  private rounds = 0;
  /** Whether the caller sends every answer on the connection that brought the challenge. */
  private readonly keepsConnection: boolean;

  /**
   * `keepsConnection`: the caller answers each 407 on the connection that brought it, as the
   * connection-bound schemes (NTLM) need; without it they are not chosen.
   */
  constructor(
    auth: ProxyAuth,
    label: string,
    request: AuthRequest,
    options: { readonly keepsConnection?: boolean } = {},
  ) {
    this.auth = auth;
    this.label = label;
    this.request = request;
    this.sentBasic = auth.preemptive !== undefined;
    this.keepsConnection = options.keepsConnection ?? false;
  }

  /**
   * The Proxy-Authorization of the first attempt: an answer to the challenge remembered from an
   * earlier request when its scheme allows it, else pre-emptive Basic if configured.
   */
  first(): string | undefined {
    const { credentials, policy, memory } = this.auth;
    const last = memory.last;
    if (
      credentials !== undefined &&
      last?.scheme.reuse &&
      policy.schemes.includes(last.scheme.name)
    ) {
      last.uses++;
      const header = last.scheme.reuse(credentials, last.challenge, this.request, last.uses);
      if (header !== undefined) {
        this.exchange = {
          scheme: last.scheme,
          answerer: last.scheme.start(this.account(credentials)),
        };
        this.answered = last.challenge;
        this.resumed = true;
        this.sentBasic = false;
        return header;
      }
    }
    return this.auth.preemptive;
  }

  /** The proxy accepted the last answer: its challenge may serve the next requests. */
  succeeded(): void {
    if (canAnswer(this.auth)) this.auth.lockout.accepted();
    const scheme = this.exchange?.scheme;
    if (scheme?.reuse === undefined || this.answered === undefined) return;
    if (this.auth.memory.last?.challenge === this.answered) return;
    this.auth.memory.last = { scheme, challenge: this.answered, uses: 1 };
  }

  /** The scheme being answered with, once chosen: "Digest". */
  get scheme(): string | undefined {
    return this.exchange?.scheme.title;
  }

  /**
   * Whether the next answer continues a handshake begun on this connection (NTLM's
   * AUTHENTICATE after its CHALLENGE), so that it cannot go on a new one. The first answer of
   * an exchange can: nothing of it was sent yet.
   */
  get connectionBound(): boolean {
    return (this.exchange?.scheme.connectionBound ?? false) && this.rounds > 1;
  }

  /**
   * The next Proxy-Authorization for a 407 with these Proxy-Authenticate fields; rejects with
   * UPSTREAM_AUTH_FAILED when there is none to give.
   */
  async answer(fields: readonly string[]): Promise<string> {
    const challenges = parseChallenges(fields);
    if (!canAnswer(this.auth)) throw this.refusal(407, this.request.uri);
    if (this.resumed) {
      // The remembered challenge is no longer good (expired nonce, restarted proxy): forget it
      // and start over, as if nothing had been sent.
      this.resumed = false;
      this.exchange = undefined;
      this.auth.memory.last = undefined;
    }
    if (this.exchange === undefined) return this.begin(challenges);
    const { scheme, answerer } = this.exchange;
    const challenge = challengeFor(challenges, scheme);
    const next = challenge && (await answerer.answer(challenge, this.request));
    if (next === undefined) throw this.failed(scheme.title);
    this.answered = challenge;
    this.rounds++;
    return next;
  }

  /**
   * The first answer of the preferred scheme the proxy offers. Negotiate may fail before
   * anything is sent (no ticket, no KDC): the next scheme is tried then, as browsers do.
   */
  private async begin(challenges: readonly Challenge[]): Promise<string> {
    const { credentials, policy } = this.auth;
    // Basic sent before the challenge and refused counts as Basic's one attempt.
    const excluded = new Set<SchemeName>(this.sentBasic ? ['basic'] : []);
    for (const scheme of usableSchemes(policy)) {
      if (scheme.connectionBound && !this.keepsConnection) excluded.add(scheme.name);
      // Without a user in the URL only the process's Kerberos credentials can answer.
      if (credentials === undefined && !scheme.kerberos) excluded.add(scheme.name);
    }
    let unavailable: NegotiateUnavailable | undefined;
    for (;;) {
      const choice = chooseScheme(challenges, policy, excluded);
      if (choice.scheme === undefined) {
        const offered = choice.offered.map((s) => s.toLowerCase());
        if (this.sentBasic && offered.includes('basic')) throw this.failed('Basic');
        if (unavailable) throw this.unavailable(unavailable);
        if (credentials === undefined) throw refusal(407, this.label, this.request.uri, false);
        throw this.unanswerable(choice.offered, choice.usable);
      }
      const answerer = choice.scheme.start(this.account(credentials));
      this.exchange = { scheme: choice.scheme, answerer };
      this.rounds = 0;
      let first: string | undefined;
      try {
        first = await answerer.answer(choice.challenge, this.request);
      } catch (err) {
        if (!(err instanceof NegotiateUnavailable)) throw err;
        unavailable = err;
        excluded.add(choice.scheme.name);
        this.exchange = undefined;
        continue;
      }
      if (first === undefined) throw this.failed(choice.scheme.title);
      this.answered = choice.challenge;
      this.rounds++;
      return first;
    }
  }

  /**
   * The credentials with the account details the policy adds (NTLM's domain, workstation;
   * Negotiate's binding and service principal). Negotiate needs no user from the URL.
   */
  private account(credentials: ProxyCredentials | undefined): ProxyCredentials {
    const { policy } = this.auth;
    const kerberos = policy.kerberos;
    const binding = kerberos?.support.binding;
    return {
      ...(credentials ?? { username: '', password: '' }),
      domain: credentials?.domain ?? policy.domain,
      workstation: credentials?.workstation ?? policy.workstation,
      kerberos: kerberos && binding && { binding, spn: kerberos.spn },
    };
  }

  refusal(status: number, authority: string): ProxyError {
    if (status === 407 && this.exchange) return this.failed(this.exchange.scheme.title);
    if (status === 407 && this.sentBasic) return this.failed('Basic');
    return refusal(status, this.label, authority, canAnswer(this.auth));
  }

  /** True when this request's refusal began a lockout streak: the caller logs it once. */
  get firstRefusal(): boolean {
    return this.startedLockout;
  }

  private startedLockout = false;

  private failed(scheme: string): ProxyError {
    const error = new ProxyError(
      'UPSTREAM_AUTH_FAILED',
      `upstream proxy ${this.label} authentication failed (${scheme})`,
    );
    // Our credentials were refused: they rest before anyone sends them again.
    this.startedLockout = this.auth.lockout.refused(error);
    return error;
  }

  /** Negotiate could not begin and no other scheme was left: why, without blaming the proxy. */
  private unavailable(err: NegotiateUnavailable): ProxyError {
    return new ProxyError(
      'UPSTREAM_AUTH_FAILED',
      `upstream proxy ${this.label} authentication failed (Negotiate: ${err.message})`,
    );
  }

  private unanswerable(offered: readonly string[], usable: readonly string[]): ProxyError {
    const offers = offered.length === 0 ? 'no authentication scheme' : offered.join(', ');
    const can =
      usable.length === 0
        ? `none of the configured schemes (${this.auth.policy.schemes.join(', ')}) is available`
        : `junction can answer ${usable.join(', ')}`;
    return new ProxyError(
      'UPSTREAM_AUTH_FAILED',
      `upstream proxy ${this.label} offers ${offers}; ${can}`,
    );
  }
}

import { ProxyError } from '../../errors.js';

/** How long credentials rest after a proxy refuses them, doubling while it goes on refusing. */
export const FIRST_REST_MS = 60_000;
export const LONGEST_REST_MS = 15 * 60_000;

/**
 * A corporate directory locks an account after a few bad attempts, and a gateway opens sessions
 * by the hundred: once an upstream proxy has refused our credentials, they are not sent again
 * for a while. Sessions meanwhile fail at once with the refusal, and say why; the first refusal
 * of a streak is the one worth a warning. The state belongs to one hop of one configuration
 * generation, so a reload (with the password fixed) starts afresh.
 */
export class CredentialLockout {
  private restMs = 0;
  private until = 0;
  private refusal: ProxyError | undefined;
  private announced = false;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** The error to fail with, without asking the proxy, while the credentials rest. */
  blocked(): ProxyError | undefined {
    const left = this.until - this.now();
    if (this.refusal === undefined || left <= 0) return undefined;
    return new ProxyError(
      this.refusal.code,
      `${this.refusal.message}; the credentials are not sent again for ${Math.ceil(left / 1000)} s, so that the account is not locked out`,
    );
  }

  /** The proxy refused the credentials. True for the first refusal of a streak: log it. */
  refused(error: ProxyError): boolean {
    this.restMs = this.restMs === 0 ? FIRST_REST_MS : Math.min(this.restMs * 2, LONGEST_REST_MS);
    this.until = this.now() + this.restMs;
    this.refusal = error;
    const first = !this.announced;
    this.announced = true;
    return first;
  }

  /** The proxy accepted them: the streak is over. */
  accepted(): void {
    this.restMs = 0;
    this.until = 0;
    this.refusal = undefined;
    this.announced = false;
  }
}

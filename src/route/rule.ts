import type { RuleConfig } from '../config/schema.js';
import type { Host } from '../target.js';
import type { RouteInput, Rule } from './types.js';
import type { Matcher } from './matchers/types.js';
import { scalarText } from './matchers/text.js';
import { exactDomainMatcher } from './matchers/domain-exact.js';
import { suffixDomainMatcher } from './matchers/domain-suffix.js';
import { keywordDomainMatcher } from './matchers/domain-keyword.js';
import { regexDomainMatcher } from './matchers/domain-regex.js';
import { domainListMatcher } from './matchers/domain-list.js';
import { cidrMatcher } from './matchers/cidr.js';
import { portMatcher } from './matchers/port.js';
import { inboundMatcher } from './matchers/inbound.js';
import { userMatcher } from './matchers/user.js';

/** A Rule plus the question the router asks before paying for a DNS lookup. */
export interface CompiledRule extends Rule {
  /**
   * True when this rule's outcome now hinges on the target's addresses alone: a `resolve` rule,
   * a domain target, every non-destination key matching and no domain key matching.
   */
  needsAddresses(input: RouteInput): boolean;
}

interface RuleParts {
  /** domain, domain_suffix, domain_keyword, domain_regex, domain_list: tested on the name. */
  readonly domainMatchers: Matcher<string>[];
  /** ip_cidr: tested on an IP target, or on a domain target's addresses under `resolve`. */
  ipMatcher: Matcher<string> | undefined;
  /** port, source_cidr, inbound, user: each must match. */
  readonly conditions: Matcher<RouteInput>[];
  /** Each key's text, in config order. */
  readonly texts: string[];
}

function on<Subject>(
  matcher: Matcher<Subject>,
  pick: (input: RouteInput) => Subject,
): Matcher<RouteInput> {
  return { text: matcher.text, matches: (input) => matcher.matches(pick(input)) };
}

function compileParts(config: RuleConfig): RuleParts {
  const parts: RuleParts = { domainMatchers: [], ipMatcher: undefined, conditions: [], texts: [] };
  const addDomain = (matcher: Matcher<string>) => {
    parts.domainMatchers.push(matcher);
    parts.texts.push(matcher.text);
  };
  const addCondition = (matcher: Matcher<RouteInput>) => {
    parts.conditions.push(matcher);
    parts.texts.push(matcher.text);
  };
  for (const key of Object.keys(config) as (keyof RuleConfig)[]) {
    switch (key) {
      case 'domain':
        if (config.domain) addDomain(exactDomainMatcher(config.domain));
        break;
      case 'domain_suffix':
        if (config.domain_suffix) addDomain(suffixDomainMatcher(config.domain_suffix));
        break;
      case 'domain_keyword':
        if (config.domain_keyword) addDomain(keywordDomainMatcher(config.domain_keyword));
        break;
      case 'domain_regex':
        if (config.domain_regex) addDomain(regexDomainMatcher(config.domain_regex));
        break;
      case 'domain_list':
        if (config.domain_list) addDomain(domainListMatcher(config.domain_list));
        break;
      case 'ip_cidr':
        if (config.ip_cidr) {
          parts.ipMatcher = cidrMatcher('ip_cidr', config.ip_cidr);
          parts.texts.push(parts.ipMatcher.text);
        }
        break;
      case 'resolve':
        if (config.resolve) parts.texts.push('resolve: true');
        break;
      case 'port':
        if (config.port) addCondition(on(portMatcher(config.port), (i) => i.target.port));
        break;
      case 'source_cidr':
        if (config.source_cidr) {
          addCondition(on(cidrMatcher('source_cidr', config.source_cidr), (i) => i.source.ip));
        }
        break;
      case 'inbound':
        if (config.inbound) addCondition(on(inboundMatcher(config.inbound), (i) => i.inbound));
        break;
      case 'user':
        if (config.user) addCondition(on(userMatcher(config.user), (i) => i.user));
        break;
      case 'outbound':
        parts.texts.push(`outbound: ${scalarText(config.outbound)}`);
        break;
      default:
        key satisfies never;
    }
  }
  return parts;
}

export function compileRule(config: RuleConfig, index: number): CompiledRule {
  const { domainMatchers, ipMatcher, conditions, texts } = compileParts(config);
  const hasDestination = domainMatchers.length > 0 || ipMatcher !== undefined;
  // Loops rather than every/some: this runs for each rule of each decision.
  const conditionsMatch = (input: RouteInput): boolean => {
    for (const condition of conditions) if (!condition.matches(input)) return false;
    return true;
  };
  const nameMatches = (name: string): boolean => {
    for (const matcher of domainMatchers) if (matcher.matches(name)) return true;
    return false;
  };
  const destinationMatches = (host: Host, addresses: readonly string[] | undefined) => {
    if (!hasDestination) return true;
    if (host.kind !== 'domain') return ipMatcher?.matches(host.ip) ?? false;
    if (nameMatches(host.name)) return true;
    // Addresses count only where the rule asked for them: no rule leaks a name to DNS by accident.
    if (!config.resolve || !ipMatcher || !addresses) return false;
    return addresses.some((address) => ipMatcher.matches(address));
  };
  return {
    index,
    text: `{ ${texts.join(', ')} }`,
    outbound: config.outbound,
    resolve: config.resolve,
    matches: (input, addresses) =>
      conditionsMatch(input) && destinationMatches(input.target.host, addresses),
    needsAddresses: (input) =>
      config.resolve &&
      ipMatcher !== undefined &&
      input.target.host.kind === 'domain' &&
      conditionsMatch(input) &&
      !nameMatches(input.target.host.name),
  };
}

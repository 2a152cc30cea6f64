import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { parseCidr, type Cidr } from '../cidr.js';
import { parseHost, parseHostPort, type Target } from '../target.js';
import { formatDuration, MAX_TIMER_MS, parseDuration } from './duration.js';
import { readDomainList } from '../route/domain-list.js';
import type { DomainTable } from '../route/domain-table.js';
import type { PacSource } from '../outbound/pac/source.js';
import { readSecret, type SecretSource } from './secret.js';
import { parseSize } from './size.js';
import { parseOutboundUrl } from './url.js';

/**
 * The configuration schema: the single source of truth for each entry's shape. The TypeScript
 * types below are inferred from it, and load.ts maps every issue's path back to a YAML position.
 * What spans entries (names that must exist, be unique, not loop) is checked in references.ts.
 */

const duration = z
  .string('expected a duration such as 500ms, 10s, 5m or 1h')
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `bad duration "${text}" (use 500ms, 10s, 5m or 1h)`,
      });
      return z.NEVER;
    }
    if (ms > MAX_TIMER_MS) {
      ctx.addIssue({
        code: 'custom',
        message: `"${text}" is longer than the longest timer, ${MAX_TIMER_MS} ms (about 24.8 days); use ${formatDuration(MAX_TIMER_MS)} or less`,
      });
      return z.NEVER;
    }
    return ms;
  });

/**
 * The lowest rate: the relay meters whole reads (up to 64 KiB), so below this one read would
 * hold a session still for over a minute.
 */
const MIN_RATE = 1000;

/** Bytes per second: a number of bytes, or a size such as 500KB, 10MB, 1GB or 512KiB. */
const bytesPerSecond = z
  .union([z.number(), z.string()], { error: 'expected a rate such as 500KB, 10MB or 1GiB' })
  .transform((value, ctx) => {
    const bytes = typeof value === 'number' ? value : parseSize(value);
    if (bytes === undefined || !Number.isSafeInteger(bytes)) {
      ctx.addIssue({
        code: 'custom',
        message: `bad rate "${String(value)}" (use 500KB, 10MB, 1GB, 512KiB, 1MiB or a number of bytes)`,
      });
      return z.NEVER;
    }
    if (bytes < MIN_RATE) {
      ctx.addIssue({
        code: 'custom',
        message: `${String(value)} is below the lowest rate, 1KB per second; leave the key out for no limit`,
      });
      return z.NEVER;
    }
    return bytes;
  });

/** Bytes per second each way; a direction left out is not limited. */
const rate = z.strictObject({ up: bytesPerSecond.optional(), down: bytesPerSecond.optional() });
export type RateConfig = z.output<typeof rate>;

/** A list key also accepts a single item, as users write `port: 443`. */
function list<T extends z.ZodType>(item: T) {
  return z.preprocess(
    (v) => (Array.isArray(v) || v === undefined ? v : [v]),
    z.array(item).min(1, 'an empty list would never match; remove the key instead'),
  );
}

const cidr = z.string('expected a CIDR such as 10.0.0.0/8').transform((text, ctx): Cidr => {
  const parsed = parseCidr(text);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `bad CIDR "${text}"` });
    return z.NEVER;
  }
  return parsed;
});

const listenAddress = z
  .string('expected an address such as 127.0.0.1:1080')
  .transform((text, ctx): Target => {
    const withHost = text.startsWith(':') ? `127.0.0.1${text}` : text;
    const parsed = parseHostPort(withHost, true);
    if (!parsed || (parsed.host.kind === 'domain' && parsed.host.name !== 'localhost')) {
      ctx.addIssue({
        code: 'custom',
        message: `bad listen address "${text}" (use IP:PORT or [IPv6]:PORT)`,
      });
      return z.NEVER;
    }
    return parsed;
  });

const name = z
  .string('expected a name')
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a name uses letters, digits, "_", "." and "-"');

/** RFC 1929 carries at most 255 bytes of password. */
const MAX_PASSWORD_BYTES = 255;
const PASSWORD_KEYS = ['password', 'password_hash', 'password_env', 'password_file'] as const;

/** A secret from `password_env` / `password_file` (see secret.ts), or an issue at that key. */
function secretFrom(
  source: SecretSource,
  key: 'password_env' | 'password_file',
  baseDir: string,
  ctx: z.core.$RefinementCtx,
): string | undefined {
  const secret = readSecret(source, baseDir);
  if ('problem' in secret) {
    ctx.addIssue({ code: 'custom', path: [key], message: secret.problem });
    return undefined;
  }
  return secret.value;
}

type UserEntry = (
  | { readonly username: string; readonly password: string }
  | { readonly username: string; readonly password_hash: string }
) & { readonly rate?: RateConfig };

const user = (baseDir: string) =>
  z
    .strictObject({
      username: z.string().min(1).max(255),
      password: z.string().min(1).max(MAX_PASSWORD_BYTES).optional(),
      password_hash: z
        .string()
        .regex(/^scrypt\$/, 'expected a hash from "junction hash-password"')
        .optional(),
      password_env: z.string().min(1).optional(),
      password_file: z.string().min(1).optional(),
      // Shared by all this user's sessions, on every inbound that names the user.
      rate: rate.optional(),
    })
    .transform((u, ctx): UserEntry => {
      const given = PASSWORD_KEYS.filter((key) => u[key] !== undefined);
      if (given.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          message:
            'a user has exactly one of password, password_hash, password_env or password_file',
        });
        return z.NEVER;
      }
      const limited = u.rate === undefined ? {} : { rate: u.rate };
      if (u.password_hash !== undefined)
        return { username: u.username, password_hash: u.password_hash, ...limited };
      if (u.password !== undefined)
        return { username: u.username, password: u.password, ...limited };
      const key = u.password_env !== undefined ? 'password_env' : 'password_file';
      const password = secretFrom(u, key, baseDir, ctx);
      if (password === undefined) return z.NEVER;
      if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'longer than 255 bytes (RFC 1929)' });
        return z.NEVER;
      }
      return { username: u.username, password, ...limited };
    });

/**
 * A PEM file, relative to the configuration file (or the PEM text itself), read at load so that
 * a missing file is reported at its position and a reload reads it again. The value is the text.
 */
function pemFile(baseDir: string, what: string) {
  return z.string().transform((text, ctx) => {
    if (text.includes('-----BEGIN')) return text;
    const path = resolvePath(baseDir, text);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message);
      ctx.addIssue({ code: 'custom', message: `cannot read ${what} ${path}: ${reason}` });
      return z.NEVER;
    }
  });
}

const inbound = (baseDir: string) =>
  z
    .strictObject({
      name,
      type: z.enum(['http', 'https', 'socks', 'socks4', 'socks5', 'mixed']),
      listen: listenAddress,
      // The certificate (chain) and key an https inbound presents; a mixed one with them also
      // takes TLS (first byte 0x16) for its HTTP side.
      tls: z
        .strictObject({
          cert: pemFile(baseDir, 'certificate'),
          key: pemFile(baseDir, 'key'),
        })
        .optional(),
      auth: z.strictObject({ users: z.array(user(baseDir)).min(1) }).optional(),
      // This inbound's own rate, in place of limits.rate.
      rate: rate.optional(),
      udp: z.boolean().default(true),
      udp_advertise: z
        .string()
        .refine(
          (s) => parseHost(s)?.kind !== 'domain' && parseHost(s) !== undefined,
          'expected an IP address',
        )
        .optional(),
      allow: list(cidr).optional(),
      // A PROXY protocol header (v1 or v2) from a load balancer names the client; off by default.
      proxy_protocol: z.enum(['required', 'optional']).optional(),
      // The peers a header is taken from (inbound/access.ts: loopback when absent).
      proxy_protocol_from: list(cidr).optional(),
    })
    .superRefine((i, ctx) => {
      if (i.proxy_protocol_from && !i.proxy_protocol) {
        ctx.addIssue({
          code: 'custom',
          path: ['proxy_protocol_from'],
          message: 'proxy_protocol_from applies with proxy_protocol: required or optional only',
        });
      }
      if (i.type === 'https' && !i.tls) {
        ctx.addIssue({
          code: 'custom',
          path: ['type'],
          message: 'an https inbound needs tls: { cert, key }',
        });
      }
      if (i.tls) {
        try {
          createSecureContext(i.tls);
        } catch (err) {
          ctx.addIssue({
            code: 'custom',
            path: ['tls'],
            message: `the certificate and key cannot be used: ${(err as Error).message}`,
          });
        }
      }
      if (i.tls && i.type !== 'https' && i.type !== 'mixed') {
        ctx.addIssue({
          code: 'custom',
          path: ['tls'],
          message: 'tls applies to https and mixed inbounds only',
        });
      }
    });

/**
 * `tls.ca`: a PEM file, relative to the configuration file (or the PEM text itself), read at
 * load so a missing file is reported with its position. The value is the PEM text.
 */
function tls(baseDir: string) {
  return z.strictObject({
    ca: z
      .string()
      .transform((text, ctx) => {
        if (text.includes('-----BEGIN')) return text;
        const path = resolvePath(baseDir, text);
        try {
          return readFileSync(path, 'utf8');
        } catch (err) {
          const reason =
            (err as NodeJS.ErrnoException).code === 'ENOENT'
              ? 'no such file'
              : (err as Error).message;
          ctx.addIssue({ code: 'custom', message: `cannot read CA file ${path}: ${reason}` });
          return z.NEVER;
        }
      })
      .optional(),
    servername: z.string().optional(),
    insecure: z.boolean().default(false),
  });
}

const outboundUrl = z.string().superRefine((text, ctx) => {
  const problem = parseOutboundUrl(text).error;
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * How an http(s) outbound answers its proxy's 407: the schemes it may use, in order of
 * preference, and whether Basic goes with the first request (the default for a URL with a user).
 */
const proxyAuth = (baseDir: string) =>
  z
    .strictObject({
      schemes: z
        .array(z.enum(['negotiate', 'ntlm', 'digest', 'basic']))
        .min(1)
        .optional(),
      preemptive: z.enum(['basic', 'none']).optional(),
      // NTLM: the account's domain (or DOMAIN\user, user@domain in the URL) and the workstation
      // name it sends (none by default).
      domain: z.string().min(1).optional(),
      workstation: z.string().min(1).optional(),
      // Negotiate: a keytab to take Kerberos credentials from instead of the ticket cache (one per
      // process), and the proxy's service principal (default HTTP@<proxy host>).
      keytab: z
        .string()
        .min(1)
        .transform((text, ctx) => {
          const path = resolvePath(baseDir, text);
          try {
            accessSync(path, constants.R_OK);
            return path;
          } catch (err) {
            const reason =
              (err as NodeJS.ErrnoException).code === 'ENOENT'
                ? 'no such file'
                : (err as Error).message;
            ctx.addIssue({ code: 'custom', message: `cannot read keytab ${path}: ${reason}` });
            return z.NEVER;
          }
        })
        .optional(),
      spn: z
        .string()
        .regex(/^[^@\s]+@[^@\s]+$/, 'expected a host-based service name: HTTP@proxy.example')
        .optional(),
    })
    .refine(
      (a) => a.preemptive !== 'basic' || a.schemes === undefined || a.schemes.includes('basic'),
      { message: 'preemptive: basic needs basic in schemes', path: ['preemptive'] },
    )
    .refine(
      (a) =>
        (a.keytab === undefined && a.spn === undefined) ||
        a.schemes === undefined ||
        a.schemes.includes('negotiate'),
      { message: 'keytab and spn are for Negotiate: add negotiate to schemes', path: ['schemes'] },
    );

/** The percent-decoded user of an outbound URL, if it parses and has one. */
function userOf(url: string | undefined): string | undefined {
  return url === undefined ? undefined : parseOutboundUrl(url).value?.username;
}

/**
 * Where a PAC file is: an http:// or https:// URL (fetched at start and every interval), or a
 * file relative to the configuration file, which must exist when the configuration is loaded.
 */
function pacSource(baseDir: string) {
  return z.string().transform((text, ctx): PacSource => {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
      let url: URL | undefined;
      try {
        url = new URL(text);
      } catch {
        // Reported below.
      }
      const problem = !url
        ? `bad URL "${text}"`
        : !/^https?:$/.test(url.protocol)
          ? 'a PAC file is an http:// or https:// URL, or a file path'
          : url.username !== '' || url.password !== ''
            ? 'a PAC URL cannot carry credentials'
            : undefined;
      if (problem !== undefined || !url) {
        ctx.addIssue({ code: 'custom', message: problem ?? `bad URL "${text}"` });
        return z.NEVER;
      }
      return { url: url.href };
    }
    const path = resolvePath(baseDir, text);
    try {
      if (!statSync(path).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
      accessSync(path, constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'not a file' : code;
      ctx.addIssue({
        code: 'custom',
        message: `cannot read PAC file ${path}: ${reason ?? 'failed'}`,
      });
      return z.NEVER;
    }
    return { file: path };
  });
}

const outbound = (baseDir: string) =>
  z
    .strictObject({
      name,
      url: outboundUrl.optional(),
      // The password of the URL's user, kept out of the file (see secret.ts).
      password_env: z.string().min(1).optional(),
      password_file: z.string().min(1).optional(),
      tls: tls(baseDir).optional(),
      auth: proxyAuth(baseDir).optional(),
      chain: z.array(name).min(1).optional(),
      // A PROXY protocol header (v1 or v2) naming the client, first on the connection to the
      // first hop (or, for `chain: [direct]`, to the target).
      send_proxy_protocol: z
        .union([z.literal(1), z.literal(2)], {
          error: 'expected 1 or 2 (the PROXY protocol version)',
        })
        .optional(),
      fallback: z.array(name).min(1).optional(),
      // Proxies chosen per target by a PAC file, read again every interval; user and password
      // (or password_env / password_file) go to every proxy it names.
      pac: pacSource(baseDir).optional(),
      interval: duration.optional(),
      user: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
      check: z
        .strictObject({
          url: z
            .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
            .optional(),
          tcp: z
            .string()
            .refine((text) => parseHostPort(text) !== undefined, 'expected host:port')
            .optional(),
          interval: duration.default(30_000),
          timeout: duration.default(5_000),
        })
        .optional(),
    })
    .superRefine((o, ctx) => {
      const kinds = [o.url, o.chain, o.fallback, o.pac].filter((v) => v !== undefined).length;
      if (kinds !== 1) {
        ctx.addIssue({
          code: 'custom',
          message: 'an outbound has exactly one of url, chain, fallback or pac',
        });
      }
      if (o.send_proxy_protocol !== undefined && (o.fallback || o.pac)) {
        ctx.addIssue({
          code: 'custom',
          path: ['send_proxy_protocol'],
          message: 'send_proxy_protocol applies to url and chain outbounds; set it on the members',
        });
      }
      for (const key of ['interval', 'user', 'password'] as const) {
        if (o[key] !== undefined && o.pac === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `${key} applies to pac outbounds only`,
          });
        }
      }
      if (o.password !== undefined && o.user === undefined) {
        ctx.addIssue({ code: 'custom', path: ['password'], message: 'password needs user' });
      }
      if (o.check && !o.fallback) {
        ctx.addIssue({
          code: 'custom',
          path: ['check'],
          message: 'check applies to fallback outbounds only',
        });
      }
      if (o.auth && !/^https?:/.test(o.url ?? '') && o.pac === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['auth'],
          message: 'auth applies to http://, https:// and pac outbounds only',
        });
      }
      if (o.auth?.domain !== undefined && /[\\@]/.test(o.user ?? userOf(o.url) ?? '')) {
        ctx.addIssue({
          code: 'custom',
          path: ['auth', 'domain'],
          message:
            "the URL's user names its domain already (DOMAIN\\user or user@domain): give it once",
        });
      }
      if (o.tls && !o.url?.startsWith('https:') && o.pac === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['tls'],
          message: 'tls applies to https:// and pac outbounds only',
        });
      }
    })
    .transform((o, ctx) => {
      const key = o.password_env !== undefined ? 'password_env' : 'password_file';
      if (o.password_env === undefined && o.password_file === undefined) return o;
      const url = o.url === undefined ? undefined : parseOutboundUrl(o.url).value;
      const problem =
        o.password_env !== undefined && o.password_file !== undefined
          ? 'give password_env or password_file, not both'
          : o.pac !== undefined
            ? o.user === undefined
              ? `${key} needs user`
              : o.password !== undefined
                ? `give password or ${key}, not both`
                : undefined
            : url === undefined
              ? `${key} applies to pac and url: outbounds only`
              : url.username === undefined
                ? `${key} needs a user in the URL (scheme://user@host:port)`
                : url.password !== undefined
                  ? `the URL has a password already: remove it, or remove ${key}`
                  : undefined;
      if (problem !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: problem });
        return z.NEVER;
      }
      const password = secretFrom(o, key, baseDir, ctx);
      return password === undefined ? z.NEVER : { ...o, password };
    });

const port = z
  .union([z.number(), z.string()], { error: 'expected a port (443) or a range ("8000-8999")' })
  .transform((value, ctx) => {
    if (typeof value === 'number') {
      if (Number.isInteger(value) && value >= 1 && value <= 65535) return value;
      ctx.addIssue({ code: 'custom', message: `bad port ${value} (use 1-65535)` });
      return z.NEVER;
    }
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(value.trim());
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    if (!m || from < 1 || to > 65535 || from > to) {
      ctx.addIssue({ code: 'custom', message: `bad port range "${value}" (use 8000-8999)` });
      return z.NEVER;
    }
    return { from, to };
  });

const regex = z.string().transform((text, ctx) => {
  try {
    return new RegExp(text, 'i');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `bad regex: ${(err as Error).message}` });
    return z.NEVER;
  }
});

const domain = z.string().transform((text, ctx) => {
  const host = parseHost(text);
  if (host?.kind !== 'domain') {
    ctx.addIssue({ code: 'custom', message: `bad domain "${text}"` });
    return z.NEVER;
  }
  return host.name;
});

/**
 * Reads and parses a domain list file. The loader's own reads it at once; a reload passes one
 * that builds the list in slices, so that sessions are served while it does.
 */
export type DomainListReader = (path: string) => DomainTable | Promise<DomainTable>;

function domainListFile(baseDir: string, read: DomainListReader) {
  return z.string().transform((file, ctx) => {
    const path = resolvePath(baseDir, file);
    const refuse = (err: unknown): never => {
      const reason =
        (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
      ctx.addIssue({
        code: 'custom',
        message: `cannot use domain list ${path}: ${reason}`,
      });
      return z.NEVER;
    };
    try {
      const domains = read(path);
      return domains instanceof Promise
        ? domains.then((table) => ({ file, domains: table }), refuse)
        : { file, domains };
    } catch (err) {
      return refuse(err);
    }
  });
}

function rule(baseDir: string, readList: DomainListReader) {
  return z
    .strictObject({
      domain: list(domain).optional(),
      domain_suffix: list(domain).optional(),
      domain_keyword: list(
        z
          .string()
          .min(1)
          .transform((s) => s.toLowerCase()),
      ).optional(),
      domain_regex: list(regex).optional(),
      domain_list: domainListFile(baseDir, readList).optional(),
      ip_cidr: list(cidr).optional(),
      resolve: z.boolean().default(false),
      port: list(port).optional(),
      source_cidr: list(cidr).optional(),
      inbound: list(name).optional(),
      user: list(z.string().min(1)).optional(),
      outbound: name,
    })
    .superRefine((r, ctx) => {
      if (r.resolve && !r.ip_cidr) {
        ctx.addIssue({
          code: 'custom',
          path: ['resolve'],
          message: 'resolve applies to rules with ip_cidr only',
        });
      }
    });
}

const denyItem = z.union([z.enum(['private', 'loopback']), cidr], {
  error: 'expected a CIDR, "private" or "loopback"',
});

const limits = z.strictObject({
  handshake_timeout: duration.default(10_000),
  connect_timeout: duration.default(10_000),
  idle_timeout: duration.default(300_000),
  udp_idle_timeout: duration.default(120_000),
  max_connections: z.number().int().min(1).default(10_000),
  shutdown_grace: duration.default(10_000),
  deny_destinations: z.array(denyItem).default([]),
  // Each inbound's rate (one bucket per inbound, shared by all its sessions), unless it has its own.
  rate: rate.optional(),
  // Live sessions of one user name, over every inbound; past it a new one is refused.
  max_sessions_per_user: z.number().int().min(1).optional(),
});

/** A user named on several inbounds has one rate: two entries that differ would be ambiguous. */
function userRatesAgree(inbounds: readonly InboundEntry[], ctx: z.core.$RefinementCtx): void {
  const seen = new Map<string, { rate: RateConfig; inbound: string }>();
  inbounds.forEach((i, at) => {
    i.auth?.users.forEach((u, index) => {
      if (u.rate === undefined) return;
      const first = seen.get(u.username);
      if (!first) {
        seen.set(u.username, { rate: u.rate, inbound: i.name });
      } else if (first.rate.up !== u.rate.up || first.rate.down !== u.rate.down) {
        ctx.addIssue({
          code: 'custom',
          path: [at, 'auth', 'users', index, 'rate'],
          message: `user "${u.username}" has another rate on inbound "${first.inbound}": a user's rate is shared by all its sessions, give it once or the same`,
        });
      }
    });
  });
}
type InboundEntry = z.output<ReturnType<typeof inbound>>;

export function configSchema(baseDir: string, readList: DomainListReader = readDomainList) {
  return z.strictObject({
    // Worker processes sharing every listening port (node:cluster); auto: one per core.
    workers: z
      .union([z.number().int().min(1).max(1024), z.literal('auto')], {
        error: 'expected a number of worker processes (1 or more) or "auto"',
      })
      .default(1),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
        access: z.boolean().default(true),
      })
      .prefault({}),
    admin: z
      .strictObject({
        listen: listenAddress,
        token: z.string().min(1, 'an empty token would protect nothing').optional(),
      })
      .optional(),
    limits: limits.prefault({}),
    inbounds: z.array(inbound(baseDir)).superRefine(userRatesAgree).default([]),
    outbounds: z.array(outbound(baseDir)).default([]),
    rules: z.array(rule(baseDir, readList)).default([]),
  });
}

export type Config = z.output<ReturnType<typeof configSchema>>;
export type InboundConfig = Config['inbounds'][number];
export type OutboundConfig = Config['outbounds'][number];
export type RuleConfig = Config['rules'][number];
export type Limits = Config['limits'];
export type UserConfig = NonNullable<InboundConfig['auth']>['users'][number];
export type InboundType = InboundConfig['type'];

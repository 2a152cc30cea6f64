// A PAC file's FindProxyForURL(url, host) (the Netscape PAC format), run in QuickJS compiled to
// WebAssembly: the script sees the ECMAScript built-ins and the PAC functions, and nothing of
// Node (no require, no process, no network, no files, no timers).
import { lookup } from 'node:dns';
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { sandbox as pacFunctions } from 'pac-resolver';
import { JSException, QuickJS, type JSValueHandle } from 'quickjs-wasi';
import type { Logger } from '../../log.js';
import { parseHost } from '../../target.js';

/** One run of the script (its top level, or one call) may take this long before it is cut off. */
export const RUN_LIMIT_MS = 500;
/** The script's heap: a PAC file of the largest size accepted needs a few times its size. */
export const MEMORY_LIMIT_BYTES = 64 * 1024 * 1024;
/** Names looked up for one answer: a script that asks for more is told they do not resolve. */
const MAX_NAMES = 16;
const LOOKUP_LIMIT_MS = 2_000;
/** How much of an alert() or an error reaches the log. */
const MAX_LOG_TEXT = 200;

/** Why a PAC file cannot be used, or why it gave no answer; the message is for logs. */
export class PacError extends Error {
  override readonly name = 'PacError';
}

export interface PacScript {
  /** FindProxyForURL(url, host)'s answer; rejects with PacError. */
  findProxy(url: string, host: string): Promise<string>;
  /** Frees the interpreter; later calls reject. */
  close(): void;
}

export interface PacScriptOptions {
  /** Where alert() writes (debug). */
  readonly log: Logger;
  /** Name resolution for dnsResolve, isResolvable and isInNet: an IPv4 address or undefined. */
  readonly resolve?: (name: string) => Promise<string | undefined>;
}

/**
 * The PAC functions that need no name resolution, from pac-resolver, called with the script's
 * arguments copied out of the sandbox. shExpMatch is not one of them: it builds a regular
 * expression from its argument, and a pattern that backtracks for ever must run in the sandbox,
 * where the run limit stops it.
 */
const PURE_FUNCTIONS = [
  'dateRange',
  'dnsDomainIs',
  'dnsDomainLevels',
  'isPlainHostName',
  'localHostOrDomainIs',
  'timeRange',
  'weekdayRange',
] as const;

/**
 * Defined in the sandbox before the script, which may redefine them. Names are resolved through
 * `__lookup`, which answers from what the host resolved before the run (see findProxy).
 */
const PRELUDE = String.raw`
function shExpMatch(str, shexp) {
  var pattern = String(shexp).replace(/[.+^\${}()|[\]\\]/g, '\\$&')
    .replace(/\?/g, '.').replace(/\*/g, '.*');
  return new RegExp('^' + pattern + '$').test(String(str));
}
function dnsResolve(host) { return __lookup(String(host)); }
function isResolvable(host) { return __lookup(String(host)) !== null; }
function convert_addr(ipchars) {
  var b = String(ipchars).split('.');
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}
function isInNet(host, pattern, mask) {
  var quad = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
  var ip = quad.test(host) ? host : dnsResolve(host);
  if (ip === null || !quad.test(pattern) || !quad.test(mask)) return false;
  var m = convert_addr(mask);
  return ((convert_addr(ip) & m) >>> 0) === ((convert_addr(pattern) & m) >>> 0);
}
`;

let wasm: Promise<Uint8Array> | undefined;

/** QuickJS's WebAssembly, read once per process (a sandbox is made once per PAC file load). */
function quickjsWasm(): Promise<Uint8Array> {
  wasm ??= readFile(createRequire(import.meta.url).resolve('quickjs-wasi/quickjs.wasm')).catch(
    (err: unknown) => {
      wasm = undefined;
      throw err;
    },
  );
  return wasm;
}

/** One call in progress: the names resolved for it, and those it asked for and did not have. */
interface Call {
  readonly names: Map<string, string | null>;
  readonly missing: Set<string>;
}

/**
 * Compiles `text` in a new sandbox and runs its top level. Rejects with PacError when it does
 * not compile, throws, runs too long, or defines no FindProxyForURL.
 */
export async function compilePac(text: string, options: PacScriptOptions): Promise<PacScript> {
  const resolve = options.resolve ?? lookupIpv4;
  const myIp = await localAddress();
  let deadline = Infinity;
  let interrupted = false;
  const vm = await QuickJS.create({
    wasm: await quickjsWasm(),
    memoryLimit: MEMORY_LIMIT_BYTES,
    interruptHandler: () => {
      if (Date.now() <= deadline) return false;
      interrupted = true;
      return true;
    },
  });
  let call: Call | undefined;

  /** Runs `body` synchronously under the run limit, freeing every handle it made. */
  const run = <T>(what: string, body: () => T): T => {
    deadline = Date.now() + RUN_LIMIT_MS;
    interrupted = false;
    try {
      return vm.withScope(body);
    } catch (err) {
      throw failure(what, err, interrupted);
    } finally {
      deadline = Infinity;
    }
  };

  let findProxyForUrl: JSValueHandle;
  try {
    const define = (name: string, fn: (...args: unknown[]) => unknown): void => {
      const handle = vm.newFunction(name, (...args) =>
        toHandle(vm, fn(...args.map((arg) => vm.dump(arg)))),
      );
      vm.setProp(vm.global, name, handle);
      handle.dispose();
    };
    for (const name of PURE_FUNCTIONS) {
      const fn = pacFunctions[name] as (...args: unknown[]) => unknown;
      define(name, fn);
    }
    define('myIpAddress', () => myIp);
    define('alert', (message) => {
      options.log.debug({ message: String(message).slice(0, MAX_LOG_TEXT) }, 'PAC alert');
    });
    define('__lookup', (name) => {
      const host = String(name);
      if (isIPv4(host)) return host;
      const known = call?.names.get(host);
      if (known !== undefined) return known;
      call?.missing.add(host);
      return null;
    });
    run('the PAC file', () => {
      vm.evalCode(PRELUDE, 'prelude.js');
      vm.evalCode(text, 'proxy.pac');
    });
    findProxyForUrl = vm.global.getProp('FindProxyForURL');
    if (findProxyForUrl.typeof !== 'function') {
      findProxyForUrl.dispose();
      throw new PacError('the PAC file defines no function FindProxyForURL');
    }
  } catch (err) {
    vm.dispose();
    throw err instanceof PacError ? err : failure('the PAC file', err, false);
  }
  let closed = false;

  /**
   * One synchronous call. A name the script resolves and the host has not is answered null
   * and noted; the caller resolves the names noted and calls again, so the script never waits
   * inside the sandbox (as Chrome runs PAC scripts).
   */
  const callOnce = (url: string, host: string, names: Call['names']) => {
    const current: Call = { names, missing: new Set() };
    call = current;
    try {
      const answer = run('FindProxyForURL', () =>
        vm.dump(
          vm.callFunction(findProxyForUrl, vm.undefined, vm.newString(url), vm.newString(host)),
        ),
      );
      return { answer, missing: current.missing };
    } finally {
      call = undefined;
    }
  };

  return {
    async findProxy(url, host) {
      const names = new Map<string, string | null>();
      for (;;) {
        if (closed) throw new PacError('the PAC file was replaced');
        const { answer, missing } = callOnce(url, host, names);
        const wanted = [...missing].slice(0, MAX_NAMES - names.size);
        if (wanted.length === 0) {
          if (typeof answer === 'string') return answer;
          throw new PacError(`FindProxyForURL returned ${typeof answer}, not a string`);
        }
        const found = await Promise.all(wanted.map((name) => resolveName(resolve, name)));
        wanted.forEach((name, i) => names.set(name, found[i] ?? null));
      }
    },
    close() {
      if (closed) return;
      closed = true;
      findProxyForUrl.dispose();
      vm.dispose();
    },
  };
}

function failure(what: string, err: unknown, interrupted: boolean): PacError {
  if (err instanceof PacError) return err;
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (err instanceof JSException) err.dispose();
  if (interrupted)
    return new PacError(`${what} ran longer than ${RUN_LIMIT_MS} ms and was stopped`);
  return new PacError(`${what} failed: ${message.slice(0, MAX_LOG_TEXT)}`);
}

function toHandle(vm: QuickJS, value: unknown): JSValueHandle {
  if (typeof value === 'boolean') return value ? vm.true : vm.false;
  if (typeof value === 'number') return vm.newNumber(value);
  if (typeof value === 'string') return vm.newString(value);
  return value === null ? vm.null : vm.undefined;
}

/** A name the script asked for: only plausible host names are looked up. */
async function resolveName(
  resolve: (name: string) => Promise<string | undefined>,
  name: string,
): Promise<string | null> {
  if (parseHost(name)?.kind !== 'domain') return null;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((done) => {
    timer = setTimeout(() => {
      done(undefined);
    }, LOOKUP_LIMIT_MS);
  });
  try {
    return (await Promise.race([resolve(name).catch(() => undefined), timeout])) ?? null;
  } finally {
    clearTimeout(timer);
  }
}

/** dnsResolve() answers IPv4, as browsers' PAC engines do. */
function lookupIpv4(name: string): Promise<string | undefined> {
  return new Promise((done) => {
    lookup(name, { family: 4 }, (err, address) => {
      done(err ? undefined : address);
    });
  });
}

/**
 * myIpAddress(): the IPv4 address this host would send from to reach the Internet (a UDP
 * socket is "connected", which sends nothing), else that of the first external interface,
 * else 127.0.0.1.
 */
function localAddress(): Promise<string> {
  const fallback = (): string => {
    for (const addresses of Object.values(networkInterfaces())) {
      const found = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
      if (found) return found.address;
    }
    return '127.0.0.1';
  };
  return new Promise((done) => {
    const socket = createSocket('udp4');
    const finish = (address: string): void => {
      socket.close();
      done(address);
    };
    socket.once('error', () => {
      finish(fallback());
    });
    socket.connect(53, '192.0.2.1', () => {
      const { address } = socket.address();
      finish(address === '0.0.0.0' ? fallback() : address);
    });
  });
}

import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import { BINARIES } from './peers.js';

/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: one browser per
 * proxy configuration, each with a fresh profile in its own temporary directory, in its own
 * process group, stopped by that group's id.
 */

const START_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
export const VIEWPORT = { width: 800, height: 600 } as const;

/** Quiet flags: no first-run pages, no calls home, no crash reporter, nothing in the way. */
const QUIET = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-sync',
  '--disable-breakpad',
  '--metrics-recording-only',
  '--password-store=basic',
  '--use-mock-keychain',
  `--window-size=${VIEWPORT.width},${VIEWPORT.height}`,
];

/**
 * `--ignore-certificate-errors-spki-list` entry for a PEM certificate: the base64 SHA-256 of its
 * SubjectPublicKeyInfo. Only that certificate is trusted; every other error still fails.
 */
export function spkiHash(certFile: string): string {
  const spki = new X509Certificate(readFileSync(certFile)).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  return createHash('sha256').update(spki).digest('base64');
}

export interface Chromium {
  /** Loads `url` in the page and waits for its load event; rejects with Chromium's net error. */
  navigate(url: string): Promise<void>;
  /** The value of `expression` evaluated in the page (a promise is awaited). */
  evaluate(expression: string): Promise<unknown>;
  /** The page as Chromium renders it, a PNG. */
  screenshot(): Promise<Buffer>;
  stop(): Promise<void>;
}

/** Starts Chromium with `args` (the proxy flags) on about:blank and attaches to its page. */
export async function startChromium(args: readonly string[]): Promise<Chromium> {
  const dir = mkdtempSync(join(tmpdir(), 'junction-chromium-'));
  const child = spawn(
    BINARIES.chromium,
    [...QUIET, `--user-data-dir=${dir}`, '--remote-debugging-port=0', ...args, 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => {
    if (pid === undefined) resolve();
    child.once('exit', () => resolve());
  });
  const signalGroup = (signal: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The whole group is gone.
    }
  };
  let socket: WebSocket | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= stopBrowser());
  let devtools: DevTools | undefined;
  const stopBrowser = async (): Promise<void> => {
    // Asked to close, the browser shuts its connections down; a signal leaves them reset.
    const asked = devtools?.send('Browser.close').catch(() => undefined);
    const term = setTimeout(() => signalGroup('SIGTERM'), asked ? STOP_TIMEOUT_MS : 0);
    const kill = setTimeout(() => signalGroup('SIGKILL'), 2 * STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(term);
    clearTimeout(kill);
    await asked;
    socket?.close();
    // Zygote and utility processes that outlived the browser.
    signalGroup('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const browserUrl = await devToolsUrl(child.stderr, exited);
    const pageUrl = await newPage(browserUrl);
    socket = new WebSocket(pageUrl);
    const attached = await attach(socket);
    devtools = attached;
    await attached.send('Page.enable');
    // The window's size less the browser's own bars: the page gets exactly the viewport.
    await attached.send('Emulation.setDeviceMetricsOverride', {
      ...VIEWPORT,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return {
      async navigate(url) {
        const loaded = attached.next('Page.loadEventFired');
        const result = (await attached.send('Page.navigate', { url })) as { errorText?: string };
        if (result.errorText) {
          loaded.catch(() => undefined);
          throw new Error(`${url}: ${result.errorText}`);
        }
        await loaded;
      },
      async evaluate(expression) {
        const result = (await attached.send('Runtime.evaluate', {
          expression,
          awaitPromise: true,
          returnByValue: true,
        })) as {
          result: { value?: unknown };
          exceptionDetails?: { text: string; exception?: { description?: string } };
        };
        if (result.exceptionDetails) {
          const details = result.exceptionDetails;
          throw new Error(details.exception?.description ?? details.text);
        }
        return result.result.value;
      },
      async screenshot() {
        const result = (await attached.send('Page.captureScreenshot', { format: 'png' })) as {
          data: string;
        };
        return Buffer.from(result.data, 'base64');
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The browser's DevTools endpoint, from the line Chromium prints when it listens. */
function devToolsUrl(stderr: NodeJS.ReadableStream, exited: Promise<void>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      reject(new Error(`chromium did not open DevTools in time:\n${text.slice(-2000)}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (match?.[1]) {
        clearTimeout(timer);
        stderr.off('data', onData);
        // Keep draining: a full pipe would block the browser.
        stderr.resume();
        resolve(match[1]);
      }
    };
    stderr.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`chromium exited before opening DevTools:\n${text.slice(-2000)}`));
    });
  });
}

/** Opens a new page target over the HTTP side of the DevTools endpoint; its WebSocket URL. */
async function newPage(browserUrl: string): Promise<string> {
  const { host } = new URL(browserUrl);
  const response = await fetch(`http://${host}/json/new?about:blank`, {
    method: 'PUT',
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`DevTools /json/new answered ${response.status}`);
  const target = (await response.json()) as { webSocketDebuggerUrl?: string };
  if (!target.webSocketDebuggerUrl) throw new Error('DevTools gave no page WebSocket');
  return target.webSocketDebuggerUrl;
}

interface DevTools {
  send(method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** The next event named `method`, within the command timeout. */
  next(method: string): Promise<unknown>;
}

/** The DevTools protocol over `socket`: numbered commands, each answered once, and events. */
async function attach(socket: WebSocket): Promise<DevTools> {
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error('DevTools WebSocket failed')), {
      once: true,
    });
  });
  let lastId = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, ((params: unknown) => void)[]>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number;
      method?: string;
      params?: unknown;
      result?: unknown;
      error?: { message: string };
    };
    if (message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) waiter?.reject(new Error(message.error.message));
      else waiter?.resolve(message.result);
    } else if (message.method) {
      const waiting = listeners.get(message.method) ?? [];
      listeners.delete(message.method);
      for (const listener of waiting) listener(message.params);
    }
  });
  socket.addEventListener('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('DevTools closed'));
    pending.clear();
  });
  const bounded = <T>(
    what: string,
    run: (resolve: (v: T) => void, reject: (e: Error) => void) => void,
  ) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), COMMAND_TIMEOUT_MS);
      run(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  return {
    send(method, params = {}) {
      const id = ++lastId;
      return bounded<unknown>(method, (resolve, reject) => {
        pending.set(id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params }));
      });
    },
    next(method) {
      return bounded<unknown>(method, (resolve) => {
        listeners.set(method, [...(listeners.get(method) ?? []), resolve]);
      });
    },
  };
}

/** Width and height from a PNG's IHDR chunk, or undefined if `data` is not a PNG. */
export function pngSize(data: Buffer): { width: number; height: number } | undefined {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (data.length < 24 || !data.subarray(0, 8).equals(signature)) return undefined;
  if (data.subarray(12, 16).toString('latin1') !== 'IHDR') return undefined;
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
}

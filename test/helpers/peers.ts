import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export { freePort };

/**
 * Real Debian proxies as test peers (research/peers.md): each runs in the foreground from its
 * own temporary directory, on a free port on 127.0.0.1, in its own process group, and is stopped
 * by that group's id. Each sends its outgoing connections from its own loopback address, so an
 * origin that records peer addresses shows which way a request went.
 */

/** The address each peer's outgoing connections come from. */
export const OUTGOING = {
  microsocks: '127.0.0.3',
  dante: '127.0.0.4',
  squid: '127.0.0.5',
  tinyproxy: '127.0.0.6',
} as const;

export const BINARIES = {
  squid: '/usr/sbin/squid',
  dante: '/usr/sbin/danted',
  microsocks: '/usr/bin/microsocks',
  tinyproxy: '/usr/bin/tinyproxy',
  privoxy: '/usr/sbin/privoxy',
  curl: '/usr/bin/curl',
  openssl: '/usr/bin/openssl',
  python3: '/usr/bin/python3',
  git: '/usr/bin/git',
  'git-http-backend': '/usr/lib/git-core/git-http-backend',
  'apt-get': '/usr/bin/apt-get',
  'dpkg-deb': '/usr/bin/dpkg-deb',
  sshd: '/usr/sbin/sshd',
  ssh: '/usr/bin/ssh',
  'ssh-keygen': '/usr/bin/ssh-keygen',
  nc: '/usr/bin/nc.openbsd',
  socat: '/usr/bin/socat',
  haproxy: '/usr/sbin/haproxy',
  chromium: '/usr/bin/chromium',
  // krb5-kdc, krb5-admin-server (kadmin.local), krb5-user; squid's own Kerberos helper.
  krb5kdc: '/usr/sbin/krb5kdc',
  kdb5_util: '/usr/sbin/kdb5_util',
  'kadmin.local': '/usr/sbin/kadmin.local',
  kinit: '/usr/bin/kinit',
  negotiate_kerberos_auth: '/usr/lib/squid/negotiate_kerberos_auth',
} as const;

/** Modules a program needs beyond its binary (Debian's python3-* packages). */
const MODULES = {
  'python3-requests': '/usr/lib/python3/dist-packages/requests/__init__.py',
  'python3-socks': '/usr/lib/python3/dist-packages/socks.py',
} as const;

export type PeerName = keyof typeof BINARIES | keyof typeof MODULES;

function installedAt(name: PeerName): { path: string; mode: number } {
  return name in MODULES
    ? { path: MODULES[name as keyof typeof MODULES], mode: constants.R_OK }
    : { path: BINARIES[name as keyof typeof BINARIES], mode: constants.X_OK };
}

const START_TIMEOUT_MS = 15_000;
/** Under CI (CI=true, as CI services set it) a peer that cannot run is a failure, not a skip. */
const UNDER_CI = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());
const STOP_TIMEOUT_MS = 5_000;

/**
 * For `test(name, { skip: unavailable('squid') }, ...)`: false when the peer can run here, a
 * visible reason when it cannot. Under CI a missing peer is a failure, never a skip.
 */
export function unavailable(...names: PeerName[]): string | false {
  for (const name of names) {
    const { path, mode } = installedAt(name);
    try {
      accessSync(path, mode);
    } catch {
      const reason = `${name} not installed (${path})`;
      if (UNDER_CI) throw new Error(`${reason}: CI must install it (.ci/run)`);
      return reason;
    }
  }
  return false;
}

/** dante's username method checks system accounts: one is created for the tests, as root only. */
export const SYSTEM_USER = { name: 'junctiontest', password: 'Jt-dante-pw-7' } as const;

export function systemUserUnavailable(): string | false {
  const missing = unavailable('dante');
  if (missing) return missing;
  try {
    execFileSync('id', [SYSTEM_USER.name], { stdio: 'ignore' });
    setSystemPassword();
    return false;
  } catch {
    // Not there yet.
  }
  if (process.getuid?.() !== 0) {
    const reason = `dante username auth needs the system account ${SYSTEM_USER.name}, and creating it needs root`;
    if (UNDER_CI) throw new Error(reason);
    return reason;
  }
  execFileSync('useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', SYSTEM_USER.name], {
    stdio: 'ignore',
  });
  setSystemPassword();
  return false;
}

function setSystemPassword(): void {
  if (process.getuid?.() !== 0) return;
  execFileSync('chpasswd', [], { input: `${SYSTEM_USER.name}:${SYSTEM_USER.password}\n` });
}

export interface Peer {
  readonly name: string;
  readonly port: number;
  readonly dir: string;
  /** A file the peer wrote in its directory (its logs), '' if it does not exist yet. */
  read(file: string): string;
  stop(): Promise<void>;
}

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `junction-${name}-`));
  // Squid and dante drop root for unprivileged users that must still write their logs here.
  chmodSync(dir, 0o777);
  return dir;
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects if the process exits first. */
async function waitForPort(
  child: ChildProcess,
  port: number,
  what: string,
  dir: string,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const how = String(child.exitCode ?? child.signalCode);
      throw new Error(`${what} exited (${how}) before listening on ${port}; see ${dir}`);
    }
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        resolve(false);
      });
    });
    if (accepted) return;
    if (Date.now() > deadline)
      throw new Error(`${what} did not listen on ${port} in time; see ${dir}`);
    // Polling a port that is not open yet: the peer gives no other sign of readiness.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function startPeer(
  name: string,
  binary: string,
  args: readonly string[],
  ports: readonly [number, ...number[]],
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Peer> {
  const child = spawn(binary, args, {
    cwd: dir,
    env,
    detached: true, // its own process group: helpers (squid's auth, dante's children) go with it
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  child.on('error', (err) => {
    stderr += `\n${err.message}`;
  });
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
  const stop = async (): Promise<void> => {
    signalGroup('SIGTERM');
    const timer = setTimeout(() => signalGroup('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    // Helpers that outlived the leader (squid's auth helper, dante's children).
    signalGroup('SIGKILL');
  };
  try {
    for (const port of ports) await waitForPort(child, port, name, dir);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${stderr}`, { cause: err });
  }
  return {
    name,
    port: ports[0],
    dir,
    read: (file) => {
      try {
        return readFileSync(join(dir, file), 'utf8');
      } catch {
        return '';
      }
    },
    stop: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const DIGEST_REALM = 'squid-digest-test';

export interface SquidOptions {
  /** Basic auth through basic_ncsa_auth with this one user. */
  readonly user?: { readonly name: string; readonly password: string };
  /**
   * Digest auth through digest_file_auth with this one user (offered before Basic when both are
   * given). The password file holds `user:realm:HA1` (`-c`), never the password.
   */
  readonly digest?: { readonly name: string; readonly password: string };
  /**
   * NTLM through ntlm_fake_auth, which takes any user and password that complete the handshake
   * (offered first when given with others).
   */
  readonly ntlm?: boolean;
  /**
   * Negotiate through negotiate_kerberos_auth, accepting tickets for `principal` (in `keytab`)
   * of the realm that `krb5Config` describes (offered first when given with others).
   */
  readonly negotiate?: {
    readonly keytab: string;
    readonly principal: string;
    readonly krb5Config: string;
  };
  /** Also an https_port with this certificate (PEM files). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Target ports squid refuses by its own rules (403). */
  readonly denyPorts?: readonly number[];
}

export interface Squid extends Peer {
  /** The https_port, when `tls` was given. */
  readonly tlsPort: number | undefined;
  /** Lines of access.log: "time elapsed client code/status bytes METHOD URL user ...". */
  accessLog(): string[];
  /** Lines of connections.log: "client-port METHOD URL user status". */
  connectionLog(): string[];
  /**
   * Resolves with the access.log lines containing `text` once there are at least `count` of
   * them. Squid writes a line when a transaction ends, which for a tunnel is after both sides
   * closed: later than the client sees its last byte.
   */
  waitForAccess(text: string, count?: number, timeoutMs?: number): Promise<string[]>;
}

export async function startSquid(options: SquidOptions = {}): Promise<Squid> {
  const dir = tempDir('squid');
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  const lines = [
    `http_port 127.0.0.1:${port}`,
    ...(options.tls && tlsPort !== undefined
      ? [`https_port 127.0.0.1:${tlsPort} tls-cert=${options.tls.cert} tls-key=${options.tls.key}`]
      : []),
    'pid_filename none',
    `coredump_dir ${dir}`,
    `cache_log ${dir}/cache.log`,
    `access_log stdio:${dir}/access.log`,
    // The client's port tells which requests came on one connection.
    'logformat connections %>p %rm %ru %un %>Hs',
    `access_log stdio:${dir}/connections.log connections`,
    'buffered_logs off',
    'strip_query_terms off',
    'logfile_rotate 0',
    'cache deny all',
    'cache_mem 8 MB',
    'cache_store_log none',
    'shutdown_lifetime 0 seconds',
    'pinger_enable off',
    // Squid 5 (Debian 12) drops an upload that fills this buffer faster than the origin drains
    // it, reading "no room" as EOF (squid bug 5405, fixed in 6.x); uploads in the tests stay
    // well below this.
    'client_request_buffer_max_size 64 MB',
    'http_upgrade_request_protocols websocket allow all',
    `tcp_outgoing_address ${OUTGOING.squid}`,
    'forwarded_for delete',
    'via off',
    'acl lo src 127.0.0.0/8',
  ];
  if (process.getuid?.() === 0) lines.push('cache_effective_user proxy');
  if (options.denyPorts && options.denyPorts.length > 0) {
    lines.push(
      `acl denied_ports port ${options.denyPorts.join(' ')}`,
      'http_access deny denied_ports',
    );
  }
  if (options.negotiate) {
    // Squid's helper runs as squid's user: it gets its own readable copy of the keytab.
    const keytab = join(dir, 'squid.keytab');
    copyFileSync(options.negotiate.keytab, keytab);
    chmodSync(keytab, 0o644);
    lines.push(
      `auth_param negotiate program ${BINARIES.negotiate_kerberos_auth} -k ${keytab} -s ${options.negotiate.principal} -t none`,
      'auth_param negotiate children 2',
      'auth_param negotiate keep_alive on',
    );
  }
  if (options.ntlm) {
    lines.push(
      'auth_param ntlm program /usr/lib/squid/ntlm_fake_auth',
      'auth_param ntlm children 2',
    );
  }
  if (options.digest) {
    const { name, password } = options.digest;
    const ha1 = createHash('md5').update(`${name}:${DIGEST_REALM}:${password}`).digest('hex');
    writeFileSync(join(dir, 'digest-passwd'), `${name}:${DIGEST_REALM}:${ha1}\n`, { mode: 0o644 });
    lines.push(
      `auth_param digest program /usr/lib/squid/digest_file_auth -c ${dir}/digest-passwd`,
      `auth_param digest realm ${DIGEST_REALM}`,
    );
  }
  if (options.user) {
    const hash = execFileSync(BINARIES.openssl, ['passwd', '-apr1', options.user.password], {
      encoding: 'utf8',
    }).trim();
    writeFileSync(join(dir, 'passwd'), `${options.user.name}:${hash}\n`, { mode: 0o644 });
    lines.push(
      `auth_param basic program /usr/lib/squid/basic_ncsa_auth ${dir}/passwd`,
      'auth_param basic realm squid-test',
    );
  }
  if (options.user || options.digest || options.ntlm || options.negotiate) {
    lines.push('acl authed proxy_auth REQUIRED', 'http_access deny !authed');
  }
  lines.push('http_access allow lo', 'http_access deny all');
  writeFileSync(join(dir, 'squid.conf'), `${lines.join('\n')}\n`);
  const ports: [number, ...number[]] = tlsPort === undefined ? [port] : [port, tlsPort];
  const peer = await startPeer(
    'squid',
    BINARIES.squid,
    ['-N', '-f', join(dir, 'squid.conf')],
    ports,
    dir,
    options.negotiate ? { ...process.env, KRB5_CONFIG: options.negotiate.krb5Config } : undefined,
  );
  const logLines = (file: string): string[] =>
    peer
      .read(file)
      .split('\n')
      .filter((line) => line.trim() !== '');
  const accessLog = (): string[] => logLines('access.log');
  return {
    ...peer,
    tlsPort,
    accessLog,
    connectionLog: () => logLines('connections.log'),
    async waitForAccess(text, count = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const lines = accessLog().filter((line) => line.includes(text));
        if (lines.length >= count) return lines;
        if (Date.now() > deadline) {
          throw new Error(
            `squid logged ${lines.length} of ${count} "${text}":\n${accessLog().join('\n')}`,
          );
        }
        // A log file gives no event to wait on: it is polled, for a bounded time.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}

export const KERBEROS_REALM = 'JUNCTION.TEST';

export interface Kdc extends Peer {
  /** A krb5.conf naming this KDC for KERBEROS_REALM (KRB5_CONFIG for clients and services). */
  readonly krb5Config: string;
  /** Adds `name` (`alice`, `HTTP/localhost`) with a random key; the path of its keytab. */
  addPrincipal(name: string): string;
}

/**
 * An MIT KDC for a throwaway realm, on a free loopback port (UDP and TCP), its database and
 * stash in its own directory. Host names are taken as given (no DNS canonicalisation): the
 * service principal of `localhost` is HTTP/localhost.
 */
export async function startKdc(): Promise<Kdc> {
  const dir = tempDir('kdc');
  const port = await freePort();
  const krb5Config = join(dir, 'krb5.conf');
  const kdcConfig = join(dir, 'kdc.conf');
  writeFileSync(
    krb5Config,
    [
      '[libdefaults]',
      `  default_realm = ${KERBEROS_REALM}`,
      '  dns_lookup_realm = false',
      '  dns_lookup_kdc = false',
      '  rdns = false',
      '  dns_canonicalize_hostname = false',
      '[realms]',
      `  ${KERBEROS_REALM} = {`,
      `    kdc = 127.0.0.1:${port}`,
      '  }',
      '[domain_realm]',
      `  localhost = ${KERBEROS_REALM}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  writeFileSync(
    kdcConfig,
    [
      '[kdcdefaults]',
      `  kdc_listen = 127.0.0.1:${port}`,
      `  kdc_tcp_listen = 127.0.0.1:${port}`,
      '[realms]',
      `  ${KERBEROS_REALM} = {`,
      `    database_name = ${dir}/principal`,
      `    key_stash_file = ${dir}/stash`,
      `    acl_file = ${dir}/kadm5.acl`,
      '  }',
      '[logging]',
      `  kdc = FILE:${dir}/kdc.log`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, KRB5_CONFIG: krb5Config, KRB5_KDC_PROFILE: kdcConfig };
  const run = (binary: string, args: readonly string[]): void => {
    execFileSync(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  };
  run(BINARIES.kdb5_util, ['-r', KERBEROS_REALM, 'create', '-s', '-P', 'Kdc-master-pw-5']);
  const peer = await startPeer('krb5kdc', BINARIES.krb5kdc, ['-n'], [port], dir, env);
  return {
    ...peer,
    krb5Config,
    addPrincipal(name) {
      const keytab = join(dir, `${name.replace(/\W/g, '_')}.keytab`);
      run(BINARIES['kadmin.local'], ['-r', KERBEROS_REALM, '-q', `addprinc -randkey ${name}`]);
      run(BINARIES['kadmin.local'], ['-r', KERBEROS_REALM, '-q', `ktadd -k ${keytab} ${name}`]);
      return keytab;
    },
  };
}

export interface DanteOptions {
  /** socksmethod username, checked against the system account SYSTEM_USER. */
  readonly auth?: boolean;
}

export async function startDante(options: DanteOptions = {}): Promise<Peer> {
  const dir = tempDir('dante');
  const port = await freePort();
  const root = process.getuid?.() === 0;
  const conf = [
    `logoutput: ${dir}/danted.log`,
    `internal: 127.0.0.1 port = ${port}`,
    `external: ${OUTGOING.dante}`,
    'clientmethod: none',
    `socksmethod: ${options.auth ? 'username' : 'none'}`,
    ...(root ? ['user.privileged: root', 'user.unprivileged: nobody'] : []),
    'timeout.negotiate: 30',
    'timeout.io: 0',
    'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    'socks pass {',
    '  from: 127.0.0.0/8 to: 0.0.0.0/0',
    '  command: connect udpassociate',
    '  log: connect error',
    '}',
    'socks pass {',
    '  from: 0.0.0.0/0 to: 127.0.0.0/8',
    '  command: udpreply',
    '}',
  ];
  writeFileSync(join(dir, 'danted.conf'), `${conf.join('\n')}\n`);
  return startPeer(
    'dante',
    BINARIES.dante,
    ['-f', join(dir, 'danted.conf'), '-p', join(dir, 'danted.pid')],
    [port],
    dir,
  );
}

export interface MicrosocksOptions {
  readonly user?: { readonly name: string; readonly password: string };
}

export async function startMicrosocks(options: MicrosocksOptions = {}): Promise<Peer> {
  const dir = tempDir('microsocks');
  const port = await freePort();
  const args = ['-i', '127.0.0.1', '-p', String(port), '-b', OUTGOING.microsocks];
  if (options.user) args.push('-u', options.user.name, '-P', options.user.password);
  return startPeer('microsocks', BINARIES.microsocks, args, [port], dir);
}

export interface TinyproxyOptions {
  readonly user?: { readonly name: string; readonly password: string };
}

export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Peer> {
  const dir = tempDir('tinyproxy');
  const port = await freePort();
  const conf = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    `Bind ${OUTGOING.tinyproxy}`,
    `PidFile "${dir}/tp.pid"`,
    'Allow 127.0.0.1',
    'Timeout 600',
    'LogLevel Info',
    `LogFile "${dir}/tp.log"`,
    'DisableViaHeader Yes',
    ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : []),
    ...(options.user ? [`BasicAuth ${options.user.name} ${options.user.password}`] : []),
  ];
  writeFileSync(join(dir, 'tinyproxy.conf'), `${conf.join('\n')}\n`);
  return startPeer(
    'tinyproxy',
    BINARIES.tinyproxy,
    ['-d', '-c', join(dir, 'tinyproxy.conf')],
    [port],
    dir,
  );
}

/**
 * Privoxy in the foreground as a plain forwarding proxy: no filtering, CONNECT allowed to every
 * port, and a common-log-format line per request in privoxy.log, showing what it was asked
 * (`"CONNECT host:port HTTP/1.1" 200` or the absolute-form URL). It has no setting for the
 * address its outgoing connections come from: its log is the proof of the path.
 */
export async function startPrivoxy(): Promise<Peer> {
  const dir = tempDir('privoxy');
  const port = await freePort();
  writeFileSync(join(dir, 'forward.action'), '{ +limit-connect{-} }\n/\n');
  const conf = [
    `confdir ${dir}`,
    'templdir /etc/privoxy/templates',
    'actionsfile forward.action',
    `listen-address 127.0.0.1:${port}`,
    // 512: one common-log-format line per request; 8192: errors.
    'debug 512',
    'debug 8192',
    'enable-remote-toggle 0',
    'enable-edit-actions 0',
    'enable-remote-http-toggle 0',
    'accept-intercepted-requests 0',
    'forwarded-connect-retries 0',
    'keep-alive-timeout 5',
    'socket-timeout 30',
  ];
  writeFileSync(join(dir, 'config'), `${conf.join('\n')}\n`);
  // In the foreground privoxy logs to stderr only: the shell sends that to the log file.
  return startPeer(
    'privoxy',
    '/bin/sh',
    [
      '-c',
      'exec "$0" --no-daemon "$1" 2>"$2"',
      BINARIES.privoxy,
      join(dir, 'config'),
      join(dir, 'privoxy.log'),
    ],
    [port],
    dir,
  );
}

export interface HaproxyServer {
  readonly name: string;
  /** On 127.0.0.1. */
  readonly port: number;
}

export interface Haproxy extends Peer {
  /** Each backend server's status ("UP", "DOWN", "MAINT"…), by name, from the stats socket. */
  serverStatus(): Promise<ReadonlyMap<string, string>>;
  /** One command on the stats socket (`set server junctions/a state drain`); its answer. */
  command(line: string): Promise<string>;
}

/**
 * HAProxy in the foreground in TCP mode: one frontend on 127.0.0.1 balancing over `servers`,
 * each sent a PROXY v2 header (`send-proxy-v2`) and checked over TCP every 200 ms. A connection
 * a server refuses is retried on another one (`option redispatch 1`), as for a server that
 * stops listening before its checks have marked it down.
 */
export async function startHaproxy(servers: readonly HaproxyServer[]): Promise<Haproxy> {
  const dir = tempDir('haproxy');
  const port = await freePort();
  const stats = join(dir, 'stats.sock');
  const conf = [
    'global',
    `  stats socket ${stats} mode 600 level admin`,
    '  maxconn 256',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  retries 3',
    '  option redispatch 1',
    'frontend front',
    `  bind 127.0.0.1:${port}`,
    '  default_backend junctions',
    'backend junctions',
    '  balance roundrobin',
    ...servers.map(
      (server) =>
        `  server ${server.name} 127.0.0.1:${server.port} send-proxy-v2 check inter 200 fall 1 rise 1`,
    ),
  ];
  writeFileSync(join(dir, 'haproxy.cfg'), `${conf.join('\n')}\n`);
  const peer = await startPeer(
    'haproxy',
    BINARIES.haproxy,
    ['-db', '-f', join(dir, 'haproxy.cfg')],
    [port],
    dir,
  );
  const command = (line: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(stats);
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.once('error', reject);
      socket.once('end', () => resolve(text));
      socket.end(`${line}\n`);
    });
  return {
    ...peer,
    command,
    async serverStatus() {
      const csv = await command('show stat');
      // "# pxname,svname,…,status,…": one line per proxy and server.
      const [head = '', ...rows] = csv.split('\n');
      const columns = head.replace(/^# /, '').split(',');
      const name = columns.indexOf('svname');
      const status = columns.indexOf('status');
      const states = new Map<string, string>();
      for (const row of rows) {
        const fields = row.split(',');
        if (fields[0] === 'junctions') states.set(fields[name] ?? '', fields[status] ?? '');
      }
      return states;
    },
  };
}

export interface Sshd extends Peer {
  /** The known_hosts line for its host key, under the alias `sshd-test`. */
  readonly knownHosts: string;
}

/**
 * An OpenSSH server in the foreground on 127.0.0.1, with its own configuration and host key in
 * its directory, accepting only `authorizedKey` (for whichever user runs the tests).
 */
export async function startSshd(authorizedKey: string): Promise<Sshd> {
  const dir = tempDir('sshd');
  const port = await freePort();
  // As root, sshd chroots its unprivileged child into this directory (systemd's unit creates it).
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_key');
  execFileSync(BINARIES['ssh-keygen'], ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey], {
    stdio: 'ignore',
  });
  writeFileSync(join(dir, 'authorized_keys'), authorizedKey, { mode: 0o600 });
  const conf = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `AuthorizedKeysFile ${dir}/authorized_keys`,
    `PidFile ${dir}/sshd.pid`,
    'StrictModes no',
    'UsePAM no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'LogLevel VERBOSE',
  ];
  writeFileSync(join(dir, 'sshd_config'), `${conf.join('\n')}\n`);
  const peer = await startPeer(
    'sshd',
    BINARIES.sshd,
    ['-D', '-e', '-f', join(dir, 'sshd_config')],
    [port],
    dir,
  );
  const publicKey = readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  return { ...peer, knownHosts: `sshd-test ${publicKey}\n` };
}

/** A throwaway self-signed certificate for 127.0.0.1 and localhost, in `dir`. */
export function selfSignedCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    BINARIES.openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  chmodSync(cert, 0o644);
  chmodSync(key, 0o644);
  return { cert, key };
}

import type { AddressInfo, Socket } from 'node:net';
import type { Authenticator } from '../auth.js';
import type { InboundConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Runtime } from '../session.js';

export interface Inbound {
  readonly name: string;
  listen(): Promise<AddressInfo>;
  /**
   * Stops accepting and closes every connection that has no session in progress: those still in
   * their handshake, and kept-alive HTTP connections between requests. Behind a load balancer
   * (`proxy_protocol`), a connection in its handshake may finish it within the deadline instead.
   */
  close(): Promise<void>;
  /** Resolves once no client connection is left. */
  drained(): Promise<void>;
  /** Destroys every live client connection with the given reason. */
  closeConnections(reason: Error): void;
  readonly activeConnections: number;
}

/** What a protocol handler gets for one accepted client connection. */
export interface Accepted {
  readonly socket: Socket;
  readonly source: { readonly ip: string; readonly port: number };
  /**
   * Whether the source was in `allow` when the connection was accepted. Decided once, before the
   * protocol's first step: a client outside it is refused in its protocol without any of its
   * credentials being checked.
   */
  readonly allowed: boolean;
  /** Bound to the inbound and the client address. */
  readonly log: Logger;
  /** The request is parsed: the handshake deadline, armed at accept, stops. Later calls do nothing. */
  handshakeDone(): void;
  /**
   * How the protocol answers a client whose handshake deadline passes (HTTP: 408). The answer
   * writes its last word and ends the socket; the listener destroys it once that is flushed.
   * Without one, the socket is destroyed at the deadline.
   */
  onHandshakeTimeout(answer: () => void): void;
}

/** Shared by every connection of one inbound. */
export interface ProtocolEnv {
  /**
   * The inbound's entry in the current configuration: a reload replaces it for new connections
   * and sessions (its name, type and listen address stay as they were at start).
   */
  readonly config: InboundConfig;
  /** Its users in the current configuration; undefined when it has no `auth`. */
  readonly auth: Authenticator | undefined;
  /** Whether a client address is in the current `allow` list (everyone when there is none). */
  allows(ip: string): boolean;
  /** Whether a peer is in the current `proxy_protocol_from` (loopback when there is none). */
  trustsProxyHeaderFrom(ip: string): boolean;
  readonly log: Logger;
  /** The configuration generation for a session starting now. */
  runtime(): Runtime;
  /** A new session id, unique in this process. */
  nextId(): string;
}

/** Speaks one protocol on an accepted connection; owns the socket until it closes. */
export interface ProtocolHandler {
  handle(accepted: Accepted): void;
  /** The inbound stops: close what is idle, and end the rest once their sessions are over. */
  close?(): void;
}

export type ProtocolFactory = (env: ProtocolEnv) => ProtocolHandler;

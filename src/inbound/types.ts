import type { AddressInfo, Socket } from 'node:net';
import type { Authenticator } from '../auth.js';
import type { InboundConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Runtime } from '../session.js';

export interface Inbound {
  readonly name: string;
  listen(): Promise<AddressInfo>;
  /** Stops accepting. Live connections are ended by `closeConnections`. */
  close(): Promise<void>;
  /** Destroys every live client connection with the given reason. */
  closeConnections(reason: Error): void;
  readonly activeConnections: number;
}

/** What a protocol handler gets for one accepted client connection. */
export interface Accepted {
  readonly socket: Socket;
  readonly source: { readonly ip: string; readonly port: number };
  /** False when the source is not in `allow`: the handler answers "not allowed" in its protocol. */
  readonly allowed: boolean;
  /** Bound to the inbound and the client address. */
  readonly log: Logger;
}

/** Shared by every connection of one inbound. */
export interface ProtocolEnv {
  readonly config: InboundConfig;
  readonly auth: Authenticator | undefined;
  readonly log: Logger;
  /** The configuration generation for a session starting now. */
  runtime(): Runtime;
  /** A new session id, unique in this process. */
  nextId(): string;
}

/** Speaks one protocol on an accepted connection; owns the socket until it closes. */
export interface ProtocolHandler {
  handle(accepted: Accepted): void;
  close?(): void;
}

export type ProtocolFactory = (env: ProtocolEnv) => ProtocolHandler;

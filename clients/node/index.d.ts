// Type declarations for the `wonderq` Node.js client. Durations are seconds, except
// connectTimeout and reconnectTimeout (milliseconds, as Node's socket timeouts).
// Every options object is checked at run time too: an option not declared here
// throws a TypeError naming it.

import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ConnectOptions {
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 7878. */
  port?: number;
  /** Sent as `{"op":"AUTH","token":...}` before `connect()` resolves. */
  token?: string;
  /** `true`, or options for `tls.connect` (e.g. `{ ca }`). */
  tls?: boolean | TlsConnectionOptions;
  /** Milliseconds; default 10000. */
  connectTimeout?: number;
  /** Cap on one reply line in bytes; default 64 MiB. */
  maxLineBytes?: number;
  /**
   * Dial again when the connection is lost (and retry a refused first connect):
   * the next call does, with backoff (50 ms doubling to 2 s). The call in flight
   * still rejects with `ConnectionLost`. Default false; `consume` and
   * `runWorker` reconnect whatever this says (their own `reconnect`).
   */
  reconnect?: boolean;
  /** Milliseconds one reconnect keeps trying before it gives up (`ConnectFailed`); default 30000. */
  reconnectTimeout?: number;
}

export interface PutOptions {
  /** Messages with the same key are delivered one at a time, in order. */
  key?: string;
  /** Seconds before the message can be delivered. */
  delay?: number;
  /** Lower is delivered first; default 0. */
  priority?: number;
  /** Deliveries before the message goes to `<queue>.dead`; server default 5. */
  maxAttempts?: number;
}

export interface PutItem extends PutOptions {
  body: Json;
}

export interface GetOptions {
  /** At most this many messages; default 1. */
  max?: number;
  /** Lease in seconds; default the server's (30). */
  lease?: number;
  /** Seconds to wait for a message if none is ready; default 0. */
  wait?: number;
  /**
   * Cancels a waiting GET on the server (`CANCEL`); `get()` then rejects with
   * the signal's reason, after releasing what the GET got just before.
   */
  signal?: AbortSignal;
}

export type MessageState = "ready" | "delayed" | "leased" | "dead" | "acked";

/** `INFO`'s view of a message. An acked message has only id, queue and state. */
export interface MessageInfo {
  id: string;
  queue: string;
  state: MessageState;
  attempts?: number;
  max_attempts?: number;
  priority?: number;
  key?: string;
  body?: Json;
  age?: number;
  lease_left?: number;
  delay_left?: number;
  [field: string]: unknown;
}

export interface ServerStats {
  version: string;
  uptime: number;
  connections: number;
  queues: number;
  messages: number;
  leased: number;
  bytes: number;
  [field: string]: unknown;
}

export interface QueueStats {
  ready: number;
  delayed: number;
  leased: number;
  dead: number;
  waiting_consumers: number;
  bytes: number;
  oldest_ready_age: number | null;
  put: number;
  acked: number;
  nacked: number;
  expired: number;
  released_on_disconnect: number;
  dead_lettered: number;
  redriven: number;
  purged: number;
  [field: string]: unknown;
}

export interface Stats {
  server: ServerStats;
  queues: Record<string, QueueStats>;
}

export interface AckManyResult {
  acked: number;
  notLeased: string[];
  notFound: string[];
}

/** A leased message. */
export class Message<Body = Json> {
  private constructor();
  /** Opaque: assume no length, alphabet or order. */
  readonly id: string;
  readonly queue: string;
  readonly body: Body;
  readonly key: string | undefined;
  /** Deliveries so far, this one included. */
  readonly attempts: number;
  /** True once `ack()` or `nack()` was called. */
  readonly settled: boolean;
  ack(): Promise<void>;
  /** Resolves `{dead: true}` if the message went to `<queue>.dead`. */
  nack(options?: { delay?: number }): Promise<{ dead: boolean }>;
  touch(options?: { lease?: number }): Promise<void>;
  toJSON(): { id: string; queue: string; body: Body; key?: string; attempts: number };
}

export interface ConsumeOptions {
  /** Messages held at once (leased, not yet acked or nacked); default 1. */
  concurrency?: number;
  /** Default 30. */
  lease?: number;
  /** Seconds one GET waits on the server; default 20. */
  wait?: number;
  /** TOUCH held messages at half their lease until settled; default false. */
  extendLeases?: boolean;
  signal?: AbortSignal;
  /** A lease could not be extended. Default: `process.emitWarning`. */
  onError?: (error: Error, message: Message) => void;
  /**
   * Dial again when the connection is lost (default true): the leases it held are
   * gone with it, and the broker delivers those messages again.
   */
  reconnect?: boolean;
}

export class Consumer<Body = Json> implements AsyncIterable<Message<Body>> {
  private constructor();
  /** Messages leased and not yet acked or nacked. */
  readonly heldCount: number;
  /**
   * Stops, cancels the GET waiting on the server, and releases the messages
   * not handed out yet (with what that GET got just before); resolves when
   * the releases are answered.
   */
  stop(): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterator<Message<Body>>;
}

export type Handler<Body = Json> = (message: Message<Body>, context: { signal: AbortSignal }) => unknown;

export interface WorkerOptions {
  /** Handlers running at once; default 1. */
  concurrency?: number;
  /** Default 30; extended while a handler runs. */
  lease?: number;
  /** Seconds one GET waits on the server; default 20. */
  wait?: number;
  /** Stops the worker; `runWorker` resolves once running handlers are done. */
  signal?: AbortSignal;
  /** NACK delay in seconds after failed attempt number `attempts`. */
  backoff?: (attempts: number) => number;
  /** A handler failed, or an ack, nack or touch did. Default: `process.emitWarning`. */
  onError?: (error: Error, message: Message) => void;
  /**
   * Dial again when the connection is lost (default true): the leases it held are
   * gone with it, and the broker delivers those messages again.
   */
  reconnect?: boolean;
}

export class Client {
  private constructor();
  /** False once `close()` was called or the connection was lost. */
  readonly isOpen: boolean;
  /** Resolves (never rejects) when the connection has closed. */
  readonly closed: Promise<void>;
  /** Replies that matched no call (dropped). */
  readonly unmatchedReplies: number;

  put(queue: string, body: Json, options?: PutOptions): Promise<string>;
  putMany(queue: string, items: PutItem[]): Promise<string[]>;
  get<Body = Json>(queue: string, options?: GetOptions): Promise<Message<Body>[]>;
  ack(id: string): Promise<void>;
  ackMany(ids: string[]): Promise<AckManyResult>;
  nack(id: string, options?: { delay?: number }): Promise<{ dead: boolean }>;
  touch(id: string, options?: { lease?: number }): Promise<void>;
  info(id: string): Promise<MessageInfo>;
  stats(queue?: string): Promise<Stats>;
  queues(): Promise<string[]>;
  purge(queue: string): Promise<number>;
  redrive(queue: string): Promise<number>;
  ping(): Promise<void>;
  consume<Body = Json>(queue: string, options?: ConsumeOptions): Consumer<Body>;
  runWorker<Body = Json>(queue: string, handler: Handler<Body>, options?: WorkerOptions): Promise<void>;
  /** QUIT, then close. Pending waiting GETs reject with `ConnectionLost`. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function connect(options?: ConnectOptions): Promise<Client>;

export const DEFAULT_HOST: string;
export const DEFAULT_PORT: number;
export const DEFAULT_LEASE_S: number;
export const DEFAULT_WAIT_S: number;
export function defaultBackoff(attempts: number): number;

export class WonderQError extends Error {
  constructor(message: string, code?: string, options?: ErrorOptions);
  /** The wire code (or "connection_lost", "connect_failed", "protocol_violation"). */
  readonly code: string;
  static readonly code: string | undefined;
}
/** The connection closed; `cause` is the socket's error, if there was one. */
export class ConnectionLost extends WonderQError {}
/** No connection could be made (refused, timed out, unresolved, TLS); `cause` is the socket's error. */
export class ConnectFailed extends ConnectionLost {}
export class ProtocolViolation extends WonderQError {}
export class BadJson extends WonderQError {}
export class BadRequest extends WonderQError {}
export class UnknownOp extends WonderQError {}
export class NotFound extends WonderQError {}
export class NotLeased extends WonderQError {}
export class QueueFull extends WonderQError {}
export class TooLarge extends WonderQError {}
export class LineTooLong extends WonderQError {}
export class MemoryLimit extends WonderQError {}
export class Unauthorized extends WonderQError {}
export class Unavailable extends WonderQError {}
export class ShuttingDown extends WonderQError {}

export type ErrorCode =
  | "bad_json"
  | "bad_request"
  | "unknown_op"
  | "not_found"
  | "not_leased"
  | "queue_full"
  | "too_large"
  | "line_too_long"
  | "memory_limit"
  | "unauthorized"
  | "unavailable"
  | "shutting_down";

export const ERROR_CLASSES: Readonly<Record<ErrorCode, typeof WonderQError>>;
export function errorFromReply(reply: { error?: unknown; message?: unknown }): WonderQError;

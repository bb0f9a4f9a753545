/**
 * One socket to the broker, with pipelined requests matched to replies by `rid`.
 *
 * Owns: the socket (TCP or TLS), the rid counter, the table of pending calls,
 * and the rule that when the socket goes away every pending call fails with
 * `ConnectionLost`. Requests written in the same tick go out in one write.
 *
 * Must never: know what an op means (that is client.js), or retry a request on
 * its own (a request may or may not have been applied when a socket breaks).
 */

import net from "node:net";
import tls from "node:tls";

import { DEFAULT_MAX_LINE_BYTES, LineDecoder, encodeRequest, parseReply } from "./codec.js";
import { ConnectionLost, ShuttingDown, connectFailed, errorFromReply } from "./errors.js";

/**
 * @typedef {import("./codec.js").Reply} Reply
 * @typedef {{
 *   op: string,
 *   waiting: boolean,
 *   resolve: (reply: Reply) => void,
 *   reject: (error: Error) => void,
 * }} PendingCall
 */

/**
 * @typedef {object} ConnectionOptions
 * @property {string} [host] default "127.0.0.1"
 * @property {number} [port] default 7878
 * @property {boolean | import("node:tls").ConnectionOptions} [tls] true, or options for `tls.connect`
 * @property {number} [connectTimeout] milliseconds, default 10000
 * @property {number} [maxLineBytes] cap on one reply line, default 64 MiB
 */

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 7878;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5_000;

export class Connection {
  /** @type {net.Socket} */
  #socket;
  #decoder;
  /** @type {Map<string | number, PendingCall>} in send order */
  #pending = new Map();
  #nextRid = 1;
  #corked = false;
  /** @type {ConnectionLost | null} set once the connection can take no more requests */
  #closedError = null;
  /** @type {Error | undefined} the socket's own error, kept as the cause */
  #socketError;
  /** @type {Promise<void>} */
  #closed;
  #unmatchedReplies = 0;
  #shuttingDown = false;

  /**
   * Use `Connection.open()`.
   * @param {net.Socket} socket a connected socket
   * @param {{maxLineBytes?: number}} options
   */
  constructor(socket, { maxLineBytes = DEFAULT_MAX_LINE_BYTES } = {}) {
    this.#socket = socket;
    this.#decoder = new LineDecoder({ maxLineBytes });
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    socket.on("data", (chunk) => this.#onData(chunk));
    socket.on("error", (error) => {
      this.#socketError ??= error;
    });
    this.#closed = new Promise((resolve) => {
      socket.once("close", () => {
        const why = this.#socketError ? `: ${this.#socketError.message}` : " (closed by the server)";
        this.#failAll(new ConnectionLost(`connection lost${why}`, undefined, { cause: this.#socketError }));
        resolve();
      });
    });
  }

  /**
   * Connects and resolves once the socket (and the TLS handshake) is up.
   * Failures reject with `ConnectFailed`, whose `cause` is Node's own error
   * (e.g. `code: "ECONNREFUSED"`).
   *
   * @param {ConnectionOptions} [options]
   * @returns {Promise<Connection>}
   */
  static open(options = {}) {
    const host = options.host ?? DEFAULT_HOST;
    const port = options.port ?? DEFAULT_PORT;
    const timeoutMs = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const useTls = Boolean(options.tls);
      const readyEvent = useTls ? "secureConnect" : "connect";
      const socket = useTls
        ? tls.connect({
            host,
            port,
            ...(net.isIP(host) ? {} : { servername: host }),
            ...(typeof options.tls === "object" ? options.tls : {}),
          })
        : net.connect({ host, port });
      const timer = setTimeout(() => {
        const error = Object.assign(
          new Error(`no answer within ${timeoutMs} ms; is that address reachable, and a broker listening there?`),
          { code: "ETIMEDOUT" },
        );
        socket.destroy(error);
      }, timeoutMs);
      const onError = (/** @type {Error} */ error) => {
        clearTimeout(timer);
        reject(connectFailed(host, port, error));
      };
      socket.once("error", onError);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.off("error", onError);
        resolve(new Connection(socket, options));
      });
    });
  }

  /** False once the connection is closing or closed. */
  get isOpen() {
    return this.#closedError === null;
  }

  /** Resolves (never rejects) when the socket has closed. */
  get closed() {
    return this.#closed;
  }

  /**
   * True once the broker answered `shutting_down` here: it answers every later
   * request the same and closes the connection soon (a reconnecting client
   * makes its next call on a new one).
   */
  get shuttingDown() {
    return this.#shuttingDown;
  }

  /** Calls waiting for their reply. */
  get pendingCount() {
    return this.#pending.size;
  }

  /** Replies that matched no pending call (dropped). */
  get unmatchedReplies() {
    return this.#unmatchedReplies;
  }

  /**
   * Sends one request and resolves with its success reply; a failure reply
   * rejects with the `WonderQError` subclass for its code.
   *
   * `signal` (for a waiting call only) cancels it on the server: when it
   * aborts while the call waits, `{"op":"CANCEL","get":rid}` goes out, and
   * the server answers the call at once (its reply, maybe with what it got
   * just before, still resolves this promise: the caller decides what to do
   * with it). An already aborted `signal` rejects with its reason, sending nothing.
   *
   * @param {Record<string, unknown>} request must have `op`; `rid` is set here
   * @param {{waiting?: boolean, signal?: AbortSignal}} [options] `waiting`: true
   *   for a GET with `wait` > 0, whose reply may come out of order
   * @returns {Promise<Reply>}
   */
  request(request, { waiting = false, signal } = {}) {
    if (this.#closedError) return Promise.reject(this.#closedError);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const rid = this.#nextRid++;
    const line = encodeRequest({ ...request, rid });
    return new Promise((resolve, reject) => {
      if (!waiting || !signal) {
        this.#pending.set(rid, { op: String(request.op), waiting, resolve, reject });
        this.#write(line);
        return;
      }
      const cancel = () => {
        if (this.#pending.has(rid)) this.request({ op: "CANCEL", get: rid }).catch(() => undefined);
      };
      signal.addEventListener("abort", cancel, { once: true });
      const done = () => signal.removeEventListener("abort", cancel);
      this.#pending.set(rid, {
        op: String(request.op),
        waiting,
        resolve: (reply) => {
          done();
          resolve(reply);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      this.#write(line);
    });
  }

  /**
   * Closes gracefully: sends QUIT (replies to earlier requests still arrive;
   * waiting GETs fail with `ConnectionLost`), then waits for the socket to
   * close, at most a few seconds.
   */
  async close() {
    if (this.#closedError) return this.#closed;
    const quit = this.request({ op: "QUIT" }).catch(() => undefined);
    this.#closedError = new ConnectionLost("connection closed by the client");
    const timer = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT_MS);
    await quit;
    this.#socket.end();
    await this.#closed;
    clearTimeout(timer);
  }

  /**
   * Closes at once; every pending call rejects with `ConnectionLost`.
   * @param {Error} [cause]
   */
  destroy(cause) {
    this.#socketError ??= cause;
    this.#closedError ??= new ConnectionLost("connection closed by the client", undefined, { cause });
    this.#socket.destroy();
    return this.#closed;
  }

  /** @param {string} line */
  #write(line) {
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    this.#socket.write(line);
  }

  /** @param {Buffer} chunk */
  #onData(chunk) {
    let replies;
    try {
      replies = this.#decoder.feed(chunk).map(parseReply);
    } catch (error) {
      this.destroy(/** @type {Error} */ (error));
      return;
    }
    for (const reply of replies) this.#dispatch(reply);
  }

  /** @param {Reply} reply */
  #dispatch(reply) {
    const rid = reply.rid ?? this.#ridForUnlabelledReply();
    const call = rid === undefined ? undefined : this.#pending.get(rid);
    if (rid === undefined || !call) {
      this.#unmatchedReplies += 1;
      return;
    }
    this.#pending.delete(rid);
    if (reply.ok) {
      call.resolve(reply);
      return;
    }
    const error = errorFromReply(reply);
    if (error instanceof ShuttingDown) this.#shuttingDown = true;
    call.reject(error);
  }

  /**
   * A reply without `rid` answers a request the server could not read (e.g. a
   * line over `--max-line`). Replies other than waiting GETs come in request
   * order, so it belongs to the oldest pending call that is not a waiting GET.
   * @returns {string | number | undefined}
   */
  #ridForUnlabelledReply() {
    let oldest;
    for (const [rid, call] of this.#pending) {
      if (!call.waiting) return rid;
      oldest ??= rid;
    }
    return oldest;
  }

  /** @param {ConnectionLost} error */
  #failAll(error) {
    this.#closedError ??= error;
    const calls = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of calls) call.reject(error);
  }
}

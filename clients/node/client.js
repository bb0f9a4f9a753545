/**
 * The WonderQ client: one method per protocol op, in JavaScript idiom.
 *
 * Owns: turning arguments into requests (camelCase options to the wire's
 * snake_case fields, through the tables of `options.js`, which refuse unknown
 * options) and replies into results, authenticating first when a token is
 * given, and, with `reconnect`, dialing again after a lost connection (the
 * call that was in flight still rejects: it may or may not have been applied).
 * Every call is pipelined on the one connection.
 *
 * Must never: validate what the server validates (bounds, names): the server's
 * error, with its message, is the one answer. Never settle a message on
 * another connection than the one that leased it: a message's calls go on
 * that connection (a client pinned to it), and fail with `ConnectionLost` once
 * it is gone, even if this client has reconnected since.
 */

import { dial, dialWithBackoff, outage } from "./dial.js";
import { ConnectionLost, ProtocolViolation } from "./errors.js";
import { GET_WITH_HOOKS, Message, REOPEN } from "./message.js";
import {
  CONFIG_OPTIONS,
  CONNECT_OPTIONS,
  DELETE_OPTIONS,
  GET_OPTIONS,
  NACK_OPTIONS,
  PEEK_OPTIONS,
  PUT_ITEM_FIELDS,
  PUT_OPTIONS,
  QUEUES_OPTIONS,
  TOUCH_OPTIONS,
  checkOptions,
  optionFields,
  wireFields,
} from "./options.js";
import { consume, runWorker } from "./worker.js";

/**
 * @typedef {import("./connection.js").Connection} Connection
 * @typedef {import("./reconnect.js").Redial} Redial
 * @typedef {import("./connection.js").ConnectionOptions & {
 *   token?: string,
 *   reconnect?: boolean,
 *   reconnectTimeout?: number,
 * }} ConnectOptions
 * @typedef {{key?: string, delay?: number, priority?: number, maxAttempts?: number,
 *   dedup?: string, headers?: Record<string, string>}} PutOptions
 * @typedef {PutOptions & {body: unknown}} PutItem
 * @typedef {{lease: number, maxAttempts: number, maxLength: number | null, rate: number | null,
 *   dedupWindow: number}} QueueSettings
 */

/**
 * Connects to a broker. With `token`, authenticates before resolving. With
 * `reconnect`, a refused first connect is retried too (for up to
 * `reconnectTimeout` ms), and a lost connection is dialed again by the next call.
 *
 * @param {ConnectOptions} [options]
 * @returns {Promise<Client>}
 */
export async function connect(options = {}) {
  const settings = checkOptions(options, CONNECT_OPTIONS, "connect()");
  const connection = settings.reconnect
    ? await dialWithBackoff(settings, outage(settings, { first: true }))
    : await dial(settings);
  return new Client(connection, settings);
}

export class Client {
  #connection;
  /** @type {ConnectOptions | undefined} how to dial again; undefined for a client pinned to one connection */
  #settings;
  /** @type {Promise<Connection> | null} */
  #dialing = null;
  #closing = new AbortController();
  /** @type {{connection: Connection, client: Client} | undefined} the client the messages of `#connection` use */
  #pinned;

  /**
   * Use `connect()`.
   * @param {Connection} connection
   * @param {ConnectOptions} [settings] how to dial again (absent: never)
   */
  constructor(connection, settings) {
    this.#connection = connection;
    this.#settings = settings;
  }

  /** False once `close()` was called or the connection was lost (until a reconnect). */
  get isOpen() {
    return !this.#closing.signal.aborted && this.#connection.isOpen;
  }

  /** Resolves (never rejects) when the connection has closed, for any reason. */
  get closed() {
    return this.#connection.closed;
  }

  /** Replies the server sent that matched no call (dropped; should stay 0). */
  get unmatchedReplies() {
    return this.#connection.unmatchedReplies;
  }

  /**
   * Adds one message. With `dedup`, a PUT retried within the queue's dedup window
   * stores nothing and resolves the first message's id (`putResult` says so).
   * @param {string} queue
   * @param {unknown} body any JSON value
   * @param {PutOptions} [options]
   * @returns {Promise<string>} the message id
   */
  async put(queue, body, options) {
    return (await this.putResult(queue, body, options)).id;
  }

  /**
   * `put()`, resolving its id and whether it was a duplicate (nothing stored).
   * @param {string} queue
   * @param {unknown} body any JSON value
   * @param {PutOptions} [options]
   * @returns {Promise<{id: string, duplicate: boolean}>}
   */
  async putResult(queue, body, options) {
    const fields = wireFields(checkOptions(options, PUT_OPTIONS, "put()"), PUT_OPTIONS);
    const reply = await this.#request({ op: "PUT", queue, body, ...fields });
    return { id: /** @type {string} */ (reply.id), duplicate: reply.duplicate === true };
  }

  /**
   * Adds several messages, all or none.
   * @param {string} queue
   * @param {PutItem[]} items
   * @returns {Promise<string[]>} their ids, in order
   */
  async putMany(queue, items) {
    return (await this.putManyResult(queue, items)).ids;
  }

  /**
   * `putMany()`, resolving the ids and the indexes of the items that were
   * duplicates (their `dedup` was used already: nothing stored, the first id).
   * @param {string} queue
   * @param {PutItem[]} items
   * @returns {Promise<{ids: string[], duplicates: number[]}>}
   */
  async putManyResult(queue, items) {
    const messages = items.map((item, index) => {
      if (item === null || typeof item !== "object" || Array.isArray(item)) {
        throw new TypeError(`putMany() item ${index} must be {body, ...options}, not ${JSON.stringify(item)}`);
      }
      return wireFields(checkOptions(item, PUT_ITEM_FIELDS, `putMany() item ${index}`), PUT_ITEM_FIELDS);
    });
    const reply = await this.#request({ op: "PUT", queue, messages });
    return {
      ids: /** @type {string[]} */ (reply.ids),
      duplicates: /** @type {number[]} */ (reply.duplicates ?? []),
    };
  }

  /**
   * Leases up to `max` messages, waiting up to `wait` seconds if none is ready.
   * A waiting GET does not hold up other calls on this client.
   *
   * Aborting `signal` cancels a waiting GET on the server (`CANCEL`) and
   * rejects with the signal's reason once the server has ended it; messages
   * it got just before are released (nacked) first, so none stays leased to
   * a call nobody awaits.
   *
   * @param {string} queue
   * @param {{max?: number, lease?: number, wait?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<Message[]>}
   */
  async get(queue, options) {
    return this[GET_WITH_HOOKS](queue, checkOptions(options, GET_OPTIONS, "get()"), {});
  }

  /**
   * `get()` whose messages report settles and touches to `hooks` (for consumers).
   * @param {string} queue
   * @param {{max?: number, lease?: number, wait?: number, signal?: AbortSignal}} options
   * @param {import("./message.js").MessageHooks} hooks
   */
  async [GET_WITH_HOOKS](queue, { max, lease, wait, signal } = {}, hooks) {
    const connection = this.#usable() ?? (await this.#current()); // in call order when usable
    const reply = await connection.request(
      { op: "GET", queue, max, lease, wait },
      { waiting: wait !== undefined && wait > 0, signal },
    );
    const holder = this.#pinnedTo(connection);
    const wires = /** @type {{id: string}[]} */ (reply.messages);
    if (signal?.aborted) {
      // Lost to nobody: NACK errors mean the lease is gone already (or the connection, with it).
      await Promise.all(wires.map(({ id }) => holder.nack(id).catch(() => undefined)));
      throw signal.reason;
    }
    return wires.map((wire) => new Message(holder, /** @type {any} */ (wire), hooks));
  }

  /**
   * Deletes a leased message.
   * @param {string} id
   */
  async ack(id) {
    await this.#request({ op: "ACK", id });
  }

  /**
   * Deletes several leased messages; never fails for a single id.
   * @param {string[]} ids
   * @returns {Promise<{acked: number, notLeased: string[], notFound: string[]}>}
   */
  async ackMany(ids) {
    const reply = await this.#request({ op: "ACK", ids });
    return {
      acked: /** @type {number} */ (reply.acked),
      notLeased: /** @type {string[]} */ (reply.not_leased),
      notFound: /** @type {string[]} */ (reply.not_found),
    };
  }

  /**
   * Gives a leased message back, visible now or after `delay` seconds.
   * @param {string} id
   * @param {{delay?: number}} [options]
   * @returns {Promise<{dead: boolean}>} `dead` if it was moved to `<queue>.dead`
   */
  async nack(id, options) {
    const fields = wireFields(checkOptions(options, NACK_OPTIONS, "nack()"), NACK_OPTIONS);
    const reply = await this.#request({ op: "NACK", id, ...fields });
    return { dead: reply.dead === true };
  }

  /**
   * Extends a lease to now + `lease` seconds (default: the server's).
   * @param {string} id
   * @param {{lease?: number}} [options]
   */
  async touch(id, options) {
    const fields = wireFields(checkOptions(options, TOUCH_OPTIONS, "touch()"), TOUCH_OPTIONS);
    await this.#request({ op: "TOUCH", id, ...fields });
  }

  /**
   * Looks at one message without changing it.
   * @param {string} id
   * @returns {Promise<Record<string, unknown>>} the wire's `message` object
   */
  async info(id) {
    const reply = await this.#request({ op: "INFO", id });
    return /** @type {Record<string, unknown>} */ (reply.message);
  }

  /**
   * Server counters, and per-queue counters (all queues, or just `queue`).
   * @param {string} [queue]
   * @returns {Promise<{server: Record<string, unknown>, queues: Record<string, Record<string, unknown>>}>}
   */
  async stats(queue) {
    const reply = await this.#request({ op: "STATS", queue });
    return { server: /** @type {any} */ (reply.server), queues: /** @type {any} */ (reply.queues) };
  }

  /**
   * Lists up to `limit` messages of `queue` without leasing or changing them.
   * @param {string} queue
   * @param {{state?: "ready" | "delayed" | "leased" | "dead", limit?: number}} [options]
   * @returns {Promise<{messages: Record<string, unknown>[], total: number}>} messages as INFO shows them
   */
  async peek(queue, options) {
    const fields = wireFields(checkOptions(options, PEEK_OPTIONS, "peek()"), PEEK_OPTIONS);
    const reply = await this.#request({ op: "PEEK", queue, ...fields });
    return { messages: /** @type {any} */ (reply.messages), total: /** @type {number} */ (reply.total) };
  }

  /**
   * Names of all queues (or those starting with `prefix`), sorted; the broker
   * sends them a page at a time.
   * @param {{prefix?: string}} [options]
   * @returns {Promise<string[]>}
   */
  async queues(options) {
    const { prefix } = checkOptions(options, QUEUES_OPTIONS, "queues()");
    /** @type {string[]} */
    const names = [];
    /** @type {string | undefined} */
    let cursor;
    for (;;) {
      const reply = await this.#request({ op: "QUEUES", prefix, cursor });
      names.push(.../** @type {string[]} */ (reply.queues));
      const next = reply.next;
      if (next === undefined || next === null) return names;
      if (typeof next !== "string" || next === cursor) {
        throw new ProtocolViolation(`QUEUES reply has a bad next page: ${JSON.stringify(next)}`);
      }
      cursor = next;
    }
  }

  /**
   * Deletes a queue's ready and delayed messages.
   * @param {string} queue
   * @returns {Promise<number>} how many
   */
  async purge(queue) {
    const reply = await this.#request({ op: "PURGE", queue });
    return /** @type {number} */ (reply.purged);
  }

  /**
   * Moves the messages of `<queue>.dead` (or only `ids`) back to `queue`, their
   * attempts reset.
   * @param {string} queue
   * @param {string[]} [ids]
   * @returns {Promise<{redriven: number, leased: string[], notFound: string[]}>} with `ids`,
   *   `leased` and `notFound` name those that did not move
   */
  async redrive(queue, ids) {
    const reply = await this.#request({ op: "REDRIVE", queue, ids });
    return {
      redriven: /** @type {number} */ (reply.redriven),
      leased: /** @type {string[]} */ (reply.leased ?? []),
      notFound: /** @type {string[]} */ (reply.not_found ?? []),
    };
  }

  /**
   * Deletes the named ready or delayed messages of `queue` (a dead letter: name
   * `<queue>.dead`). A leased message is never removed: its holder may be working on it.
   * @param {string} queue
   * @param {string[]} ids
   * @returns {Promise<{removed: number, leased: string[], notFound: string[]}>}
   */
  async remove(queue, ids) {
    const reply = await this.#request({ op: "REMOVE", queue, ids });
    return {
      removed: /** @type {number} */ (reply.removed),
      leased: /** @type {string[]} */ (reply.leased),
      notFound: /** @type {string[]} */ (reply.not_found),
    };
  }

  /**
   * Deletes a queue, every message in it (leased ones too) and its settings;
   * `<queue>.dead` stays unless `dead`. Rejects with `NotFound` if there is none.
   * @param {string} queue
   * @param {{dead?: boolean}} [options]
   * @returns {Promise<number>} the messages deleted
   */
  async delete(queue, options) {
    const fields = wireFields(checkOptions(options, DELETE_OPTIONS, "delete()"), DELETE_OPTIONS);
    const reply = await this.#request({ op: "DELETE", queue, ...fields });
    return /** @type {number} */ (reply.deleted);
  }

  /**
   * Stops a queue's deliveries (it still takes PUTs; leases run as usual).
   * @param {string} queue
   */
  async pause(queue) {
    await this.#request({ op: "PAUSE", queue });
  }

  /**
   * Restarts a paused queue's deliveries (waiting GETs are served at once).
   * @param {string} queue
   */
  async resume(queue) {
    await this.#request({ op: "RESUME", queue });
  }

  /**
   * Changes some of a queue's settings and resolves all of them; without
   * `settings` it only reads them. A setting left out is kept; `null` resets it
   * to the server's default.
   * @param {string} queue
   * @param {{lease?: number | null, maxAttempts?: number | null, maxLength?: number | null,
   *   rate?: number | null, dedupWindow?: number | null}} [settings]
   * @returns {Promise<QueueSettings>}
   */
  async config(queue, settings) {
    const fields = wireFields(checkOptions(settings, CONFIG_OPTIONS, "config()"), CONFIG_OPTIONS);
    const reply = await this.#request({ op: "CONFIG", queue, ...fields });
    return /** @type {QueueSettings} */ (optionFields(/** @type {any} */ (reply.settings), CONFIG_OPTIONS));
  }

  /** Round trip to the server. */
  async ping() {
    await this.#request({ op: "PING" });
  }

  /**
   * Leased messages as an async iterable; see `worker.js`.
   * @param {string} queue
   * @param {import("./worker.js").ConsumeOptions} [options]
   */
  consume(queue, options) {
    return consume(this, queue, options);
  }

  /**
   * Runs `handler` on every message until `signal` aborts; see `worker.js`.
   * @param {string} queue
   * @param {import("./worker.js").Handler} handler
   * @param {import("./worker.js").WorkerOptions} [options]
   */
  runWorker(queue, handler, options) {
    return runWorker(this, queue, handler, options);
  }

  /**
   * Closes gracefully (QUIT). Leases this client holds are released by the
   * server; calls still pending (waiting GETs) reject with `ConnectionLost`,
   * and so does a reconnect under way.
   */
  async close() {
    this.#closing.abort();
    await this.#connection.close();
  }

  /** For `await using client = await connect()`. */
  async [Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]() {
    await this.close();
  }

  /**
   * Gets a connection back after a loss, for a consumer (whatever `reconnect`
   * says): dials with backoff, counting the attempts in the consumer's outage
   * (a new one if `redial` is undefined), which it returns.
   * @param {Redial} [redial]
   * @returns {Promise<Redial>}
   */
  async [REOPEN](redial) {
    if (this.#settings === undefined) throw new ConnectionLost("this client cannot reconnect");
    const current = redial ?? outage(this.#settings);
    await this.#current(current);
    return current;
  }

  /**
   * @param {Record<string, unknown>} request
   * @param {{waiting?: boolean, signal?: AbortSignal}} [options]
   */
  #request(request, options) {
    const connection = this.#usable();
    if (connection) return connection.request(request, options);
    return this.#current().then((current) => current.request(request, options));
  }

  /** The current connection if the next call goes on it, at once (calls keep their order). */
  #usable() {
    const connection = this.#connection;
    return connection.isOpen && !connection.shuttingDown && !this.#closing.signal.aborted ? connection : undefined;
  }

  /**
   * The connection for the next call: the current one, or, when it is gone
   * (or the broker said it is shutting down) and this client reconnects (or a
   * consumer asks, with its `redial`), a new one.
   * @param {Redial} [redial]
   * @returns {Promise<Connection>}
   */
  async #current(redial) {
    if (this.#closing.signal.aborted) throw new ConnectionLost("the client is closed");
    const connection = this.#connection;
    const redials = this.#settings !== undefined && (redial !== undefined || this.#settings.reconnect === true);
    const usable = connection.isOpen && !(connection.shuttingDown && redials);
    if (usable || !redials) return connection; // gone, for good: its request() says why
    this.#dialing ??= this.#redial(redial ?? outage(/** @type {ConnectOptions} */ (this.#settings))).finally(() => {
      this.#dialing = null;
    });
    return this.#dialing;
  }

  /** @param {Redial} redial */
  async #redial(redial) {
    const settings = /** @type {ConnectOptions} */ (this.#settings);
    const connection = await dialWithBackoff(settings, redial, this.#closing.signal);
    if (this.#closing.signal.aborted) {
      connection.destroy();
      throw new ConnectionLost("the client is closed");
    }
    this.#connection = connection;
    return connection;
  }

  /**
   * The client that messages leased on `connection` settle through.
   * @param {Connection} connection
   */
  #pinnedTo(connection) {
    if (this.#pinned?.connection !== connection) this.#pinned = { connection, client: new Client(connection) };
    return this.#pinned.client;
  }
}

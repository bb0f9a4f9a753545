/**
 * The WonderQ client: one method per protocol op, in JavaScript idiom.
 *
 * Owns: turning arguments into requests (camelCase options to the wire's
 * snake_case fields) and replies into results, and authenticating first when
 * a token is given. Every call is pipelined on the one connection.
 *
 * Must never: validate what the server validates (bounds, names): the server's
 * error, with its message, is the one answer.
 */

import { Connection } from "./connection.js";
import { GET_WITH_HOOKS, Message } from "./message.js";
import { consume, runWorker } from "./worker.js";

/**
 * @typedef {import("./connection.js").ConnectionOptions & {token?: string}} ConnectOptions
 * @typedef {{key?: string, delay?: number, priority?: number, maxAttempts?: number}} PutOptions
 * @typedef {PutOptions & {body: unknown}} PutItem
 */

/**
 * Connects to a broker. With `token`, authenticates before resolving.
 *
 * @param {ConnectOptions} [options]
 * @returns {Promise<Client>}
 */
export async function connect(options = {}) {
  const connection = await Connection.open(options);
  const client = new Client(connection);
  if (options.token !== undefined) {
    try {
      await connection.request({ op: "AUTH", token: options.token });
    } catch (error) {
      connection.destroy();
      throw error;
    }
  }
  return client;
}

export class Client {
  #connection;

  /**
   * Use `connect()`.
   * @param {Connection} connection
   */
  constructor(connection) {
    this.#connection = connection;
  }

  /** False once `close()` was called or the connection was lost. */
  get isOpen() {
    return this.#connection.isOpen;
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
   * Adds one message.
   * @param {string} queue
   * @param {unknown} body any JSON value
   * @param {PutOptions} [options]
   * @returns {Promise<string>} the message id
   */
  async put(queue, body, options = {}) {
    const reply = await this.#request({ op: "PUT", queue, ...putFields({ ...options, body }) });
    return /** @type {string} */ (reply.id);
  }

  /**
   * Adds several messages, all or none.
   * @param {string} queue
   * @param {PutItem[]} items
   * @returns {Promise<string[]>} their ids, in order
   */
  async putMany(queue, items) {
    const reply = await this.#request({ op: "PUT", queue, messages: items.map(putFields) });
    return /** @type {string[]} */ (reply.ids);
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
  async get(queue, options = {}) {
    return this[GET_WITH_HOOKS](queue, options, {});
  }

  /**
   * `get()` whose messages report settles and touches to `hooks` (for consumers).
   * @param {string} queue
   * @param {{max?: number, lease?: number, wait?: number, signal?: AbortSignal}} options
   * @param {import("./message.js").MessageHooks} hooks
   */
  async [GET_WITH_HOOKS](queue, { max, lease, wait, signal } = {}, hooks) {
    const reply = await this.#request(
      { op: "GET", queue, max, lease, wait },
      { waiting: wait !== undefined && wait > 0, signal },
    );
    const wires = /** @type {{id: string}[]} */ (reply.messages);
    if (signal?.aborted) {
      // Lost to nobody: NACK errors mean the lease is gone already (or the connection, with it).
      await Promise.all(wires.map(({ id }) => this.nack(id).catch(() => undefined)));
      throw signal.reason;
    }
    return wires.map((wire) => new Message(this, /** @type {any} */ (wire), hooks));
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
  async nack(id, { delay } = {}) {
    const reply = await this.#request({ op: "NACK", id, delay });
    return { dead: reply.dead === true };
  }

  /**
   * Extends a lease to now + `lease` seconds (default: the server's).
   * @param {string} id
   * @param {{lease?: number}} [options]
   */
  async touch(id, { lease } = {}) {
    await this.#request({ op: "TOUCH", id, lease });
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

  /** @returns {Promise<string[]>} queue names, sorted */
  async queues() {
    const reply = await this.#request({ op: "QUEUES" });
    return /** @type {string[]} */ (reply.queues);
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
   * Moves the ready messages of `<queue>.dead` back to `queue`.
   * @param {string} queue
   * @returns {Promise<number>} how many
   */
  async redrive(queue) {
    const reply = await this.#request({ op: "REDRIVE", queue });
    return /** @type {number} */ (reply.redriven);
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
   * server; calls still pending (waiting GETs) reject with `ConnectionLost`.
   */
  async close() {
    await this.#connection.close();
  }

  /** For `await using client = await connect()`. */
  async [Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose")]() {
    await this.close();
  }

  /**
   * @param {Record<string, unknown>} request
   * @param {{waiting?: boolean, signal?: AbortSignal}} [options]
   */
  #request(request, options) {
    return this.#connection.request(request, options);
  }
}

/**
 * The wire fields of one message to put.
 * @param {PutItem} item
 */
function putFields({ body, key, delay, priority, maxAttempts }) {
  return { body, key, delay, priority, max_attempts: maxAttempts };
}

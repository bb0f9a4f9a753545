/**
 * A leased message as `get()` and `consume()` hand it out.
 *
 * Owns: the message's fields and its settle methods (`ack`, `nack`, `touch`),
 * and telling whoever delivered it when it is settled or its lease is renewed.
 *
 * Must never: talk to the socket directly; it goes through the client (one
 * pinned to the connection that leased the message).
 */

import { NACK_OPTIONS, TOUCH_OPTIONS, checkOptions } from "./options.js";

/**
 * @typedef {object} MessageHooks
 * @property {(message: Message) => void} [onSettle] after ack or nack (whatever their outcome)
 * @property {(message: Message, leaseS: number | undefined) => void} [onTouch] after a successful touch
 */

/**
 * Key of the client method that leases messages wired to `MessageHooks`
 * (used by consumers; not part of the public surface).
 */
export const GET_WITH_HOOKS = Symbol("wonderq.getWithHooks");

/**
 * Key of the client method consumers use to get a connection back after a
 * loss, whatever the client's own `reconnect` says (not public either).
 */
export const REOPEN = Symbol("wonderq.reopen");

export class Message {
  /** @type {import("./client.js").Client} */
  #client;
  /** @type {MessageHooks} */
  #hooks;
  #settled = false;

  /**
   * @param {import("./client.js").Client} client
   * @param {{id: string, queue: string, body: unknown, key?: string, attempts: number}} wire
   * @param {MessageHooks} [hooks]
   */
  constructor(client, wire, hooks = {}) {
    this.#client = client;
    this.#hooks = hooks;
    /** Opaque id. @type {string} */
    this.id = wire.id;
    /** @type {string} */
    this.queue = wire.queue;
    /** Any JSON value. @type {unknown} */
    this.body = wire.body;
    /** @type {string | undefined} */
    this.key = wire.key;
    /** Deliveries so far, this one included. @type {number} */
    this.attempts = wire.attempts;
  }

  /** True once `ack()` or `nack()` has been called. */
  get settled() {
    return this.#settled;
  }

  /** Deletes the message. Rejects with `NotLeased` if the lease was lost. */
  async ack() {
    this.#markSettled();
    await this.#client.ack(this.id);
  }

  /**
   * Gives the message back, visible again now or after `delay` seconds.
   * @param {{delay?: number}} [options]
   * @returns {Promise<{dead: boolean}>} `dead` if it went to `<queue>.dead`
   */
  async nack(options) {
    checkOptions(options, NACK_OPTIONS, "nack()");
    this.#markSettled();
    return this.#client.nack(this.id, options);
  }

  /**
   * Extends the lease to now + `lease` seconds (default: the server's).
   * @param {{lease?: number}} [options]
   */
  async touch(options) {
    const { lease } = checkOptions(options, TOUCH_OPTIONS, "touch()");
    await this.#client.touch(this.id, options);
    this.#hooks.onTouch?.(this, lease);
  }

  /** @returns {object} the wire fields, for logging */
  toJSON() {
    const { id, queue, body, key, attempts } = this;
    return { id, queue, body, ...(key === undefined ? {} : { key }), attempts };
  }

  #markSettled() {
    if (this.#settled) return;
    this.#settled = true;
    this.#hooks.onSettle?.(this);
  }
}

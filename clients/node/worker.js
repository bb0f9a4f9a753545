/**
 * Consuming a queue: `consume()` (an async iterable of leased messages) and
 * `runWorker()` (a handler pool on top of it).
 *
 * Owns: how many messages one consumer holds at once (`concurrency`: leased
 * and not yet acked or nacked), long-polling GETs, keeping leases alive for
 * slow handlers (a TOUCH at half the lease), ack on success, nack with backoff
 * on failure, and stopping cleanly on an `AbortSignal`: the GET waiting on the
 * server is cancelled (`CANCEL`, sent before any release, so it cannot take the
 * released messages straight back), messages leased but not yet handed out are
 * released at once, with whatever that GET got just before, and running
 * handlers are told through their signal and waited for. With `reconnect`
 * (the default), a lost connection (or a broker that says it is shutting
 * down) is dialed again with backoff, for up to the client's
 * `reconnectTimeout`; the leases it held are gone with it (the broker
 * delivers those messages again).
 *
 * Must never: swallow a handler's error silently (it goes to `onError`), or
 * hold more than `concurrency` leases.
 */

import { setTimeout as sleep } from "node:timers/promises";

import { ConnectFailed, ConnectionLost, ShuttingDown, WonderQError } from "./errors.js";
import { GET_WITH_HOOKS, REOPEN } from "./message.js";
import { CONSUME_OPTIONS, WORKER_OPTIONS, checkOptions } from "./options.js";

/**
 * @typedef {import("./message.js").Message} Message
 * @typedef {import("./client.js").Client} Client
 *
 * @typedef {object} ConsumeOptions
 * @property {number} [concurrency] messages held at once, default 1
 * @property {number} [lease] lease in seconds, default 30
 * @property {number} [wait] seconds one GET waits on the server, default 20
 * @property {boolean} [extendLeases] TOUCH held messages at half their lease
 *   until they are settled; default false for `consume()`, true for `runWorker()`
 * @property {AbortSignal} [signal] stops the consumer
 * @property {(error: Error, message: Message) => void} [onError] a lease could not be
 *   extended; default: `process.emitWarning`. If it throws, the iterator throws that.
 * @property {boolean} [reconnect] dial again when the connection is lost (default true)
 *
 * @typedef {(message: Message, context: {signal: AbortSignal}) => unknown} Handler
 *
 * @typedef {object} WorkerOptions
 * @property {number} [concurrency] handlers running at once, default 1
 * @property {number} [lease] lease in seconds, default 30; extended while a handler runs
 * @property {number} [wait] seconds one GET waits on the server, default 20
 * @property {AbortSignal} [signal] stops the worker; `runWorker()` then resolves
 *   once running handlers have finished and their messages are settled
 * @property {(attempts: number) => number} [backoff] NACK delay in seconds after a
 *   failed attempt; default exponential from 0.5 s, capped at 60 s, with jitter
 * @property {(error: Error, message: Message) => void} [onError] a handler failed,
 *   or an ack, nack or touch did; default: `process.emitWarning`. If it throws, the
 *   worker stops and `runWorker()` rejects with that error.
 * @property {boolean} [reconnect] dial again when the connection is lost (default true)
 */

export const DEFAULT_LEASE_S = 30;
export const DEFAULT_WAIT_S = 20;

/** Largest `max` of one GET: the protocol's default `--max-get`. */
const MAX_GET = 1000;

const STOPPED = Symbol("stopped");

/**
 * Leased messages from `queue`, as an async iterable. Each message counts
 * against `concurrency` until it is acked or nacked (or its lease runs out).
 *
 * ```js
 * for await (const msg of client.consume("jobs", { concurrency: 4 })) {
 *   await handle(msg.body);
 *   await msg.ack();
 * }
 * ```
 *
 * @param {Client} client
 * @param {string} queue
 * @param {ConsumeOptions} [options]
 * @returns {Consumer}
 */
export function consume(client, queue, options = {}) {
  return new Consumer(client, queue, options);
}

/**
 * Holds up to `concurrency` leases on one queue and hands the messages out.
 * @implements {AsyncIterable<Message>}
 */
export class Consumer {
  #client;
  #queue;
  #concurrency;
  #leaseS;
  #waitS;
  #extendLeases;
  #onError;
  /** @type {AbortSignal | undefined} */
  #signal;
  #onAbort = () => this.#stop();

  /** Leased here and not yet handed out, in delivery order. @type {Message[]} */
  #buffer = [];
  /** Every leased, unsettled message (handed out or not), with its lease timer. @type {Map<Message, NodeJS.Timeout>} */
  #held = new Map();
  /** @type {Promise<void> | null} the GET on the wire, if any */
  #fetching = null;
  /** @type {(() => void) | null} wakes the iterator when a slot frees */
  #wake = null;
  #stopped = false;
  /** @type {unknown} what stopped the consumer with an error, thrown by the iterator */
  #failure = undefined;
  /** @type {Promise<typeof STOPPED>} */
  #stopRequested;
  /** @type {(value: typeof STOPPED) => void} */
  #resolveStop = () => {};
  #iterating = false;
  /** @type {Set<Promise<unknown>>} NACKs in flight */
  #releasing = new Set();
  /** Aborted on stop: cancels the GET waiting on the server. */
  #cancelGet = new AbortController();
  #reconnect;
  /** @type {import("./reconnect.js").Redial | undefined} from a lost connection until a GET gets through */
  #outage;

  /**
   * @param {Client} client
   * @param {string} queue
   * @param {ConsumeOptions} options
   */
  constructor(client, queue, options) {
    options = checkOptions(options, CONSUME_OPTIONS, "consume()");
    this.#client = client;
    this.#queue = queue;
    this.#concurrency = options.concurrency ?? 1;
    this.#leaseS = options.lease ?? DEFAULT_LEASE_S;
    this.#waitS = options.wait ?? DEFAULT_WAIT_S;
    this.#extendLeases = options.extendLeases ?? false;
    this.#onError = options.onError ?? warn;
    this.#signal = options.signal;
    this.#reconnect = options.reconnect ?? true;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new RangeError(`concurrency must be an integer >= 1, got ${options.concurrency}`);
    }
    this.#stopRequested = new Promise((resolve) => {
      this.#resolveStop = resolve;
    });
    if (this.#signal?.aborted) this.#stop();
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Messages leased and not yet acked or nacked. */
  get heldCount() {
    return this.#held.size;
  }

  /**
   * Stops handing out messages, cancels the GET waiting on the server, and
   * releases the messages not handed out yet, with what that GET got before
   * it was cancelled; resolves when the releases are answered (a round trip
   * or two, not the GET's `wait`). Messages already handed out stay leased to
   * their holder, who acks or nacks them. (Closing the client instead
   * releases every lease it holds at once.)
   */
  async stop() {
    this.#stop();
    await this.#fetching?.catch(() => undefined);
    await Promise.all(this.#releasing);
  }

  /**
   * NACKs a message of this consumer without delay, so another consumer gets
   * it. Used once stopped: this consumer's GET was cancelled before, so it
   * cannot take the message straight back.
   * @param {Message} message
   */
  release(message) {
    this.#track(this.#releasing, message.nack());
  }

  /**
   * Keeps `promise` in `set` until it settles. Errors are dropped: a NACK
   * fails only if the lease is gone already, or the connection (whose close
   * releases the lease on the server).
   * @param {Set<Promise<unknown>>} set
   * @param {Promise<unknown>} promise
   */
  #track(set, promise) {
    const tracked = promise.catch(() => undefined);
    set.add(tracked);
    tracked.finally(() => set.delete(tracked));
  }

  /** @returns {AsyncIterator<Message>} */
  [Symbol.asyncIterator]() {
    if (this.#iterating) throw new Error("a Consumer can be iterated only once");
    this.#iterating = true;
    return this.#iterate();
  }

  async *#iterate() {
    try {
      while (!this.#stopped) {
        const message = this.#buffer.shift();
        if (message) {
          yield message;
          continue;
        }
        const free = this.#concurrency - this.#held.size;
        const next = free > 0 ? this.#startFetch(Math.min(free, MAX_GET)) : this.#slotFreed();
        if ((await Promise.race([next, this.#stopRequested])) === STOPPED) break;
      }
      if (this.#failure !== undefined) throw this.#failure;
    } finally {
      this.#stop();
    }
  }

  /** @param {number} max */
  #startFetch(max) {
    const fetching = this.#fetch(max);
    this.#fetching = fetching;
    return fetching.finally(() => {
      if (this.#fetching === fetching) this.#fetching = null;
    });
  }

  /** @param {number} max */
  async #fetch(max) {
    const signal = this.#cancelGet.signal;
    let messages;
    try {
      messages = await this.#client[GET_WITH_HOOKS](
        this.#queue,
        { max, lease: this.#leaseS, wait: this.#waitS, signal },
        {
          onSettle: (message) => this.#forget(message),
          onTouch: (message, leaseS) => this.#armLeaseTimer(message, leaseS ?? this.#leaseS),
        },
      );
    } catch (error) {
      if (signal.aborted && error === signal.reason) return; // stopped; it released what it got
      if (this.#reconnect && endsTheConnection(error)) {
        await this.#recover(/** @type {Error} */ (error));
        return;
      }
      throw error;
    }
    this.#outage = undefined;
    if (this.#stopped) {
      for (const message of messages) this.#track(this.#releasing, message.nack());
      return;
    }
    for (const message of messages) {
      this.#held.set(message, /** @type {any} */ (undefined));
      this.#armLeaseTimer(message, this.#leaseS);
      this.#buffer.push(message);
    }
  }

  /**
   * The connection is lost: forget what it leased and was not handed out (the
   * broker released it all), then get a connection back, or reject once the
   * outage outlasts the client's `reconnectTimeout`.
   * @param {Error} error
   */
  async #recover(error) {
    const dropped = this.#buffer.splice(0);
    for (const message of dropped) this.#forget(message);
    const held = dropped.length + this.#held.size;
    const released = held ? `; the broker releases the ${held} messages this consumer held, to deliver them again` : "";
    process.emitWarning(`lost the connection while consuming "${this.#queue}" (${error.message})${released}; reconnecting`, {
      type: "WonderQReconnectWarning",
    });
    const stopped = this.#cancelGet.signal;
    if (this.#outage) {
      // lost again before a GET got through: a failed attempt of this outage
      const delayMs = this.#outage.failed(error, Date.now());
      try {
        await sleep(delayMs, undefined, { signal: stopped });
      } catch {
        return; // stopped
      }
    }
    const reopened = this.#client[REOPEN](this.#outage);
    reopened.catch(() => undefined); // if stopped first, nobody awaits it
    const outcome = await Promise.race([reopened, this.#stopRequested]);
    if (outcome !== STOPPED) this.#outage = outcome;
  }

  /** @returns {Promise<void>} resolves when a held message is settled or expires */
  #slotFreed() {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /**
   * In extend mode, TOUCH at half the lease; otherwise, forget the message
   * when its lease has run out (the server released it).
   * @param {Message} message
   * @param {number} leaseS
   */
  #armLeaseTimer(message, leaseS) {
    if (!this.#held.has(message)) return;
    clearTimeout(this.#held.get(message));
    const timer = this.#extendLeases
      ? setTimeout(() => this.#extend(message).catch((error) => this.#fail(error)), (leaseS * 1000) / 2)
      : setTimeout(() => this.#forget(message), leaseS * 1000);
    timer.unref();
    this.#held.set(message, timer);
  }

  /** @param {Message} message */
  async #extend(message) {
    try {
      await message.touch({ lease: this.#leaseS }); // on the connection that leased it; re-arms
    } catch (error) {
      if (this.#held.has(message) && !(error instanceof ConnectionLost)) {
        this.#onError(/** @type {Error} */ (error), message);
      }
    }
  }

  /** @param {Message} message */
  #forget(message) {
    if (!this.#held.has(message)) return;
    clearTimeout(this.#held.get(message));
    this.#held.delete(message);
    const index = this.#buffer.indexOf(message);
    if (index !== -1) this.#buffer.splice(index, 1);
    this.#wake?.();
    this.#wake = null;
  }

  /**
   * Stops the consumer because of an error (an `onError` that threw); the
   * iterator throws it.
   * @param {unknown} error
   */
  #fail(error) {
    this.#failure ??= error;
    this.#stop();
  }

  #stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#cancelGet.abort(); // the CANCEL goes out before the NACKs below
    this.#resolveStop(STOPPED);
    for (const message of this.#buffer.splice(0)) this.release(message);
  }
}

/**
 * Runs `handler` on every message of `queue`, up to `concurrency` at once,
 * until `signal` aborts. A handler that resolves gets its message acked; one
 * that rejects (or throws) gets it nacked with `backoff(attempts)` seconds of
 * delay (no delay once the worker is stopping). A handler may ack or nack the
 * message itself. Leases are extended while handlers run.
 *
 * Resolves when stopped and every running handler has finished; rejects if
 * the consumer fails, after running handlers finish: `ConnectFailed` once a
 * lost connection could not be re-established within `reconnectTimeout`
 * (`ConnectionLost` at once with `reconnect: false`).
 *
 * @param {Client} client
 * @param {string} queue
 * @param {Handler} handler
 * @param {WorkerOptions} [options]
 * @returns {Promise<void>}
 */
export async function runWorker(client, queue, handler, options) {
  options = checkOptions(options, WORKER_OPTIONS, "runWorker()");
  const { concurrency = 1, lease, wait, signal, backoff = defaultBackoff, reconnect = true } = options;
  const onError = options.onError ?? warn;
  const stop = new AbortController();
  const stopOnAbort = () => stop.abort(signal?.reason);
  if (signal?.aborted) stopOnAbort();
  else signal?.addEventListener("abort", stopOnAbort, { once: true });

  const consumer = new Consumer(client, queue, {
    concurrency,
    lease,
    wait,
    signal: stop.signal,
    extendLeases: true,
    onError,
    reconnect,
  });
  /** @type {Set<Promise<void>>} */
  const running = new Set();

  /** @param {Message} message */
  const handle = async (message) => {
    let failure;
    try {
      await handler(message, { signal: stop.signal });
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      if (!isStopError(failure, stop.signal)) onError(failure, message);
    }
    if (message.settled) return;
    if (failure !== undefined && stop.signal.aborted) {
      consumer.release(message);
      return;
    }
    try {
      if (failure === undefined) await message.ack();
      else await message.nack({ delay: backoff(message.attempts) });
    } catch (error) {
      if (!(error instanceof ConnectionLost)) onError(/** @type {Error} */ (error), message);
    }
  };

  /** @type {unknown} an error thrown by `onError` stops the worker */
  let fatal;
  try {
    for await (const message of consumer) {
      const task = handle(message).catch((error) => {
        fatal ??= error;
        stop.abort(error);
      });
      running.add(task);
      task.finally(() => running.delete(task));
    }
  } catch (error) {
    stop.abort(error);
    throw error;
  } finally {
    signal?.removeEventListener("abort", stopOnAbort);
    await Promise.all(running);
    await consumer.stop(); // its GET was cancelled: this takes a round trip, not `wait`
  }
  if (fatal !== undefined) throw fatal;
}

/**
 * True for the errors that end a connection a consumer may dial again: lost,
 * or a broker shutting down. Not a failed (re)connect: that outage is over.
 * @param {unknown} error
 */
function endsTheConnection(error) {
  if (error instanceof ConnectFailed) return false;
  return error instanceof ConnectionLost || error instanceof ShuttingDown;
}

/**
 * True for the error a handler throws because the worker is stopping.
 * @param {Error} error
 * @param {AbortSignal} signal
 */
function isStopError(error, signal) {
  return signal.aborted && (error === signal.reason || error.name === "AbortError");
}

/**
 * 0.5 s, 1 s, 2 s, ... capped at 60 s, each scaled by a random 0.75 to 1.25.
 * @param {number} attempts
 */
export function defaultBackoff(attempts) {
  const base = Math.min(0.5 * 2 ** Math.max(attempts - 1, 0), 60);
  return base * (0.75 + Math.random() / 2);
}

/**
 * @param {Error} error
 * @param {Message} message
 */
function warn(error, message) {
  const code = error instanceof WonderQError ? ` [${error.code}]` : "";
  process.emitWarning(`message ${message.id} on ${message.queue}: ${error.message}${code}`, {
    type: "WonderQWorkerWarning",
  });
}

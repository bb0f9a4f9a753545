/**
 * When to dial again after a lost or refused connection, when to give up, and what to say.
 *
 * Owns: the reconnect schedule shared by the client (`reconnect: true`) and
 * its consumers (backoff between attempts, 50 ms doubling to 2 s, bounded in
 * total by `reconnectTimeout`), and the warning emitted for each failed
 * attempt and each reconnect (`process.emitWarning`, type
 * `WonderQReconnectWarning`).
 *
 * Must never: touch a socket, sleep or read a clock (callers pass `now`), or
 * retry a request: only dialing is retried.
 */

import { ConnectFailed } from "./errors.js";

export const FIRST_DELAY_MS = 50;
export const MAX_DELAY_MS = 2_000;
export const DEFAULT_RECONNECT_TIMEOUT_MS = 30_000;

/** One outage (or a first connect that may retry): the attempts made, and their deadline. */
export class Redial {
  #first;
  #delayMs = FIRST_DELAY_MS;

  /**
   * @param {string} where "host:port"
   * @param {{now: number, budgetMs: number, first?: boolean}} options
   */
  constructor(where, { now, budgetMs, first = false }) {
    this.where = where;
    this.budgetMs = budgetMs;
    this.giveUpAt = now + budgetMs;
    this.attempts = 0;
    this.#first = first;
  }

  /**
   * Records a failed attempt; returns the milliseconds to wait before the next
   * one, or throws `ConnectFailed` once that would start after `giveUpAt`.
   *
   * @param {Error} error why the attempt (or the connection it made) failed
   * @param {number} now milliseconds, as `Date.now()`
   * @returns {number}
   */
  failed(error, now) {
    this.attempts += 1;
    const delayMs = this.#delayMs;
    if (now + delayMs > this.giveUpAt) {
      throw new ConnectFailed(
        `${error.message} (gave up reconnecting after ${this.attempts} attempts in ${this.budgetMs / 1000} s)`,
        undefined,
        { cause: error },
      );
    }
    this.#delayMs = Math.min(delayMs * 2, MAX_DELAY_MS);
    const verb = this.#first ? "connecting to" : "reconnecting to";
    warn(`${verb} ${this.where}: attempt ${this.attempts} failed (${error.message}); trying again in ${delayMs / 1000} s`);
    return delayMs;
  }

  /** Says so, unless it was a first connect at the first attempt. */
  succeeded() {
    if (this.#first && this.attempts === 0) return;
    warn(`${this.#first ? "connected to" : "reconnected to"} ${this.where} (attempt ${this.attempts + 1})`);
  }
}

/** @param {string} text */
function warn(text) {
  process.emitWarning(text, { type: "WonderQReconnectWarning" });
}

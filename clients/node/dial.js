/**
 * Opening a client's connection: dial once (connect, then AUTH when there is a
 * token), or dial until it works with the backoff of one outage (`Redial`).
 *
 * Owns: what one connection attempt is, and retrying attempts (never requests).
 *
 * Must never: retry a failure dialing again cannot fix (a wrong token), or
 * keep a connection whose AUTH failed.
 */

import { setTimeout as sleep } from "node:timers/promises";

import { Connection, DEFAULT_HOST, DEFAULT_PORT } from "./connection.js";
import { ConnectionLost } from "./errors.js";
import { DEFAULT_RECONNECT_TIMEOUT_MS, Redial } from "./reconnect.js";

/** @typedef {import("./client.js").ConnectOptions} ConnectOptions */

/**
 * One connection, authenticated if there is a token.
 * @param {ConnectOptions} settings
 */
export async function dial(settings) {
  const connection = await Connection.open(settings);
  if (settings.token !== undefined) {
    try {
      await connection.request({ op: "AUTH", token: settings.token });
    } catch (error) {
      connection.destroy();
      throw error;
    }
  }
  return connection;
}

/**
 * Dials until it works, waiting `redial`'s backoff between attempts; rejects
 * with `ConnectFailed` once `redial` gives up, or with `ConnectionLost` when
 * `signal` (the client's close) aborts.
 * @param {ConnectOptions} settings
 * @param {Redial} redial
 * @param {AbortSignal} [signal]
 */
export async function dialWithBackoff(settings, redial, signal) {
  for (;;) {
    try {
      const connection = await dial(settings);
      redial.succeeded();
      return connection;
    } catch (error) {
      if (!(error instanceof ConnectionLost)) throw error; // e.g. Unauthorized: dialing again will not help
      const delayMs = redial.failed(error, Date.now());
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        throw new ConnectionLost("the client is closed", undefined, { cause: error });
      }
    }
  }
}

/**
 * A new outage of the client these settings connect.
 * @param {ConnectOptions} settings
 * @param {{first?: boolean}} [options]
 */
export function outage(settings, { first = false } = {}) {
  const where = `${settings.host ?? DEFAULT_HOST}:${settings.port ?? DEFAULT_PORT}`;
  const budgetMs = settings.reconnectTimeout ?? DEFAULT_RECONNECT_TIMEOUT_MS;
  return new Redial(where, { now: Date.now(), budgetMs, first });
}

/**
 * Test support: a real broker per test file, and bounded waits.
 *
 * The broker is `$WONDERQ_BIN serve --port 0` (default `wonderq` on PATH),
 * ready once it prints `listening on HOST:PORT` on stdout.
 * (`node --test test/` also loads this file; it defines no tests.)
 */

import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";

export const WONDERQ_BIN = process.env.WONDERQ_BIN ?? "wonderq";
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Rejects with a clear message if `promise` does not settle within `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what what is being waited for
 * @returns {Promise<T>}
 */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A queue name no other test uses. */
export function uniqueQueue(prefix = "t") {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/**
 * A promise with its resolve function, for awaiting an event in a test.
 * @template [T=void]
 */
export function deferred() {
  /** @type {(value: T) => void} */
  let resolve = () => {};
  /** @type {(error: unknown) => void} */
  let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The options `wonderq serve --help` lists (e.g. "--token"), or null if the
 * binary cannot be run.
 * @returns {Set<string> | null}
 */
export function serveFlags() {
  const result = spawnSync(WONDERQ_BIN, ["serve", "--help"], { encoding: "utf8", timeout: 15_000 });
  if (result.error || result.status !== 0) return null;
  return new Set(`${result.stdout}${result.stderr}`.match(/--[a-z][a-z0-9-]*/g) ?? []);
}

/**
 * @typedef {object} Broker
 * @property {string} host
 * @property {number} port
 * @property {import("node:child_process").ChildProcess} process
 * @property {() => string} output everything the broker printed so far
 * @property {() => Promise<void>} stop SIGTERM, then SIGKILL if it lingers
 * @property {() => Promise<void>} kill SIGKILL, at once
 */

/**
 * Starts a broker on a free port and resolves once it listens.
 * @param {string[]} [args] extra arguments after `serve --port 0`
 * @returns {Promise<Broker>}
 */
export async function startBroker(args = []) {
  // --http-port 0: a restart on a given --port would otherwise bind the fixed HTTP port 7879
  const child = spawn(WONDERQ_BIN, ["serve", "--port", "0", "--http-port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const listening = deferred();
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text) => {
    output += text;
  });
  child.stdout.on("data", (text) => {
    output += text;
    const match = /listening on (\S+):(\d+)/.exec(output);
    if (match) listening.resolve({ host: match[1], port: Number(match[2]) });
  });
  child.once("error", (error) => listening.reject(error));
  child.once("exit", (code, signal) => {
    listening.reject(new Error(`broker exited (${code ?? signal}) before listening:\n${output}`));
  });

  /** @param {NodeJS.Signals} signal */
  const end = async (signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  try {
    const { host, port } = await within(listening.promise, READY_TIMEOUT_MS, `${WONDERQ_BIN} to listen`);
    return {
      host,
      port,
      process: child,
      output: () => output,
      stop: () => end("SIGTERM"),
      kill: () => end("SIGKILL"),
    };
  } catch (error) {
    await end("SIGKILL");
    throw error;
  }
}

// Why message keys matter: many workers doing read-modify-write on shared
// counters. Each message says "add one to counter C". A worker reads C from a
// shared store, waits a little (the slow part of real work), and writes C + 1.
//
// Without keys, two workers often hold messages for the same counter at once:
// both read the same value and one increment is lost. With `key: C`, the
// broker never leases two messages of the same counter at once, so every
// increment lands. The demo runs both and prints them side by side.
//
//   node examples/keyed-counter.js [--host 127.0.0.1] [--port 7878]

import { pathToFileURL } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";

import { connect } from "wonderq";

/** A shared store whose reads and writes take a few milliseconds. */
class SlowStore {
  /** @type {Map<string, number>} */
  #values = new Map();

  /** @param {string} name */
  async read(name) {
    await delay(1 + Math.random() * 4);
    return this.#values.get(name) ?? 0;
  }

  /** @param {string} name @param {number} value */
  async write(name, value) {
    await delay(1 + Math.random() * 4);
    this.#values.set(name, value);
  }
}

/**
 * Puts `counters * increments` increments on a fresh queue and lets `workers`
 * workers (one connection each) apply them to a fresh store.
 *
 * @param {{host?: string, port?: number, keyed: boolean, counters: number, increments: number, workers: number}} options
 * @returns {Promise<Map<string, number>>} counter -> final value
 */
export async function runCounters({ host, port, keyed, counters, increments, workers }) {
  const store = new SlowStore();
  const queue = `counters-${keyed ? "keyed" : "unkeyed"}-${process.pid}-${Date.now()}`;
  const names = Array.from({ length: counters }, (_, n) => `counter-${n}`);
  const total = counters * increments;

  const producer = await connect({ host, port });
  const items = [];
  for (let round = 0; round < increments; round += 1) {
    for (const name of names) items.push({ body: { counter: name }, ...(keyed ? { key: name } : {}) });
  }
  await producer.putMany(queue, items);
  await producer.close();

  const stop = new AbortController();
  let applied = 0;
  const clients = await Promise.all(Array.from({ length: workers }, () => connect({ host, port })));
  await Promise.all(
    clients.map((client) =>
      client.runWorker(
        queue,
        async (message) => {
          const { counter } = /** @type {{counter: string}} */ (message.body);
          const value = await store.read(counter);
          await store.write(counter, value + 1);
          applied += 1;
          if (applied === total) stop.abort();
        },
        { concurrency: 2, signal: stop.signal },
      ),
    ),
  );
  await Promise.all(clients.map((client) => client.close()));

  const finals = await Promise.all(names.map(async (name) => /** @type {[string, number]} */ ([name, await store.read(name)])));
  return new Map(finals);
}

/**
 * Runs the counters without and with keys.
 * @param {{host?: string, port?: number, counters?: number, increments?: number, workers?: number}} [options]
 */
export async function runKeyedCounterDemo({ host, port, counters = 5, increments = 20, workers = 8 } = {}) {
  const common = { host, port, counters, increments, workers };
  const withoutKeys = await runCounters({ ...common, keyed: false });
  const withKeys = await runCounters({ ...common, keyed: true });
  return { expected: increments, withoutKeys, withKeys };
}

/** @param {Awaited<ReturnType<typeof runKeyedCounterDemo>>} result */
export function formatTable({ expected, withoutKeys, withKeys }) {
  const rows = [["counter", "expected", "without keys", "with keys"]];
  let sums = [0, 0, 0];
  for (const [name, unkeyed] of withoutKeys) {
    const keyed = withKeys.get(name) ?? 0;
    rows.push([name, String(expected), String(unkeyed), String(keyed)]);
    sums = [sums[0] + expected, sums[1] + unkeyed, sums[2] + keyed];
  }
  rows.push(["total", ...sums.map(String)]);
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  return rows.map((row) => row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]) : cell.padStart(widths[col]))).join("  ")).join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7878" },
    },
  });
  const result = await runKeyedCounterDemo({ host: values.host, port: Number(values.port) });
  console.log(formatTable(result));
}

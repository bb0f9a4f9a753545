// The examples: the keyed-counter demo's outcome, and producer + worker scripts.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { connect } from "../index.js";
import { formatTable, runKeyedCounterDemo } from "../examples/keyed-counter.js";
import { deferred, startBroker, uniqueQueue, within } from "./helpers.js";

/** @type {import("./helpers.js").Broker} */
let broker;

before(async () => {
  broker = await startBroker();
});
after(async () => {
  await broker?.stop();
});

test("keyed counters: exact with keys, lost updates without", { timeout: 60_000 }, async () => {
  const result = await within(
    runKeyedCounterDemo({ host: broker.host, port: broker.port, counters: 4, increments: 25, workers: 8 }),
    50_000,
    "the demo",
  );
  const table = formatTable(result);
  for (const value of result.withKeys.values()) assert.equal(value, 25, table);
  const unkeyedTotal = [...result.withoutKeys.values()].reduce((a, b) => a + b, 0);
  assert.ok(unkeyedTotal < 100, `without keys no update was lost (unlikely, but then the demo shows nothing):\n${table}`);
  assert.match(table, /counter\s+expected\s+without keys\s+with keys/);
  assert.match(table, /total\s+100\s+\d+\s+100$/);
});

/**
 * @param {string} script path under examples/
 * @param {string[]} args
 */
function runExample(script, args) {
  const path = fileURLToPath(new URL(`../examples/${script}`, import.meta.url));
  const child = spawn(process.execPath, [path, "--port", String(broker.port), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (text) => {
    output += text;
  });
  child.stderr.setEncoding("utf8").on("data", (text) => {
    output += text;
  });
  return { child, output: () => output };
}

test("examples/producer.js then examples/worker.js drain a queue", { timeout: 30_000 }, async () => {
  const queue = uniqueQueue("example");
  const producer = runExample("producer.js", ["--queue", queue, "--count", "12"]);
  const [code] = await within(once(producer.child, "exit"), 10_000, "the producer to exit");
  assert.equal(code, 0, producer.output());
  assert.match(producer.output(), /queued 12 jobs/);

  const worker = runExample("worker.js", ["--queue", queue]);
  const client = await connect({ host: broker.host, port: broker.port });
  try {
    const allDone = deferred();
    worker.child.stdout.on("data", () => {
      if ((worker.output().match(/^done /gm) ?? []).length === 12) allDone.resolve();
    });
    worker.child.once("exit", () => allDone.reject(new Error(`worker exited early:\n${worker.output()}`)));
    await within(allDone.promise, 20_000, "the worker to do all 12 jobs");
    const exited = once(worker.child, "exit");
    worker.child.kill("SIGTERM");
    const [workerCode] = await within(exited, 10_000, "the worker to stop on SIGTERM");
    assert.equal(workerCode, 0, worker.output());
    assert.match(worker.output(), /worker stopped/);
    const { queues } = await client.stats(queue);
    assert.equal(queues[queue].acked, 12);
  } finally {
    worker.child.kill("SIGKILL");
    await client.close();
  }
});

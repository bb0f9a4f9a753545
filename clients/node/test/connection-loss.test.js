// Killing the broker mid-call: every pending call rejects with ConnectionLost.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionLost, connect } from "../index.js";
import { deferred, startBroker, uniqueQueue, within } from "./helpers.js";

test("the broker dying rejects every pending call with ConnectionLost", { timeout: 30_000 }, async () => {
  const broker = await startBroker();
  try {
    const client = await connect({ host: broker.host, port: broker.port });
    const queue = uniqueQueue();
    // Waiting GETs stay pending until the broker dies; the puts race the kill.
    const waiting = Array.from({ length: 5 }, () => client.get(queue.concat("-empty"), { wait: 60 }));
    const puts = Array.from({ length: 500 }, (_, n) => client.put(queue, n));
    const settled = Promise.allSettled([...waiting, ...puts]);
    await within(puts[0], 5_000, "the first put");
    await broker.kill();

    const results = await within(settled, 10_000, "every call to settle");
    for (const result of results.slice(0, waiting.length)) {
      assert.equal(result.status, "rejected");
      assert.ok(result.reason instanceof ConnectionLost, String(result.reason));
    }
    for (const result of results) {
      if (result.status === "rejected") assert.ok(result.reason instanceof ConnectionLost, String(result.reason));
    }
    await within(client.closed, 5_000, "the client to see the close");
    assert.equal(client.isOpen, false);
    await assert.rejects(client.ping(), ConnectionLost);
    await client.close();
  } finally {
    await broker.kill();
  }
});

test("a worker without reconnect whose broker dies rejects with ConnectionLost after its handlers stop", { timeout: 30_000 }, async () => {
  const broker = await startBroker();
  try {
    const client = await connect({ host: broker.host, port: broker.port });
    const queue = uniqueQueue();
    await client.put(queue, "in progress");
    const started = deferred();
    let handlerSawAbort = false;
    const worker = client.runWorker(
      queue,
      (_message, { signal }) =>
        new Promise((_resolve, reject) => {
          started.resolve();
          signal.addEventListener(
            "abort",
            () => {
              handlerSawAbort = true;
              reject(signal.reason);
            },
            { once: true },
          );
        }),
      { concurrency: 2, onError: () => {}, reconnect: false },
    );
    const outcome = worker.then(
      () => assert.fail("runWorker resolved"),
      (error) => error,
    );
    await within(started.promise, 5_000, "the handler to start");
    await broker.kill();
    const error = await within(outcome, 5_000, "runWorker to reject");
    assert.ok(error instanceof ConnectionLost, String(error));
    assert.equal(handlerSawAbort, true);
  } finally {
    await broker.kill();
  }
});

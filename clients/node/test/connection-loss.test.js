// Killing the broker mid-call: every pending call rejects with ConnectionLost.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectionLost, connect } from "../index.js";
import { startBroker, uniqueQueue, within } from "./helpers.js";

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

// Producers (`reconnect: true`) and workers (reconnect on by default) dial again when the
// broker restarts, with backoff, saying so (WonderQReconnectWarning); the call in flight
// still rejects; a worker's leases come back to the queue; and it all gives up after
// `reconnectTimeout`. Real brokers, restarted on the same port.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";

import { ConnectFailed, ConnectionLost, connect } from "../index.js";
import { deferred, startBroker, uniqueQueue, within } from "./helpers.js";

const T = { timeout: 60_000 };

/** @type {string[]} */
let warnings = [];
/** @param {Error} warning */
const onWarning = (warning) => {
  if (warning.name === "WonderQReconnectWarning") warnings.push(warning.message);
};
beforeEach(() => {
  warnings = [];
  process.on("warning", onWarning);
});
afterEach(() => {
  process.off("warning", onWarning);
});

test("a producer with reconnect: the call in flight rejects, the next one waits for the broker to be back", T, async () => {
  const first = await startBroker();
  const { host, port } = first;
  const client = await connect({ host, port, reconnect: true });
  let second;
  try {
    const queue = uniqueQueue();
    await client.put(queue, "before");
    const inFlight = client.get(queue.concat("-empty"), { wait: 30 }).then(
      () => assert.fail("resolved"),
      (e) => e,
    );
    await client.ping();
    await first.kill();
    assert.ok((await within(inFlight, 10_000, "the call in flight")) instanceof ConnectionLost);
    const after = client.put(queue, "after"); // dials, refused, backs off, dials again...
    second = await startBroker(["--port", String(port)]);
    const id = await within(after, 15_000, "the put once the broker is back");
    assert.equal((await client.info(id)).state, "ready");
    assert.ok(warnings.some((w) => w.startsWith(`reconnecting to ${host}:${port}: attempt 1 failed (cannot connect`)), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.startsWith(`reconnected to ${host}:${port} (attempt `)), warnings.join("\n"));
  } finally {
    await client.close();
    await first.kill();
    await second?.stop();
  }
});

test("a worker rides out a broker restart by default; the message it held comes back to it", T, async () => {
  const dir = await mkdtemp(join(tmpdir(), "wonderq-node-"));
  const first = await startBroker(["--data-dir", dir]);
  const { host, port } = first;
  const client = await connect({ host, port }); // the client itself does not reconnect
  let second;
  try {
    const queue = uniqueQueue();
    await client.put(queue, "resize 42");
    const firstTry = deferred();
    const secondTry = deferred();
    const letFirstFinish = deferred();
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      async (message) => {
        if (message.attempts === 1) {
          firstTry.resolve();
          await letFirstFinish.promise; // meanwhile the broker restarts: this lease is lost
        } else secondTry.resolve(message.attempts);
      },
      { concurrency: 2, wait: 1, signal: stop.signal, onError: () => {} },
    );
    await within(firstTry.promise, 10_000, "the first attempt");
    await first.stop(); // graceful: the lease is released, the message kept on disk
    second = await startBroker(["--data-dir", dir, "--port", String(port)]);
    assert.equal(await within(secondTry.promise, 20_000, "the second attempt, after the restart"), 2);
    letFirstFinish.resolve(); // its ack goes on the lost connection: ConnectionLost, not applied
    stop.abort();
    await within(worker, 10_000, "the worker to stop");
    const observer = await connect({ host, port });
    try {
      const stats = (await observer.stats(queue)).queues[queue];
      assert.deepEqual([stats.acked, stats.ready, stats.leased], [1, 0, 0]);
    } finally {
      await observer.close();
    }
    assert.ok(warnings.some((w) => w.startsWith(`lost the connection while consuming "${queue}"`)), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.startsWith(`reconnected to ${host}:${port}`)), warnings.join("\n"));
  } finally {
    await client.close();
    await first.kill();
    await second?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a worker gives up once reconnectTimeout has passed", T, async () => {
  const broker = await startBroker();
  const client = await connect({ host: broker.host, port: broker.port, reconnectTimeout: 500 });
  try {
    const worker = client.runWorker(uniqueQueue(), async () => {}, { wait: 1 }).then(
      () => assert.fail("resolved"),
      (e) => e,
    );
    await client.ping();
    await broker.kill();
    const error = await within(worker, 10_000, "the worker to give up");
    assert.ok(error instanceof ConnectFailed, String(error));
    assert.match(error.message, /gave up reconnecting after \d+ attempts in 0\.5 s/);
    assert.ok(error.cause instanceof ConnectionLost);
  } finally {
    await client.close();
    await broker.kill();
  }
});

test("consume reconnects by default", T, async () => {
  const first = await startBroker();
  const { host, port } = first;
  const client = await connect({ host, port });
  let second;
  try {
    const queue = uniqueQueue();
    const stop = new AbortController();
    const iterator = client.consume(queue, { wait: 1, signal: stop.signal })[Symbol.asyncIterator]();
    const next = iterator.next();
    await client.ping();
    await first.kill();
    second = await startBroker(["--port", String(port)]);
    const producer = await connect({ host, port });
    try {
      await producer.put(queue, "after the restart");
      const { value } = await within(next, 20_000, "a message after the restart");
      assert.equal(value.body, "after the restart");
      await value.ack();
    } finally {
      await producer.close();
    }
    stop.abort();
    await iterator.return?.();
  } finally {
    await client.close();
    await first.kill();
    await second?.stop();
  }
});

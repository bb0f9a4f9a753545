// consume() and runWorker() against a real broker: concurrency, retries with
// backoff, dead letters, lease extension, and stopping on an AbortSignal.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { connect } from "../index.js";
import { deferred, startBroker, uniqueQueue, within } from "./helpers.js";

const T = { timeout: 30_000 };

describe("consume and runWorker", () => {
  /** @type {import("./helpers.js").Broker} */
  let broker;
  /** @type {import("../index.js").Client[]} */
  const clients = [];

  const newClient = async () => {
    const client = await connect({ host: broker.host, port: broker.port });
    clients.push(client);
    return client;
  };

  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await broker?.stop();
  });

  test("consume holds at most `concurrency` unsettled messages", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    await client.putMany(
      queue,
      Array.from({ length: 10 }, (_, n) => ({ body: n })),
    );
    const consumer = client.consume(queue, { concurrency: 3, lease: 30 });
    const iterator = consumer[Symbol.asyncIterator]();
    const held = [];
    for (let i = 0; i < 3; i += 1) held.push((await within(iterator.next(), 5_000, "a message")).value);
    assert.deepEqual(
      held.map((m) => m.body),
      [0, 1, 2],
    );
    let fourthArrived = false;
    const fourth = iterator.next().then((result) => {
      fourthArrived = true;
      return result;
    });
    await client.ping(); // a round trip: the consumer had time to (wrongly) fetch more
    assert.equal(fourthArrived, false);
    assert.equal((await client.stats(queue)).queues[queue].leased, 3);
    await held.shift().ack();
    held.push((await within(fourth, 5_000, "a message after an ack")).value);
    assert.equal(held[2].body, 3);
    await iterator.return?.();
    assert.equal((await client.stats(queue)).queues[queue].leased, 3);
    await Promise.all(held.map((m) => m.ack()));
    assert.equal((await client.stats(queue)).queues[queue].ready, 6);
  });

  test("for await over consume, with break", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    await client.putMany(queue, [{ body: "a" }, { body: "b" }, { body: "c" }]);
    const seen = [];
    for await (const message of client.consume(queue, { concurrency: 2 })) {
      seen.push(message.body);
      await message.ack();
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["a", "b", "c"]);
    const stats = (await client.stats(queue)).queues[queue];
    assert.equal(stats.leased + stats.ready, 0);
  });

  test("aborting consume ends the loop at once and cancels its waiting GET", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    const stop = new AbortController();
    await client.pause(queue); // a GET makes no queue (protocol.md 3): make one to read its stats
    await client.resume(queue);
    const consumer = client.consume(queue, { wait: 30, signal: stop.signal });
    const loop = (async () => {
      for await (const message of consumer) assert.fail(`unexpected ${message.id}`);
    })();
    await client.ping(); // the consumer's GET is now waiting on the server
    assert.equal((await client.stats(queue)).queues[queue].waiting_consumers, 1);
    stop.abort();
    await within(loop, 1_000, "the loop to end (the GET waits 30 s)");
    await within(consumer.stop(), 1_000, "stop() (it does not wait out the GET)");
    assert.equal((await client.stats(queue)).queues[queue].waiting_consumers, 0);
    const id = await client.put(queue, "late");
    const info = await client.info(id);
    assert.deepEqual([info.state, info.attempts], ["ready", 0], "never leased to the stopped consumer");
  });

  test("runWorker acks on success, retries with backoff, reports errors", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    const id = await client.put(queue, "flaky");
    const attemptsAt = [];
    const backoffs = [];
    const errors = [];
    const done = deferred();
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      async (message) => {
        attemptsAt.push([message.attempts, performance.now()]);
        if (message.attempts < 3) throw new Error(`fail ${message.attempts}`);
        done.resolve();
      },
      {
        concurrency: 2,
        signal: stop.signal,
        backoff: (attempts) => {
          backoffs.push(attempts);
          return 0.3;
        },
        onError: (error, message) => errors.push([error.message, message.id]),
      },
    );
    await within(done.promise, 10_000, "the third attempt");
    stop.abort();
    await within(worker, 5_000, "the worker to stop");
    assert.deepEqual(
      attemptsAt.map(([a]) => a),
      [1, 2, 3],
    );
    assert.deepEqual(backoffs, [1, 2]);
    for (let i = 1; i < attemptsAt.length; i += 1) {
      const gapMs = attemptsAt[i][1] - attemptsAt[i - 1][1];
      assert.ok(gapMs >= 250, `attempt ${i + 1} came ${gapMs} ms after the previous one`);
    }
    assert.deepEqual(errors, [
      ["fail 1", id],
      ["fail 2", id],
    ]);
    assert.equal((await client.info(id)).state, "acked");
  });

  test("runWorker: a message that keeps failing ends in <queue>.dead", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    const id = await client.put(queue, "poison", { maxAttempts: 2 });
    const secondAttempt = deferred();
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      async (message) => {
        if (message.attempts === 2) secondAttempt.resolve();
        throw new Error("always");
      },
      { signal: stop.signal, backoff: () => 0, onError: () => {} },
    );
    await within(secondAttempt.promise, 10_000, "the second attempt");
    stop.abort();
    await within(worker, 5_000, "the worker to stop");
    const info = await client.info(id);
    assert.equal(info.state, "dead");
    assert.equal(info.queue, `${queue}.dead`);
  });

  test("runWorker extends the lease of a handler that outlives it", T, async () => {
    const client = await newClient();
    const observer = await newClient();
    const queue = uniqueQueue();
    const id = await client.put(queue, "slow");
    const seen = [];
    const errors = [];
    const done = deferred();
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      async (message) => {
        // The work itself takes 2.5 leases; midway the lease must still be ours.
        await delay(1_500);
        seen.push(await observer.info(message.id));
        seen.push(await observer.get(queue));
        await delay(1_000);
        done.resolve(message.attempts);
      },
      { lease: 1, signal: stop.signal, onError: (error) => errors.push(error) },
    );
    assert.equal(await within(done.promise, 10_000, "the slow handler"), 1);
    stop.abort();
    await within(worker, 5_000, "the worker to stop");
    assert.equal(seen[0].state, "leased");
    assert.equal(seen[0].attempts, 1);
    assert.deepEqual(seen[1], []);
    assert.deepEqual(errors, []);
    assert.equal((await client.info(id)).state, "acked");
  });

  /**
   * Starts a worker whose handlers wait for the stop signal, on two messages.
   * @param {import("../index.js").Client} client
   * @param {number} concurrency
   * @param {number} [wait]
   */
  async function workerOnTwoStuckMessages(client, concurrency, wait = undefined) {
    const queue = uniqueQueue();
    const ids = await client.putMany(queue, [{ body: 1 }, { body: 2 }]);
    const started = [];
    const allStarted = deferred();
    const errors = [];
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      (message, { signal }) =>
        new Promise((_resolve, reject) => {
          started.push(message.id);
          if (started.length === 2) allStarted.resolve();
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }),
      { concurrency, wait, signal: stop.signal, backoff: () => 60, onError: (error) => errors.push(error) },
    );
    await within(allStarted.promise, 5_000, "both handlers to start");
    return { queue, ids, errors, stop, worker };
  }

  test("aborting runWorker stops handlers through their signal and releases their messages", T, async () => {
    const client = await newClient();
    const { queue, ids, errors, stop, worker } = await workerOnTwoStuckMessages(client, 2);
    stop.abort();
    await within(worker, 3_000, "the worker to stop");
    assert.deepEqual(errors, []);
    for (const id of ids) {
      const info = await client.info(id);
      assert.equal(info.state, "ready", `released at once, not after the 60 s backoff: ${JSON.stringify(info)}`);
      assert.equal(info.attempts, 1);
    }
    assert.equal((await client.stats(queue)).queues[queue].leased, 0);
  });

  test("aborting runWorker during a long poll releases its messages at once, not re-taken by its GET", T, async () => {
    const client = await newClient();
    // A third slot keeps a GET waiting (wait 30 s) on the server when we abort.
    const { queue, ids, errors, stop, worker } = await workerOnTwoStuckMessages(client, 3, 30);
    await client.ping(); // the third slot's GET is now on the server
    assert.equal((await client.stats(queue)).queues[queue].waiting_consumers, 1);
    stop.abort();
    await within(worker, 1_000, "the worker to stop and release, well before the GET's 30 s");
    assert.deepEqual(errors, []);
    const stats = (await client.stats(queue)).queues[queue];
    assert.deepEqual([stats.waiting_consumers, stats.ready, stats.leased], [0, 2, 0]);
    for (const id of ids) {
      const info = await client.info(id);
      assert.equal(info.state, "ready", JSON.stringify(info));
      assert.equal(info.attempts, 1, "never delivered to the stopped worker's GET");
    }
  });

  test("runWorker leaves alone a message the handler settled itself", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    const id = await client.put(queue, "self-service");
    const done = deferred();
    const errors = [];
    const stop = new AbortController();
    const worker = client.runWorker(
      queue,
      async (message) => {
        await message.nack({ delay: 60 });
        done.resolve();
      },
      { signal: stop.signal, onError: (error) => errors.push(error) },
    );
    await within(done.promise, 5_000, "the handler");
    stop.abort();
    await within(worker, 5_000, "the worker to stop");
    assert.deepEqual(errors, []);
    assert.equal((await client.info(id)).state, "delayed");
  });

  test("consume frees the slot of a message whose lease ran out unacked", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    const id = await client.put(queue, "forgotten");
    const iterator = client.consume(queue, { concurrency: 1, lease: 0.3, wait: 5 })[Symbol.asyncIterator]();
    const first = (await within(iterator.next(), 5_000, "the message")).value;
    assert.equal(first.attempts, 1);
    // Not acked: after its lease the server redelivers it, to this same consumer.
    const again = (await within(iterator.next(), 5_000, "the redelivery")).value;
    assert.equal(again.id, id);
    assert.equal(again.attempts, 2);
    await again.ack();
    await iterator.return?.();
  });

  test("runWorker rejects with the error an onError throws", T, async () => {
    const client = await newClient();
    const queue = uniqueQueue();
    await client.put(queue, "bad");
    const boom = new Error("onError gave up");
    const worker = client.runWorker(
      queue,
      () => {
        throw new Error("handler failed");
      },
      {
        backoff: () => 60,
        onError: () => {
          throw boom;
        },
      },
    );
    await within(assert.rejects(worker, boom), 5_000, "runWorker to reject");
  });

  test("an already aborted signal returns at once", T, async () => {
    const client = await newClient();
    await within(
      client.runWorker(uniqueQueue(), () => assert.fail("no message expected"), { signal: AbortSignal.abort() }),
      2_000,
      "runWorker",
    );
  });
});

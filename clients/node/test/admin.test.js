// The issue-13 calls against a real broker: idempotent PUT and its duplicate flag,
// headers (on messages, in info and peek, in workers), peek, delete, pause/resume,
// config, remove, redrive of chosen ids, and queues read page by page.

import assert from "node:assert/strict";
import net from "node:net";
import { describe, test } from "node:test";

import { NotFound, ProtocolViolation, QueueFull, connect } from "../index.js";
import { sharedBroker, uniqueQueue, within } from "./helpers.js";

const T = { timeout: 30_000 };
const TRACE = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };

describe("queue management against a broker", () => {
  const shared = sharedBroker();

  test("a put retried with its dedup id is stored once; putResult says so", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    const first = await client.putResult(queue, { to: "ann" }, { dedup: "order-981", headers: TRACE });
    assert.equal(first.duplicate, false);
    assert.deepEqual(await client.putResult(queue, { to: "ann" }, { dedup: "order-981" }), {
      id: first.id,
      duplicate: true,
    });
    assert.equal(await client.put(queue, "other", { dedup: "order-981" }), first.id);
    const batch = await client.putManyResult(queue, [
      { body: 1, dedup: "order-981" },
      { body: 2, dedup: "order-982" },
      { body: 3, dedup: "order-982" },
    ]);
    assert.equal(batch.ids[0], first.id);
    assert.equal(batch.ids[1], batch.ids[2]);
    assert.deepEqual(batch.duplicates, [0, 2]);
    assert.deepEqual(await client.putManyResult(queue, [{ body: "plain" }]).then((r) => r.duplicates), []);
    const messages = await client.get(queue, { max: 10 });
    assert.deepEqual(
      messages.map((m) => [m.body, m.headers]),
      [
        [{ to: "ann" }, TRACE],
        [2, {}],
        ["plain", {}],
      ],
    );
    assert.deepEqual(messages[0].toJSON().headers, TRACE);
    assert.equal("headers" in messages[1].toJSON(), false);
  });

  test("headers come back in info and peek; peek leases nothing", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    const id = await client.put(queue, "x", { headers: { "content-type": "text/plain" } });
    await client.put(queue, "later", { delay: 60 });
    assert.deepEqual((await client.info(id)).headers, { "content-type": "text/plain" });
    const all = await client.peek(queue);
    assert.equal(all.total, 2);
    assert.deepEqual(all.messages[0].headers, { "content-type": "text/plain" });
    const ready = await client.peek(queue, { state: "ready", limit: 1 });
    assert.deepEqual([ready.total, ready.messages.map((m) => m.id)], [1, [id]]);
    assert.equal((await client.stats(queue)).queues[queue].leased, 0);
    await assert.rejects(client.peek(uniqueQueue("none")), NotFound);
  });

  test("delete a queue, and with dead its dead letters", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    await client.putMany(queue, [{ body: 1 }, { body: 2 }]);
    const [held] = await client.get(queue);
    await client.put(`${queue}.dead`, "a dead letter");
    assert.equal(await client.delete(queue), 2);
    await assert.rejects(held.ack(), NotFound);
    assert.deepEqual(await client.queues({ prefix: queue }), [`${queue}.dead`]);
    await client.put(queue, 3);
    assert.equal(await client.delete(queue, { dead: true }), 2);
    assert.deepEqual(await client.queues({ prefix: queue }), []);
    await assert.rejects(client.delete(queue), NotFound);
  });

  test("pause holds deliveries, resume serves the waiting get", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    await client.pause(queue);
    await client.put(queue, "waits");
    assert.deepEqual(await client.get(queue), []);
    assert.equal((await client.stats(queue)).queues[queue].paused, true);
    const waiting = client.get(queue, { wait: 30 });
    await client.ping(); // the waiting GET reached the broker first: calls keep their order
    await client.resume(queue);
    const [message] = await within(waiting, 10_000, "the resumed get");
    assert.equal(message.body, "waits");
    await message.ack();
    await assert.rejects(client.resume(uniqueQueue("none")), NotFound);
  });

  test("config reads, sets and resets a queue's settings", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    await assert.rejects(client.config(queue), NotFound);
    const settings = await client.config(queue, { lease: 120, rate: 0.5 });
    assert.deepEqual(settings, { lease: 120, maxAttempts: 5, maxLength: null, rate: 0.5, dedupWindow: 300 });
    assert.deepEqual(await client.config(queue), settings);
    assert.deepEqual((await client.stats(queue)).queues[queue].settings, { lease: 120, rate: 0.5 });
    await client.putMany(queue, [{ body: 1 }, { body: 2 }]);
    assert.equal((await client.get(queue, { max: 10 })).length, 1); // one token in the bucket
    const changed = await client.config(queue, { rate: null, maxLength: 2 });
    assert.deepEqual([changed.rate, changed.maxLength, changed.lease], [null, 2, 120]);
    await assert.rejects(client.put(queue, 3), QueueFull);
  });

  test("remove chosen messages, redrive chosen dead letters", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    const [a, b, c] = await client.putMany(queue, [{ body: "a" }, { body: "b" }, { body: "c", delay: 60 }]);
    const [held] = await client.get(queue);
    assert.deepEqual(await client.remove(queue, [a, b, c, "ffff"]), {
      removed: 2,
      leased: [held.id],
      notFound: ["ffff"],
    });
    const poison = await client.put(queue, "poison", { maxAttempts: 1 });
    const [message] = await client.get(queue);
    assert.equal(message.id, poison);
    assert.deepEqual(await message.nack(), { dead: true });
    assert.deepEqual(await client.redrive(queue, [poison, "ffff"]), { redriven: 1, leased: [], notFound: ["ffff"] });
    assert.equal((await client.info(poison)).state, "ready");
    assert.deepEqual(await client.redrive(queue), { redriven: 0, leased: [], notFound: [] });
  });

  test("queues reads every page", T, async () => {
    const { client } = shared;
    const prefix = uniqueQueue("paged");
    const names = Array.from({ length: 1001 }, (_, n) => `${prefix}-${String(n).padStart(4, "0")}`);
    await Promise.all(names.map((name) => client.put(name, 1)));
    assert.deepEqual(await client.queues({ prefix }), names);
    assert.ok((await client.queues()).length >= 1001);
  });

  test("the worker helpers hand out the headers", T, async () => {
    const { client } = shared;
    const queue = uniqueQueue();
    await client.put(queue, "job", { headers: TRACE });
    const stop = new AbortController();
    /** @type {Record<string, string>[]} */
    const seen = [];
    await within(
      client.runWorker(
        queue,
        async (message) => {
          seen.push(message.headers);
          stop.abort();
        },
        { signal: stop.signal, wait: 1 },
      ),
      10_000,
      "the worker",
    );
    assert.deepEqual(seen, [TRACE]);
  });
});

test("a queues page that does not move on is a ProtocolViolation", T, async () => {
  const server = net.createServer((socket) => {
    let buffered = "";
    socket.on("data", (data) => {
      buffered += data;
      for (let at = buffered.indexOf("\n"); at >= 0; at = buffered.indexOf("\n")) {
        const request = JSON.parse(buffered.slice(0, at));
        buffered = buffered.slice(at + 1);
        // every page says the next one is after "a": a broker that never moves on
        socket.write(`${JSON.stringify({ ok: true, queues: ["a"], next: "a", rid: request.rid })}\n`);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  const fake = await connect({ host: "127.0.0.1", port });
  try {
    await assert.rejects(fake.queues(), (error) => {
      assert.ok(error instanceof ProtocolViolation);
      assert.match(error.message, /bad next page: "a"/);
      return true;
    });
  } finally {
    await fake.close().catch(() => undefined);
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(() => resolve(undefined)));
  }
});

// Every operation against a real broker, pipelining on one socket, and the
// mapping of the broker's error replies.

import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";

import {
  BadJson,
  BadRequest,
  ConnectionLost,
  LineTooLong,
  NotFound,
  NotLeased,
  TooLarge,
  UnknownOp,
  WonderQError,
  connect,
  errorFromReply,
} from "../index.js";
import { Connection } from "../connection.js";
import { startBroker, uniqueQueue, within } from "./helpers.js";

const T = { timeout: 30_000 };

describe("client against a broker", () => {
  /** @type {import("./helpers.js").Broker} */
  let broker;
  /** @type {import("../index.js").Client} */
  let client;

  before(async () => {
    broker = await startBroker();
    client = await connect({ host: broker.host, port: broker.port });
  });
  after(async () => {
    await client?.close();
    await broker?.stop();
  });

  test("put, get, ack round trip; ids are strings", T, async () => {
    const queue = uniqueQueue();
    const id = await client.put(queue, { task: "resize", image: 42 });
    assert.equal(typeof id, "string");
    const [message, ...rest] = await client.get(queue, { lease: 10 });
    assert.deepEqual(rest, []);
    assert.equal(message.id, id);
    assert.equal(message.queue, queue);
    assert.deepEqual(message.body, { task: "resize", image: 42 });
    assert.equal(message.attempts, 1);
    assert.equal(message.key, undefined);
    await message.ack();
    assert.equal(message.settled, true);
    assert.deepEqual(await client.get(queue), []);
    assert.equal((await client.info(id)).state, "acked");
  });

  test("put options map to the wire: key, priority, delay, maxAttempts", T, async () => {
    const queue = uniqueQueue();
    const late = await client.put(queue, "late", { delay: 60 });
    const low = await client.put(queue, "low", { priority: 5, key: "k1", maxAttempts: 3 });
    const high = await client.put(queue, "high", { priority: -5 });
    const info = await client.info(low);
    assert.equal(info.priority, 5);
    assert.equal(info.key, "k1");
    assert.equal(info.max_attempts, 3);
    assert.equal((await client.info(late)).state, "delayed");
    const messages = await client.get(queue, { max: 10 });
    assert.deepEqual(
      messages.map((m) => m.id),
      [high, low],
    );
    assert.equal(messages[1].key, "k1");
    await Promise.all(messages.map((m) => m.ack()));
  });

  test("putMany is one batch, ids in order; all or nothing", T, async () => {
    const queue = uniqueQueue();
    const ids = await client.putMany(queue, [{ body: "a" }, { body: "b", priority: -1 }, { body: { c: 3 }, key: "k" }]);
    assert.equal(ids.length, 3);
    assert.equal(new Set(ids).size, 3);
    await assert.rejects(client.putMany(queue, [{ body: "ok" }, { body: "bad", priority: 1.5 }]), BadRequest);
    const stats = await client.stats(queue);
    assert.equal(stats.queues[queue].ready, 3);
    const messages = await client.get(queue, { max: 10 });
    assert.deepEqual(
      messages.map((m) => m.body),
      ["b", "a", { c: 3 }],
    );
    const result = await client.ackMany([...messages.map((m) => m.id), "no-such-id"]);
    assert.equal(result.acked, 3);
    assert.deepEqual(result.notFound, ["no-such-id"]);
    assert.deepEqual(result.notLeased, []);
  });

  test("nack, nack with delay, touch, info", T, async () => {
    const queue = uniqueQueue();
    const id = await client.put(queue, "x");
    let [message] = await client.get(queue, { lease: 5 });
    await message.touch({ lease: 100 });
    const leased = await client.info(id);
    assert.equal(leased.state, "leased");
    assert.ok(/** @type {number} */ (leased.lease_left) > 50);
    assert.deepEqual(await message.nack(), { dead: false });
    [message] = await client.get(queue);
    assert.equal(message.attempts, 2);
    await message.nack({ delay: 60 });
    const delayed = await client.info(id);
    assert.equal(delayed.state, "delayed");
    assert.ok(/** @type {number} */ (delayed.delay_left) > 50);
    assert.deepEqual(await client.get(queue), []);
  });

  test("dead letters, redrive, purge, queues, stats, ping", T, async () => {
    const queue = uniqueQueue();
    await client.put(queue, "doomed", { maxAttempts: 1 });
    const [message] = await client.get(queue);
    assert.deepEqual(await message.nack(), { dead: true });
    assert.equal((await client.info(message.id)).state, "dead");
    const names = await client.queues();
    assert.ok(names.includes(queue) && names.includes(`${queue}.dead`), String(names));
    assert.deepEqual(names, [...names].sort());
    assert.equal((await client.stats(queue)).queues[queue].dead, 1);
    assert.deepEqual(await client.redrive(queue), { redriven: 1, leased: [], notFound: [] });
    assert.equal((await client.info(message.id)).state, "ready");
    await client.put(queue, "more", { delay: 60 });
    assert.equal(await client.purge(queue), 2);
    const { server, queues } = await client.stats();
    assert.equal(typeof server.version, "string");
    assert.ok(queue in queues);
    await client.ping();
  });

  test("1000 concurrent puts pipelined on one socket", T, async () => {
    const queue = uniqueQueue();
    const bodies = Array.from({ length: 1000 }, (_, n) => ({ n }));
    const ids = await within(
      Promise.all(bodies.map((body) => client.put(queue, body))),
      20_000,
      "1000 puts",
    );
    assert.equal(new Set(ids).size, 1000);
    assert.equal((await client.stats(queue)).queues[queue].ready, 1000);
    const messages = await client.get(queue, { max: 1000 });
    assert.deepEqual(
      messages.map((m) => m.body),
      bodies,
    );
    assert.deepEqual(
      messages.map((m) => m.id),
      ids,
    );
    const acks = await client.ackMany(ids);
    assert.equal(acks.acked, 1000);
    assert.equal(client.unmatchedReplies, 0);
  });

  test("a waiting get does not hold up later calls, and resolves on put", T, async () => {
    const queue = uniqueQueue();
    const other = uniqueQueue();
    await client.put(other, "to ack");
    const [toAck] = await client.get(other);
    const waiting = client.get(queue, { wait: 20 });
    let waitingDone = false;
    waiting.then(() => {
      waitingDone = true;
    });
    await within(toAck.ack(), 5_000, "the ack behind a waiting get");
    await within(client.ping(), 5_000, "a ping behind a waiting get");
    assert.equal(waitingDone, false);
    const id = await client.put(queue, "wake up");
    const [message] = await within(waiting, 5_000, "the waiting get to be served");
    assert.equal(message.id, id);
    await message.ack();
  });

  test("aborting a waiting get cancels it on the server", T, async () => {
    const queue = uniqueQueue();
    const stop = new AbortController();
    await client.pause(queue); // a GET makes no queue (protocol.md 3): make one to read its stats
    await client.resume(queue);
    const waiting = client.get(queue, { wait: 30, signal: stop.signal });
    await client.ping(); // the GET now waits on the server
    assert.equal((await client.stats(queue)).queues[queue].waiting_consumers, 1);
    stop.abort();
    await within(assert.rejects(waiting, { name: "AbortError" }), 1_000, "the get to reject, well before 30 s");
    assert.equal((await client.stats(queue)).queues[queue].waiting_consumers, 0);
    const id = await client.put(queue, "after");
    const info = await client.info(id);
    assert.deepEqual([info.state, info.attempts], ["ready", 0], "not leased to the cancelled GET");
    assert.equal(client.unmatchedReplies, 0);
  });

  test("a waiting get that times out returns no messages", T, async () => {
    assert.deepEqual(await within(client.get(uniqueQueue(), { wait: 0.2 }), 5_000, "the get"), []);
  });

  test("only the lease holder may settle: another connection gets NotLeased", T, async () => {
    const queue = uniqueQueue();
    await client.put(queue, "mine");
    const [message] = await client.get(queue);
    const intruder = await connect({ host: broker.host, port: broker.port });
    try {
      await assert.rejects(intruder.ack(message.id), NotLeased);
      await assert.rejects(intruder.touch(message.id), NotLeased);
    } finally {
      await intruder.close();
    }
    await message.ack();
  });

  describe("error replies map to classes with the server's message", () => {
    const cases = [
      ["bad request (max 0)", () => client.get(uniqueQueue(), { max: 0 }), BadRequest, "max"],
      ["bad request (bad queue name)", () => client.put("no spaces allowed", 1), BadRequest, "queue"],
      ["not found (info)", () => client.info("no-such-id"), NotFound],
      ["not found (stats of unknown queue)", () => client.stats(uniqueQueue("never")), NotFound],
      ["not leased (ack before get)", async () => client.ack(await client.put(uniqueQueue(), 1)), NotLeased],
      ["too large (300 KB body)", () => client.put(uniqueQueue(), "x".repeat(300_000)), TooLarge],
      ["line too long (2 MB line)", () => client.put(uniqueQueue(), "x".repeat(2_000_000)), LineTooLong],
    ];
    for (const [name, call, cls, field] of cases) {
      test(name, T, async () => {
        const error = await call().then(
          () => assert.fail("expected a failure"),
          (e) => e,
        );
        assert.ok(error instanceof cls, `${error?.name}: ${error?.message}`);
        assert.ok(error instanceof WonderQError);
        assert.equal(error.code, cls.code);
        assert.ok(error.message.length > 0);
        if (field) assert.match(error.message, new RegExp(field));
        await client.ping();
      });
    }

    test("unknown op", T, async () => {
      const connection = await Connection.open({ host: broker.host, port: broker.port });
      try {
        await assert.rejects(connection.request({ op: "FROBNICATE" }), UnknownOp);
      } finally {
        await connection.close();
      }
    });

    test("bad json (raw socket; the client never sends it)", T, async () => {
      const socket = net.connect({ host: broker.host, port: broker.port });
      socket.setEncoding("utf8");
      socket.write('{"op": "PING",\n');
      let text = "";
      for await (const chunk of socket) {
        text += chunk;
        if (text.includes("\n")) break;
      }
      socket.destroy();
      const error = errorFromReply(JSON.parse(text));
      assert.ok(error instanceof BadJson, text);
    });
  });

  test("calls after close() reject with ConnectionLost", T, async () => {
    const short = await connect({ host: broker.host, port: broker.port });
    await short.close();
    assert.equal(short.isOpen, false);
    await assert.rejects(short.ping(), ConnectionLost);
  });
});

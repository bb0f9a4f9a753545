// Unknown options throw a TypeError naming the option (a typo never passes silently),
// for every call that takes options; nothing reaches the broker. The options each
// call accepts are exactly those index.d.ts declares.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";

import { connect } from "../index.js";
import {
  CONNECT_OPTIONS,
  CONSUME_OPTIONS,
  GET_OPTIONS,
  NACK_OPTIONS,
  PUT_OPTIONS,
  TOUCH_OPTIONS,
  WORKER_OPTIONS,
} from "../options.js";
import { startBroker, uniqueQueue } from "./helpers.js";

const T = { timeout: 30_000 };

describe("options", () => {
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

  /**
   * @param {() => unknown} call
   * @param {RegExp} message
   */
  const refused = async (call, message) => {
    await assert.rejects(async () => call(), (error) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, message);
      return true;
    });
  };

  test("put: a typo or a wire-style name is a TypeError naming it; nothing is stored", T, async () => {
    const queue = uniqueQueue();
    await refused(
      () => client.put(queue, "x", { dealy: 5 }),
      /^put\(\) has no option "dealy" \(did you mean "delay"\?\); its options are key, delay, priority, maxAttempts$/,
    );
    await refused(() => client.put(queue, "x", { max_attempts: 2 }), /has no option "max_attempts" \(did you mean "maxAttempts"\?\)/);
    await refused(() => client.put(queue, "x", { ttl: 60 }), /^put\(\) has no option "ttl"; its options are/);
    await refused(() => client.put(queue, "x", /** @type {any} */ (5)), /^put\(\) takes an options object, not a number$/);
    await refused(
      () => client.putMany(queue, [{ body: 1 }, { body: 2, maxAttempt: 3 }]),
      /^putMany\(\) item 1 has no option "maxAttempt" \(did you mean "maxAttempts"\?\)/,
    );
    await refused(() => client.putMany(queue, ["a"]), /^putMany\(\) item 0 must be \{body, \.\.\.options\}, not "a"$/);
    assert.ok(!(await client.queues()).includes(queue), "nothing was sent");
  });

  test("every other call that takes options refuses unknown ones", T, async () => {
    const queue = uniqueQueue();
    const id = await client.put(queue, "x", { maxAttempts: 3 });
    await refused(() => client.get(queue, { wiat: 5 }), /^get\(\) has no option "wiat" \(did you mean "wait"\?\)/);
    const [message] = await client.get(queue, { lease: 30 });
    await refused(() => client.nack(id, { delya: 1 }), /^nack\(\) has no option "delya" \(did you mean "delay"\?\)/);
    await refused(() => client.touch(id, { leaseS: 1 }), /^touch\(\) has no option "leaseS" \(did you mean "lease"\?\)/);
    await refused(() => message.touch({ lease_s: 1 }), /^touch\(\) has no option "lease_s"/);
    await refused(() => message.nack({ dealy: 1 }), /^nack\(\) has no option "dealy"/);
    assert.equal(message.settled, false, "a refused nack does not settle the message");
    await refused(() => client.consume(queue, { concurency: 2 }), /^consume\(\) has no option "concurency" \(did you mean "concurrency"\?\)/);
    await refused(() => client.runWorker(queue, async () => {}, { max_attempts: 2 }), /^runWorker\(\) has no option "max_attempts"/);
    await refused(() => connect({ host: broker.host, prot: broker.port }), /^connect\(\) has no option "prot" \(did you mean "port"\?\)/);
    const info = await client.info(id);
    assert.deepEqual([info.state, info.attempts, info.max_attempts], ["leased", 1, 3], "no nack, touch or get went out");
    await message.ack();
  });

  test("every declared option is accepted and reaches the wire", T, async () => {
    const queue = uniqueQueue();
    const id = await client.put(queue, "x", { key: "k", delay: 0, priority: -1, maxAttempts: 2 });
    const info = await client.info(id);
    assert.deepEqual([info.key, info.priority, info.max_attempts], ["k", -1, 2]);
    const [message] = await client.get(queue, { max: 1, lease: 30, wait: 1, signal: new AbortController().signal });
    await message.touch({ lease: 60 });
    assert.deepEqual(await message.nack({ delay: 60 }), { dead: false });
    assert.equal((await client.info(id)).state, "delayed");
  });
});

test("the options each call accepts are exactly those index.d.ts declares", async () => {
  const declarations = await readFile(new URL("../index.d.ts", import.meta.url), "utf8");
  /** @param {string} name */
  const declared = (name) => {
    const body = new RegExp(`^export interface ${name}(?: extends \\w+)? \\{\n([\\s\\S]*?)\n\\}$`, "m").exec(declarations)?.[1];
    assert.ok(body, `interface ${name} in index.d.ts`);
    return [...body.matchAll(/^\s+(\w+)\?:/gm)].map((m) => m[1]).sort();
  };
  const keys = (/** @type {object} */ table) => Object.keys(table).sort();
  assert.deepEqual(keys(PUT_OPTIONS), declared("PutOptions"));
  assert.deepEqual(keys(GET_OPTIONS), declared("GetOptions"));
  assert.deepEqual(keys(CONNECT_OPTIONS), declared("ConnectOptions"));
  assert.deepEqual(keys(CONSUME_OPTIONS), declared("ConsumeOptions"));
  assert.deepEqual(keys(WORKER_OPTIONS), declared("WorkerOptions"));
  assert.deepEqual(keys(NACK_OPTIONS), ["delay"]);
  assert.deepEqual(keys(TOUCH_OPTIONS), ["lease"]);
});

// The connection layer against a scripted in-process server: rid matching,
// replies in pieces, unknown rids, protocol errors, loss. No broker needed.

import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, test } from "node:test";

import { Client } from "../client.js";
import { Connection } from "../connection.js";
import { ConnectFailed, ConnectionLost, NotFound, ProtocolViolation } from "../errors.js";
import { deferred, within } from "./helpers.js";

/**
 * A server that hands each request (parsed) to `script.onRequest` along with
 * the socket, so a test decides what to write back and when.
 */
function scriptedServer() {
  const script = {
    /** @type {(request: any, socket: net.Socket) => void} */
    onRequest: () => {},
  };
  const server = net.createServer((socket) => {
    let buffered = "";
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("data", (text) => {
      buffered += text;
      let end;
      while ((end = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        script.onRequest(JSON.parse(line), socket);
      }
    });
  });
  return { server, script };
}

describe("Connection", () => {
  const { server, script } = scriptedServer();
  /** @type {number} */
  let port;

  before(async () => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = /** @type {net.AddressInfo} */ (server.address()).port;
  });
  after(() => server.close());

  const open = () => Connection.open({ port });

  test("replies in single-byte pieces, multi-byte characters split", { timeout: 10_000 }, async () => {
    script.onRequest = async (request, socket) => {
      const bytes = Buffer.from(`${JSON.stringify({ ok: true, rid: request.rid, body: "\u00e9\u{1F600}" })}\n`);
      for (const byte of bytes) {
        socket.write(Buffer.of(byte));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const connection = await open();
    const reply = await within(connection.request({ op: "PING" }), 5_000, "the reply");
    assert.equal(reply.body, "\u00e9\u{1F600}");
    await connection.destroy();
  });

  test("out-of-order replies are matched by rid", { timeout: 10_000 }, async () => {
    const held = [];
    script.onRequest = (request, socket) => {
      held.push(request);
      if (held.length < 3) return;
      for (const r of held.reverse()) socket.write(`${JSON.stringify({ ok: true, rid: r.rid, echo: r.n })}\n`);
    };
    const connection = await open();
    const replies = await within(
      Promise.all([1, 2, 3].map((n) => connection.request({ op: "PING", n }))),
      5_000,
      "three replies",
    );
    assert.deepEqual(
      replies.map((r) => r.echo),
      [1, 2, 3],
    );
    await connection.destroy();
  });

  test("a reply with an unknown rid is dropped and counted", { timeout: 10_000 }, async () => {
    script.onRequest = (request, socket) => {
      socket.write(`${JSON.stringify({ ok: true, rid: "nobody-asked" })}\n`);
      socket.write(`${JSON.stringify({ ok: true, rid: 123456 })}\n`);
      socket.write(`${JSON.stringify({ ok: true, rid: request.rid, mine: true })}\n`);
    };
    const connection = await open();
    const reply = await within(connection.request({ op: "PING" }), 5_000, "the reply");
    assert.equal(reply.mine, true);
    assert.equal(connection.unmatchedReplies, 2);
    await connection.destroy();
  });

  test("a reply without rid answers the oldest call that is not a waiting GET", { timeout: 10_000 }, async () => {
    const held = [];
    script.onRequest = (request, socket) => {
      held.push(request);
      if (held.length < 3) return;
      // The server could not read the PUT (say, too long): its error has no rid.
      socket.write(`${JSON.stringify({ ok: false, error: "not_found", message: "no rid" })}\n`);
      socket.write(`${JSON.stringify({ ok: true, rid: held[2].rid })}\n`);
      socket.write(`${JSON.stringify({ ok: true, rid: held[0].rid, messages: [] })}\n`);
    };
    const connection = await open();
    const waiting = connection.request({ op: "GET", queue: "q", wait: 5 }, { waiting: true });
    const put = connection.request({ op: "PUT", queue: "q", body: 1 });
    const ping = connection.request({ op: "PING" });
    await within(assert.rejects(put, NotFound), 5_000, "the PUT to fail");
    await within(ping, 5_000, "the PING");
    assert.deepEqual((await within(waiting, 5_000, "the GET")).messages, []);
    assert.equal(connection.unmatchedReplies, 0);
    await connection.destroy();
  });

  test("a reply that is not JSON closes the connection; calls fail with the cause", { timeout: 10_000 }, async () => {
    script.onRequest = (request, socket) => {
      if (request.op === "PING") socket.write("this is not json\n");
    };
    const connection = await open();
    const pending = connection.request({ op: "GET", queue: "q", wait: 60 }, { waiting: true });
    const ping = connection.request({ op: "PING" });
    for (const call of [pending, ping]) {
      const error = await within(call.catch((e) => e), 5_000, "the call to fail");
      assert.ok(error instanceof ConnectionLost, String(error));
      assert.ok(error.cause instanceof ProtocolViolation);
    }
    await within(connection.closed, 5_000, "the socket to close");
    assert.equal(connection.isOpen, false);
  });

  test("the server going away fails every pending call, and later calls", { timeout: 10_000 }, async () => {
    const got = deferred();
    let count = 0;
    script.onRequest = (_request, socket) => {
      count += 1;
      if (count === 50) got.resolve(socket);
    };
    const connection = await open();
    const calls = Array.from({ length: 50 }, (_, n) => connection.request({ op: "PUT", queue: "q", body: n }));
    const socket = await within(got.promise, 5_000, "all 50 requests to arrive");
    socket.destroy();
    const results = await within(Promise.allSettled(calls), 5_000, "every call to settle");
    for (const result of results) {
      assert.equal(result.status, "rejected");
      assert.ok(result.reason instanceof ConnectionLost);
    }
    await within(connection.closed, 5_000, "the socket to close");
    await assert.rejects(connection.request({ op: "PING" }), ConnectionLost);
    assert.equal(connection.pendingCount, 0);
  });

  test("close() sends QUIT after earlier requests and fails waiting calls", { timeout: 10_000 }, async () => {
    const ops = [];
    script.onRequest = (request, socket) => {
      ops.push(request.op);
      if (request.op === "PING") socket.write(`${JSON.stringify({ ok: true, rid: request.rid })}\n`);
      if (request.op === "QUIT") socket.end(`${JSON.stringify({ ok: true, rid: request.rid })}\n`);
    };
    const connection = await open();
    const waiting = connection.request({ op: "GET", queue: "q", wait: 60 }, { waiting: true });
    const ping = connection.request({ op: "PING" });
    await within(connection.close(), 5_000, "close()");
    await ping;
    await assert.rejects(waiting, ConnectionLost);
    assert.deepEqual(ops, ["GET", "PING", "QUIT"]);
    await assert.rejects(connection.request({ op: "PING" }), ConnectionLost);
  });

  test("aborting a waiting get sends CANCEL, then releases what the GET got just before", { timeout: 10_000 }, async () => {
    const seen = [];
    const nacked = deferred();
    script.onRequest = (request, socket) => {
      seen.push(request);
      const reply = (/** @type {object} */ fields) =>
        socket.write(`${JSON.stringify({ ok: true, ...fields, rid: request.rid })}\n`);
      if (request.op === "CANCEL") {
        // The GET had taken m1 before the CANCEL reached the server.
        const wire = { id: "m1", queue: "q", body: 1, attempts: 1 };
        socket.write(`${JSON.stringify({ ok: true, messages: [wire], rid: request.get })}\n`);
        reply({ cancelled: 0 });
      } else if (request.op === "NACK") {
        reply({});
        nacked.resolve();
      } else if (request.op !== "GET") reply({});
    };
    const client = new Client(await open());
    const stop = new AbortController();
    const waiting = client.get("q", { wait: 60, signal: stop.signal });
    await client.ping(); // the GET is on the server
    stop.abort();
    await within(assert.rejects(waiting, { name: "AbortError" }), 5_000, "the get to reject");
    await within(nacked.promise, 5_000, "the NACK");
    const [get] = seen;
    assert.deepEqual(
      seen.map((r) => [r.op, r.get ?? r.id]),
      [
        ["GET", undefined],
        ["PING", undefined],
        ["CANCEL", get.rid],
        ["NACK", "m1"],
      ],
    );
    await assert.rejects(client.get("q", { wait: 60, signal: stop.signal }), { name: "AbortError" });
    assert.equal(seen.length, 4, "an already aborted get sends nothing");
    await client.close();
  });

  test("connecting to a closed port rejects with ConnectFailed, the socket error as its cause", { timeout: 10_000 }, async () => {
    const probe = net.createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const freePort = /** @type {net.AddressInfo} */ (probe.address()).port;
    probe.close();
    await once(probe, "close");
    await assert.rejects(Connection.open({ port: freePort }), (error) => {
      assert.ok(error instanceof ConnectFailed, String(error));
      assert.equal(error.cause.code, "ECONNREFUSED");
      return true;
    });
  });
});

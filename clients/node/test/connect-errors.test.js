// Connection errors are the client's own classes, with the socket's error as `cause`:
// a refused connection says no broker runs there and how to start one.

import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { test } from "node:test";

import { ConnectFailed, ConnectionLost, WonderQError, connect } from "../index.js";
import { connectFailed } from "../errors.js";
import { startBroker, within } from "./helpers.js";

const T = { timeout: 30_000 };

async function closedPort() {
  const probe = net.createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = /** @type {net.AddressInfo} */ (probe.address()).port;
  probe.close();
  await once(probe, "close");
  return port;
}

test("a refused connection is a ConnectFailed saying no broker runs there, with the cause", T, async () => {
  const port = await closedPort();
  const error = await connect({ host: "127.0.0.1", port }).then(
    () => assert.fail("connected to a closed port"),
    (e) => e,
  );
  assert.ok(error instanceof ConnectFailed, String(error));
  assert.ok(error instanceof ConnectionLost && error instanceof WonderQError);
  assert.equal(error.name, "ConnectFailed");
  assert.equal(error.code, "connect_failed");
  assert.equal(
    error.message,
    `cannot connect to 127.0.0.1:${port}: connection refused: no broker is running at that address ` +
      `(start one with \`wonderq serve --port ${port}\`)`,
  );
  assert.equal(error.cause.code, "ECONNREFUSED");
});

test("a TLS client on a plain port fails with ConnectFailed, the TLS error as its cause", T, async () => {
  const broker = await startBroker();
  try {
    const error = await within(
      connect({ host: broker.host, port: broker.port, tls: { rejectUnauthorized: false } }).then(
        () => assert.fail("a TLS handshake with a plain broker succeeded"),
        (e) => e,
      ),
      10_000,
      "the handshake to fail",
    );
    assert.ok(error instanceof ConnectFailed, String(error));
    assert.match(error.message, new RegExp(`^cannot connect to ${broker.host}:${broker.port}: `));
    assert.ok(error.cause instanceof Error);
  } finally {
    await broker.stop();
  }
});

test("a lost connection is a ConnectionLost that says so", T, async () => {
  const broker = await startBroker();
  const client = await connect({ host: broker.host, port: broker.port });
  try {
    const outcome = client.get("q", { wait: 30 }).then(
      () => assert.fail("the get resolved"),
      (e) => e,
    );
    await client.ping();
    await broker.kill();
    const error = await within(outcome, 10_000, "the get to fail");
    assert.ok(error instanceof ConnectionLost && !(error instanceof ConnectFailed), String(error));
    assert.match(error.message, /^connection lost/);
    await assert.rejects(client.ping(), ConnectionLost);
  } finally {
    await client.close();
    await broker.kill();
  }
});

test("the hint names the host when it is not this machine; several refusals count as one", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:7878"), { code: "ECONNREFUSED" });
  assert.ok(
    connectFailed("queue.internal", 7878, refused).message.endsWith(
      "(start one with `wonderq serve --host queue.internal --port 7878` on that machine)",
    ),
  );
  const both = Object.assign(new AggregateError([refused, refused], "all failed"), { code: "ECONNREFUSED" });
  assert.match(connectFailed("localhost", 7878, both).message, /no broker is running at that address/);
  const unresolved = Object.assign(new Error("getaddrinfo ENOTFOUND nowhere.invalid"), { code: "ENOTFOUND" });
  assert.equal(
    connectFailed("nowhere.invalid", 7878, unresolved).message,
    'cannot connect to nowhere.invalid:7878: cannot resolve host "nowhere.invalid" (getaddrinfo ENOTFOUND nowhere.invalid)',
  );
});

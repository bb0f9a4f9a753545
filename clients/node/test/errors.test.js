// Wire error codes -> error classes. No broker needed.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as wonderq from "../index.js";

const { ERROR_CLASSES, WonderQError, errorFromReply } = wonderq;

const CODES = {
  bad_json: "BadJson",
  bad_request: "BadRequest",
  unknown_op: "UnknownOp",
  not_found: "NotFound",
  not_leased: "NotLeased",
  queue_full: "QueueFull",
  too_large: "TooLarge",
  line_too_long: "LineTooLong",
  memory_limit: "MemoryLimit",
  unauthorized: "Unauthorized",
  unavailable: "Unavailable",
  shutting_down: "ShuttingDown",
};

test("every wire code maps to its exported class, with code and message", () => {
  assert.deepEqual(Object.keys(ERROR_CLASSES).sort(), Object.keys(CODES).sort());
  for (const [code, name] of Object.entries(CODES)) {
    const error = errorFromReply({ ok: false, error: code, message: `why ${code}` });
    assert.equal(error.constructor, wonderq[name], code);
    assert.ok(error instanceof WonderQError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, name);
    assert.equal(error.code, code);
    assert.equal(error.message, `why ${code}`);
  }
});

test("an unknown code gives the base class, keeping the code", () => {
  const error = errorFromReply({ ok: false, error: "from_the_future", message: "new" });
  assert.equal(error.constructor, WonderQError);
  assert.equal(error.code, "from_the_future");
  assert.equal(error.message, "new");
});

test("codes that are Object.prototype names are not classes", () => {
  assert.equal(errorFromReply({ ok: false, error: "constructor", message: "x" }).constructor, WonderQError);
});

test("ConnectionLost is a WonderQError with its own code", () => {
  const error = new wonderq.ConnectionLost("gone");
  assert.ok(error instanceof WonderQError);
  assert.equal(error.code, "connection_lost");
  assert.equal(error.name, "ConnectionLost");
});

test("the broker's error codes are the ones this client knows", (t) => {
  let source;
  try {
    source = readFileSync(new URL("../../../broker/errors.py", import.meta.url), "utf8");
  } catch {
    t.skip("broker/errors.py is not beside this client");
    return;
  }
  const codes = [...source.matchAll(/^\s+[A-Z_]+ = "([a-z_]+)"$/gm)].map((m) => m[1]);
  assert.deepEqual(codes.sort(), Object.keys(CODES).sort());
});

// The sans-IO codec: framing across chunk boundaries, reply checks.
// No broker needed.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { LineDecoder, encodeRequest, parseReply } from "../codec.js";
import { ProtocolViolation } from "../errors.js";

/** [name, stream bytes, lines it holds] */
const CASES = [
  ["one line", '{"ok":true}\n', ['{"ok":true}']],
  ["two lines", '{"ok":true,"rid":1}\n{"ok":true,"rid":2}\n', ['{"ok":true,"rid":1}', '{"ok":true,"rid":2}']],
  ["crlf", '{"ok":true}\r\n', ['{"ok":true}']],
  ["blank lines dropped", '\n  \n{"ok":true}\n\r\n', ['{"ok":true}']],
  ["unfinished tail held", '{"ok":true}\n{"ok":', ['{"ok":true}']],
  ["multi-byte utf-8", '{"ok":true,"body":"h\u00e9llo \u2603 \u{1F600}"}\n', ['{"ok":true,"body":"h\u00e9llo \u2603 \u{1F600}"}']],
];

describe("LineDecoder", () => {
  for (const [name, text, lines] of CASES) {
    const bytes = Buffer.from(text, "utf8");

    test(`${name}: whole`, () => {
      assert.deepEqual(new LineDecoder().feed(bytes), lines);
    });

    test(`${name}: one byte at a time`, () => {
      const decoder = new LineDecoder();
      const got = [];
      for (const byte of bytes) got.push(...decoder.feed(Buffer.of(byte)));
      assert.deepEqual(got, lines);
    });

    test(`${name}: every split point`, () => {
      for (let cut = 0; cut <= bytes.length; cut += 1) {
        const decoder = new LineDecoder();
        const got = [...decoder.feed(bytes.subarray(0, cut)), ...decoder.feed(bytes.subarray(cut))];
        assert.deepEqual(got, lines, `cut at ${cut}`);
      }
    });
  }

  test("an unfinished line over the cap is a protocol error", () => {
    const decoder = new LineDecoder({ maxLineBytes: 10 });
    decoder.feed(Buffer.from("12345"));
    assert.equal(decoder.bufferedBytes, 5);
    assert.throws(() => decoder.feed(Buffer.from("678901")), ProtocolViolation);
  });

  test("a line exactly at the cap is fine", () => {
    const decoder = new LineDecoder({ maxLineBytes: 10 });
    assert.deepEqual(decoder.feed(Buffer.from("0123456789")), []);
    assert.deepEqual(decoder.feed(Buffer.from("\n")), ["0123456789"]);
    assert.equal(decoder.bufferedBytes, 0);
  });
});

describe("encodeRequest", () => {
  test("one line, newline ended, undefined fields left out", () => {
    const line = encodeRequest({ op: "PUT", queue: "q", body: { a: "x\ny" }, key: undefined, rid: 7 });
    assert.equal(line, '{"op":"PUT","queue":"q","body":{"a":"x\\ny"},"rid":7}\n');
    assert.equal(line.indexOf("\n"), line.length - 1);
  });
});

describe("parseReply", () => {
  test("a reply object", () => {
    assert.deepEqual(parseReply('{"ok":false,"error":"not_found","message":"m","rid":"a"}'), {
      ok: false,
      error: "not_found",
      message: "m",
      rid: "a",
    });
  });

  for (const line of ["not json", "[1,2]", "null", '"ok"', '{"rid":1}', '{"ok":"yes"}']) {
    test(`rejects ${line}`, () => {
      assert.throws(() => parseReply(line), ProtocolViolation);
    });
  }
});

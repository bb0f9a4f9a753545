// index.d.ts declares exactly the values index.js exports. No broker needed.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import * as wonderq from "../index.js";

test("index.d.ts declares every runtime export, and no value that is not one", async () => {
  const declarations = await readFile(new URL("../index.d.ts", import.meta.url), "utf8");
  const declared = [...declarations.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...new Set(declared)].sort(), Object.keys(wonderq).sort());
});

test("package.json points at the entry point and the declarations", async () => {
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.name, "wonderq");
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.exports["."], { types: "./index.d.ts", default: "./index.js" });
  assert.equal(pkg.dependencies, undefined, "zero runtime dependencies");
  assert.equal(pkg.scripts.test, "node --test test/");
  const self = await import("wonderq");
  assert.equal(self.connect, wonderq.connect);
});

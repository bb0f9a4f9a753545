// The README's producer and worker snippets, run as written against a broker
// (only the port is changed, from 7878 to the test broker's).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { connect } from "../index.js";
import { deferred, startBroker, within } from "./helpers.js";

const HERE = new URL(".", import.meta.url);
// Inside the package (so `import ... from "wonderq"` resolves to it), outside
// test/ (so `node --test test/` never picks the scripts up).
// One folder per run, so that concurrent runs do not trip over each other.
const SCRATCH = new URL(`../.readme-snippets/${process.pid}/`, HERE);

/** The ```js blocks of the README's "Quick start" section, in order. */
async function quickStartSnippets() {
  const readme = await readFile(new URL("../README.md", HERE), "utf8");
  const section = readme.split(/^## /m).find((part) => part.startsWith("Quick start"));
  assert.ok(section, "README has a Quick start section");
  return [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
}

/** @type {import("./helpers.js").Broker} */
let broker;

before(async () => {
  broker = await startBroker();
  await mkdir(SCRATCH, { recursive: true });
});
after(async () => {
  await broker?.stop();
  await rm(SCRATCH, { recursive: true, force: true });
});

/**
 * Writes a snippet, pointed at the test broker, into the scratch folder.
 * @param {string} name
 * @param {string} code
 */
async function scriptFrom(name, code) {
  assert.match(code, /port: 7878/);
  const path = fileURLToPath(new URL(name, SCRATCH));
  await writeFile(path, code.replaceAll("port: 7878", `port: ${broker.port}`));
  return path;
}

/** @param {import("node:child_process").ChildProcess} child */
function outputOf(child) {
  let text = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk) => {
    text += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk) => {
    text += chunk;
  });
  return () => text;
}

test("the README's snippets are ten lines or so, and both run", { timeout: 30_000 }, async () => {
  const [producer, worker] = await quickStartSnippets();
  assert.ok(producer && worker, "two js snippets");
  for (const snippet of [producer, worker]) assert.ok(snippet.trim().split("\n").length <= 11, snippet);

  const producerPath = await scriptFrom("producer.mjs", producer);
  const run = spawn(process.execPath, [producerPath], { stdio: ["ignore", "pipe", "pipe"] });
  const producerOutput = outputOf(run);
  const [code] = await within(once(run, "exit"), 10_000, "the producer snippet to exit");
  assert.equal(code, 0, producerOutput());
  assert.match(producerOutput(), /^queued \S+/);

  const workerPath = await scriptFrom("worker.mjs", worker);
  const child = spawn(process.execPath, [workerPath], { stdio: ["ignore", "pipe", "pipe"] });
  const workerOutput = outputOf(child);
  const sent = deferred();
  child.stdout.on("data", () => {
    if (workerOutput().includes("sending to ada@example.com")) sent.resolve();
  });
  child.once("exit", () => sent.reject(new Error(`worker exited early:\n${workerOutput()}`)));
  try {
    await within(sent.promise, 10_000, "the worker snippet to handle the message");
    const exited = once(child, "exit");
    child.kill("SIGINT");
    const [workerCode] = await within(exited, 10_000, "the worker snippet to stop on SIGINT");
    assert.equal(workerCode, 0, workerOutput());
  } finally {
    child.kill("SIGKILL");
  }

  const client = await connect({ host: broker.host, port: broker.port });
  try {
    const { queues } = await client.stats("emails");
    assert.equal(queues.emails.acked, 1);
    assert.equal(queues.emails.ready + queues.emails.leased, 0);
  } finally {
    await client.close();
  }
});

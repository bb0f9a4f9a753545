// Works through a queue until Ctrl-C (SIGINT) or SIGTERM, four jobs at a time.
// A failing job is retried with backoff; after --max-attempts it goes to <queue>.dead.
//
//   node examples/worker.js [--host 127.0.0.1] [--port 7878] [--queue jobs]

import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";

import { connect } from "wonderq";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "7878" },
    queue: { type: "string", default: "jobs" },
  },
});

const client = await connect({ host: values.host, port: Number(values.port) });
const stop = new AbortController();
process.once("SIGINT", () => stop.abort());
process.once("SIGTERM", () => stop.abort());

/**
 * Pretends to resize an image; rejects now and then.
 * @param {any} job the message body
 * @param {AbortSignal} signal
 */
async function resize(job, signal) {
  await delay(50 + Math.random() * 100, undefined, { signal });
  if (Math.random() < 0.1) throw new Error(`image ${job.image} is corrupt`);
}

await client.runWorker(
  values.queue,
  async (message, { signal }) => {
    await resize(message.body, signal);
    console.log(`done ${JSON.stringify(message.body)} (attempt ${message.attempts})`);
  },
  {
    concurrency: 4,
    lease: 10,
    signal: stop.signal,
    backoff: (attempts) => 0.2 * attempts,
    onError: (error, message) => console.log(`failed ${JSON.stringify(message.body)} (attempt ${message.attempts}): ${error.message}`),
  },
);
await client.close();
console.log("worker stopped");

// Puts a few jobs on a queue.
//
//   node examples/producer.js [--host 127.0.0.1] [--port 7878] [--queue jobs] [--count 10]

import { parseArgs } from "node:util";

import { connect } from "wonderq";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "7878" },
    queue: { type: "string", default: "jobs" },
    count: { type: "string", default: "10" },
  },
});

const client = await connect({ host: values.host, port: Number(values.port) });
try {
  const jobs = Array.from({ length: Number(values.count) }, (_, n) => ({
    body: { task: "resize", image: n },
    priority: n % 3 === 0 ? -1 : 0, // every third job jumps the line
  }));
  const ids = await client.putMany(values.queue, jobs);
  console.log(`queued ${ids.length} jobs on ${values.queue}`);
  const { queues } = await client.stats(values.queue);
  console.log(`${values.queue}: ${queues[values.queue].ready} ready`);
} finally {
  await client.close();
}

// The real BullMQ Worker the cronlease BullMQ target test drives, BullMQ 5 or 6 (npm aliases
// bullmq5 and bullmq6 in package.json, so both majors are installed side by side).
//
//   BULLMQ_MAJOR=6 BULLMQ_QUEUE=jobs BULLMQ_PREFIX=bull REDIS_URL=redis://127.0.0.1:PORT/0 \
//     CRONLEASE_EXECUTED=/tmp/executed.jsonl node worker.js
//
// Each job appends one JSON line: job.id (the encoded run id), the fire time from the job's
// data.cronlease, its name and data. "ready" on stdout once the Worker is connected; failures
// and errors go to stderr as lines starting with "FAILED" / "ERROR", for the test to see.
"use strict";
const fs = require("fs");

const major = process.env.BULLMQ_MAJOR;
if (major !== "5" && major !== "6") {
  throw new Error(`BULLMQ_MAJOR must be 5 or 6, not ${major}`);
}
const { Worker } = require(`bullmq${major}`);
const url = new URL(process.env.REDIS_URL);
// Connection options rather than a client: each major then builds its own ioredis (BullMQ 5
// brings ioredis 5, BullMQ 6 takes the ioredis 6 installed beside it).
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number(url.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};
const executed = process.env.CRONLEASE_EXECUTED;

const worker = new Worker(
  process.env.BULLMQ_QUEUE,
  async (job) => {
    const line = JSON.stringify({
      major,
      id: job.id,
      fire_time: job.data.cronlease && job.data.cronlease.fire_time,
      name: job.name,
      data: job.data,
      attemptsMade: job.attemptsMade,
    });
    fs.appendFileSync(executed, line + "\n");
    return "done";
  },
  { connection, prefix: process.env.BULLMQ_PREFIX || "bull", concurrency: 1 },
);
worker.on("failed", (job, error) => {
  console.error(`FAILED ${job && job.id}: ${error && error.stack}`);
});
worker.on("error", (error) => {
  console.error(`ERROR ${error && error.stack}`);
});

async function stop() {
  await worker.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

worker.waitUntilReady().then(() => console.log("ready"));

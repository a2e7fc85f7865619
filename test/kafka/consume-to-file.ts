/**
 * A consumer process for the crash test: EventConsumer writing into a file "store" (one JSON line per
 * event, fsynced before the sink resolves, so a commit always follows durable data).
 *
 *   node consume-to-file.js BROKERS TOPIC GROUP_ID OUT_FILE
 *
 * Prints "started" once it has joined the group and "wrote N" (events so far) after each chunk is
 * durable and before the sink resolves: a SIGKILL sent on that line lands in the window between
 * the write and its commit. SIGTERM stops it cleanly (committing what was written).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { createLogger, type LogLevel } from '../../core/log.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { type ChunkHandler, EventConsumer } from '../../ingest/kafka/consumer.js';
import { eventId } from './event-id.js';

const [brokers, topic, groupId, outFile] = process.argv.slice(2);
if (!outFile) {
  process.stderr.write('usage: consume-to-file BROKERS TOPIC GROUP_ID OUT_FILE\n');
  process.exit(64);
}
const logger = createLogger({ level: (process.env.CALLSCOPE_TEST_LOG as LogLevel) || 'warn' });
/** A slow store: time before the write, and between the write and the sink resolving. */
const delayBeforeMs = Number(process.env.SINK_DELAY_BEFORE_MS ?? 10);
const delayAfterMs = Number(process.env.SINK_DELAY_AFTER_MS ?? 150);
let written = 0;

// Like a store recovering from a crash: a torn last line (no newline) is cut off before appending.
if (existsSync(outFile)) {
  const data = readFileSync(outFile);
  const end = data.lastIndexOf(0x0a) + 1;
  if (end < data.length) {
    logger.warn('file sink: truncating a torn last line', { file: outFile, bytes: data.length - end });
    truncateSync(outFile, end);
  }
}
const fd = openSync(outFile, 'a');

const sink: ChunkHandler = async (events, context) => {
  await new Promise((r) => setTimeout(r, delayBeforeMs));
  const chunk = `${context.partition}:${context.firstOffset}-${context.lastOffset}`;
  const lines = events.map((e) => JSON.stringify({ id: eventId(e), chunk, pid: process.pid })).join('\n');
  writeSync(fd, `${lines}\n`);
  fsyncSync(fd);
  written += events.length;
  process.stdout.write(`wrote ${written}\n`);
  await new Promise((r) => setTimeout(r, delayAfterMs));
};

const consumer = new EventConsumer({
  kafka: createKafka({
    brokers,
    logger,
    kafkaLogLevel: 'nothing',
    clientId: `consume-to-file-${process.pid}`,
  }),
  topic,
  groupId,
  onChunk: sink,
  logger,
  maxEventsPerWrite: 200,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 250,
});

process.on('SIGTERM', () => {
  consumer
    .stop()
    .then(() => {
      closeSync(fd);
      process.stdout.write(`stopped ${JSON.stringify(consumer.stats())}\n`);
      process.exit(0);
    })
    .catch((e) => {
      process.stderr.write(`stop failed: ${(e as Error).message}\n`);
      process.exit(1);
    });
});

await consumer.start();
process.stdout.write('started\n');

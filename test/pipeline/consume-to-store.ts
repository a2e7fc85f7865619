/**
 * The ingest process of the SIGKILL scenario, as `callscope ingest` wires it: KafkaSource → drive →
 * StoreSink, and the calls job beside it → an embedded store that this process owns (its data directory is locked to it) and serves on 127.0.0.1, so the test can
 * query it while it runs.
 *
 *   node consume-to-store.js '{"brokers","topic","groupId","dataDir","port","database","runId",
 *                              "maxEventsPerWrite","holdAfterStoredMs"}'
 *
 * stdout, one JSON object a line:
 *   {"event":"started","url","port","storeMs"}        store open, schema migrated, group joined
 *   {"event":"stored","total","chunk"}                a chunk is in the store (write + flush done) and
 *                                                      its offsets are NOT committed yet: the sink
 *                                                      holds `holdAfterStoredMs` before resolving, so
 *                                                      a SIGKILL sent on this line lands in between
 *   {"event":"stopped","consumer","sink"}             after SIGTERM: clean stop, everything committed
 */
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { CallsJob } from '../../analyze/calls/job.js';
import { drive } from '../../core/drive.js';
import { createLogger, type LogLevel } from '../../core/log.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { KafkaSource } from '../../ingest/kafka/source.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { EmbeddedStore } from '../../ingest/store/embedded.js';
import { StoreSink } from '../../ingest/store-sink.js';

interface Config {
  brokers: string;
  topic: string;
  groupId: string;
  dataDir: string;
  port: number;
  database: string;
  runId: string;
  maxEventsPerWrite: number;
  holdAfterStoredMs: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config;
const logger = createLogger({ level: (process.env.CALLSCOPE_TEST_LOG as LogLevel) || 'warn' });
const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

const t0 = performance.now();
const store = await EmbeddedStore.start({ dataDir: config.dataDir, port: config.port, logger });
const storeMs = Math.round(performance.now() - t0);
const client = createClient({ url: store.url, log: { level: ClickHouseLogLevel.OFF } });
await migrate(client, { database: config.database, ttlDays: 0, logger });

const sink = new StoreSink(client, { database: config.database, runId: config.runId, logger });
const stop = new AbortController();
let started: () => void = () => {};
const joined = new Promise<void>((resolve) => {
  started = resolve;
});
const source = new KafkaSource({
  kafka: createKafka({
    brokers: config.brokers,
    logger,
    kafkaLogLevel: 'nothing',
    clientId: `consume-to-store-${process.pid}`,
  }),
  topic: config.topic,
  groupId: config.groupId,
  logger,
  maxEventsPerWrite: config.maxEventsPerWrite,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 250,
  onStart: () => started(),
  onDelivered: async (_events, context, total) => {
    say({
      event: 'stored',
      total,
      chunk: `${context.partition}:${context.firstOffset}-${context.lastOffset}`,
    });
    await new Promise((r) => setTimeout(r, config.holdAfterStoredMs));
  },
});
const driven = drive(source, [sink], { logger, signal: stop.signal });
// The calls table, as `callscope ingest` keeps it: recomputed from the store every cycle.
const callsWriter = new StoreSink(client, { database: config.database, runId: config.runId, logger });
const calls = new CallsJob({
  client,
  database: config.database,
  writer: callsWriter,
  logger,
  intervalMs: 500,
});
calls.start();

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  (async () => {
    stop.abort();
    const result = await driven;
    await calls.stop();
    await callsWriter.close();
    await sink.close();
    await client.close();
    await store.close();
    say({ event: 'stopped', consumer: result.source, sink: sink.stats() });
    process.exit(0);
  })().catch((e) => {
    process.stderr.write(`stop failed: ${(e as Error).message}\n`);
    process.exit(1);
  });
});

await joined;
say({ event: 'started', url: store.url, port: Number(new URL(store.url).port), storeMs });

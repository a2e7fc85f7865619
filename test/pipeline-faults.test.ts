/**
 * The whole ingest path under faults: capture events → EventProducer (spool) → Kafka → EventConsumer
 * → StoreWriter → the embedded store, each scenario ending with exact row counts read back from the
 * store (`count() … FINAL`, distinct event ids, the very ids expected) and with the analyze summary
 * recomputed from the store by `storeSummary` equal to the capture's own.
 *
 * 1. every broker down for 30 s while events keep arriving: the producer spools and replays;
 * 2. the store down for 30 s (EmbeddedStore closed and reopened on the same directory and port): the
 *    consumer pauses and retries without committing; once with the sink docs/STORE.md prescribes
 *    (ingest/store-sink.ts: a new writer after a sticky failure), once with the product's own
 *    `callscope ingest` process;
 * 3. the ingest process (consumer + writer + its own embedded store) killed with SIGKILL mid-batch
 *    and restarted on the same store directory: the replayed chunk is deduplicated;
 * 4. poison messages on the topic: dead-lettered with their reason, everything else stored.
 *
 * The events are those of a generated capture (~6,700: SIP messages and RTP stream reports), sent at
 * a steady rate during the outages. The scenarios use their own cluster/topic/group, database or
 * store process, so they run side by side. Brokers: librdkafka's mock cluster, or KAFKA_BROKERS (the
 * broker outage always needs the mock).
 *
 * Through Kafka an event travels as HEP3, which has no retransmission flag (docs/HEP.md): the sink
 * marks retransmissions again with ingest/retransmissions.ts, as `callscope ingest` does, so the
 * store's summary must equal analyze's entirely; after a restart the new process has not seen the
 * originals of some retransmissions (documented there), so scenario 3 checks that flag apart.
 */
import { join } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallAnalysis } from '../analyze/calls/analysis.js';
import { CallsJob } from '../analyze/calls/job.js';
import { storeSummary } from '../analyze/store-summary.js';
import { EVERY_OUTCOME } from '../capture/generator/generate.js';
import type { CallRecord } from '../core/call.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { HEP_PROTO_SIP } from '../core/event.js';
import { encodeHep3 } from '../core/hep3.js';
import { callFromRow, callSelectList } from '../ingest/call-rows.js';
import { createKafka } from '../ingest/kafka/client.js';
import { HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC } from '../ingest/kafka/constants.js';
import type { ChunkContext } from '../ingest/kafka/consumer.js';
import { eventMessage } from '../ingest/kafka/message.js';
import { EventProducer } from '../ingest/kafka/producer.js';
import { KafkaSource, type KafkaSourceOptions } from '../ingest/kafka/source.js';
import { captureRunFromSummary } from '../ingest/rows.js';
import { migrate } from '../ingest/schema/migrate.js';
import { openStore, type Store } from '../ingest/store/client.js';
import { StoreSink } from '../ingest/store-sink.js';
import { StoreWriter } from '../ingest/writer.js';
import {
  GROUP_TIMING,
  type KafkaTarget,
  sleep,
  startKafkaTarget,
  testLogger,
  waitFor,
} from './kafka/fixtures.js';
import { KAFKA, KAFKA_MOCK, needs, removeTmpDir, tmpDir } from './oracle/tools.js';
import { compilePipelineScripts, JsonLineChild } from './pipeline/children.js';
import { EVENT_TABLES, generatedSource, type SourceCapture } from './pipeline/source.js';
import { type StoreCounts, sizes, storeCounts, storedIds, waitForCounts } from './pipeline/verify.js';

const OUTAGE_MS = 30_000;
const RUN_ID = 'pipeline-faults';
const logger = testLogger();

let dir: string;
let source: SourceCapture;
/** The capture's calls as `analyze` makes them, by Call-ID (closed at the capture's end). */
let expectedCalls: Map<string, CallRecord>;
/** The test process's own embedded store: scenarios 1 and 4, one database each. */
let local: Store;
const targets: KafkaTarget[] = [];
const children: JsonLineChild[] = [];
const clients: ClickHouseClient[] = [];

beforeAll(async () => {
  dir = tmpDir('callscope-pipeline-faults-');
  // Every outcome: B2BUA legs (two Call-IDs, so two partitions, linked again in the store), proxied
  // calls with their hops and failover, re-INVITEs, no answer.
  source = await generatedSource(dir, { outcomes: EVERY_OUTCOME });
  const analysis = new CallAnalysis({ keepRecords: true });
  for (const e of source.events) analysis.sink.add(e);
  await analysis.finish(Math.trunc(Date.parse(source.summary.lastPacketTime!)));
  expectedCalls = new Map(analysis.records.map((r) => [r.callId, r]));
  local = await openStore({ dataDir: join(dir, 'local-store'), logger });
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  for (const c of clients) await c.close().catch(() => undefined);
  for (const t of targets) await t.stop();
  await local?.close();
  if (dir) removeTmpDir(dir);
});

/** A client of a store served by a child process; its own error log is off (failures are expected). */
function clientOf(url: unknown): ClickHouseClient {
  const client = createClient({ url: String(url), log: { level: ClickHouseLogLevel.OFF } });
  clients.push(client);
  return client;
}

/**
 * librdkafka's mock answers a fetch with little data (about one record batch per partition, as seen
 * here: with the default 20-ms linger a 6,700-event run took 1,600 sink calls), so the consumer reads
 * roughly what one produce request carried at a time and writes it as one insert. Lingering 200 ms
 * makes batches of a few dozen events at the test rates, and the backlog after an outage drains in
 * seconds instead of a minute.
 */
const LINGER_MS = 200;

const kafkaOf = (target: KafkaTarget): Kafka =>
  createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });

/** Sends `events` at about `perSecond`, each `send` awaited (the capture loop's backpressure). */
async function sendPaced(producer: EventProducer, events: CaptureEvent[], perSecond: number): Promise<void> {
  const start = Date.now();
  for (let i = 0; i < events.length; i++) {
    await producer.send(events[i]);
    if (i % 10 === 9) {
      const wait = start + ((i + 1) * 1000) / perSecond - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }
}

/** Committed offsets of a group, and the ends of the topic's partitions. */
async function offsets(kafka: Kafka, groupId: string, topic: string) {
  const admin = kafka.admin();
  await admin.connect();
  return {
    committed: async (): Promise<Map<number, string>> => {
      const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map(t.partitions.map((p) => [p.partition, p.offset]));
    },
    ends: async (): Promise<Map<number, string>> =>
      new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high])),
    close: () => admin.disconnect(),
  };
}

/** Waits (up to 15 s) until everything written is committed: committed offset = end of each partition. */
async function expectAllCommitted(o: Awaited<ReturnType<typeof offsets>>): Promise<void> {
  const ends = await o.ends();
  let committed = await o.committed();
  for (let i = 0; i < 75 && [...ends].some(([p, h]) => committed.get(p) !== h); i++) {
    await sleep(200);
    committed = await o.committed();
  }
  expect(committed).toEqual(ends);
}

/**
 * The exactness check every scenario ends with: per table, `count() FINAL` and the distinct event ids
 * equal the number of distinct events produced, the ids are exactly the expected ones, and the summary
 * recomputed from the store equals analyze's. Retransmission flags do not travel in HEP3: the ingest
 * side marks them again (ingest/sip.ts), which is exact while one process sees a call from its
 * start; `retransmissions: 'checked-apart'` leaves that one figure to the caller.
 */
async function expectExactStore(
  client: ClickHouseClient,
  database: string,
  retransmissions: 'exact' | 'checked-apart' = 'exact',
  /** Run id on the stored rows: the sinks here stamp RUN_ID; `callscope ingest` (live) stamps ''. */
  runId = RUN_ID,
): Promise<{ counts: StoreCounts; retransmissions: number }> {
  const counts = await storeCounts(client, database);
  for (const table of EVENT_TABLES) {
    const want = source.expected[table];
    expect(counts[table].final, `${database}.${table}: SELECT count() … FINAL`).toBe(want.size);
    expect(counts[table].distinct, `${database}.${table}: uniqExact(event_id)`).toBe(want.size);
    expect(counts[table].raw).toBeGreaterThanOrEqual(want.size);
    const got = await storedIds(client, database, table);
    const missing = [...want].filter((id) => !got.has(id)).length;
    const foreign = [...got].filter((id) => !want.has(id)).length;
    expect({ table, missing, foreign }).toEqual({ table, missing: 0, foreign: 0 });
  }
  await expectExactCalls(client, database);
  const writer = new StoreWriter(client, { database, runId, logger });
  await writer.writeCaptureRun(captureRunFromSummary(source.summary, { runId }));
  await writer.close();
  const summary = await storeSummary(client, { database, runId });
  const stored = summary.sip.retransmissions;
  if (retransmissions === 'exact') expect(summary).toEqual(source.summary);
  else
    expect(summary).toEqual({ ...source.summary, sip: { ...source.summary.sip, retransmissions: stored } });
  return { counts, retransmissions: stored };
}

/**
 * The calls table holds exactly the capture's calls: `count() … FINAL` is one row per Call-ID, and each
 * row is the record `analyze` makes (a call the capture's end cut short stays open in the store rather
 * than closed 'end-of-capture'). Waits up to 60 s for the jobs' cycles to catch up.
 */
async function expectExactCalls(client: ClickHouseClient, database: string): Promise<number> {
  const read = async () => {
    const rs = await client.query({
      query: `SELECT ${callSelectList()} FROM {db:Identifier}.calls FINAL`,
      query_params: { db: database },
      format: 'JSONEachRow',
    });
    return (await rs.json<Record<string, unknown>>()).map(callFromRow);
  };
  const asExpected = (stored: Awaited<ReturnType<typeof read>>) =>
    stored.length === expectedCalls.size &&
    stored.every((s) => {
      const want = expectedCalls.get(s.record.callId);
      const got =
        want?.closedBy === 'end-of-capture' ? { ...s.record, closedBy: 'end-of-capture' } : s.record;
      return want !== undefined && JSON.stringify(got) === JSON.stringify(want);
    });
  const started = Date.now();
  let stored = await read();
  while (!asExpected(stored) && Date.now() - started < 60_000) {
    await sleep(500);
    stored = await read();
  }
  expect(stored.length, `${database}.calls: SELECT count() … FINAL`).toBe(expectedCalls.size);
  for (const s of stored) {
    const want = expectedCalls.get(s.record.callId);
    expect(want, s.record.callId).toBeDefined();
    if (want!.closedBy === 'end-of-capture')
      expect({ ...s.record, closedBy: 'end-of-capture' }).toEqual(want);
    else expect(s.record, s.record.callId).toEqual(want);
  }
  return Date.now() - started;
}

/**
 * `callscope ingest`'s Kafka path: a KafkaSource driven into `sink` until stopped. `delivered` counts
 * the events of every chunk made durable (a chunk delivered twice counts twice).
 */
function ingestFrom(
  sink: StoreSink,
  options: Omit<KafkaSourceOptions, 'onStart'> & {
    onDelivered?: (events: number, context: ChunkContext, total: number) => Promise<void> | void;
    /** Where the calls job runs (the sink's store and database). */
    calls: { client: ClickHouseClient; database: string };
  },
) {
  let delivered = 0;
  let joined: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    joined = resolve;
  });
  const source = new KafkaSource({
    logger,
    ...GROUP_TIMING,
    ...options,
    onStart: () => joined(),
    onDelivered: async (events, context, total) => {
      delivered = total;
      await options.onDelivered?.(events, context, total);
    },
  });
  const stop = new AbortController();
  const driven = drive(source, [sink], { logger, signal: stop.signal });
  // The calls job `callscope ingest` runs beside its sources, on the same store.
  const callsWriter = new StoreSink(options.calls.client, {
    database: options.calls.database,
    runId: RUN_ID,
    logger,
  });
  const calls = new CallsJob({ ...options.calls, writer: callsWriter, logger, intervalMs: 500 });
  calls.start();
  return {
    source,
    calls,
    started: Promise.race([started, driven.then(() => undefined)]),
    delivered: () => delivered,
    stop: async () => {
      stop.abort();
      await driven;
      await calls.stop();
      await callsWriter.close();
    },
  };
}

const brief = (c: StoreCounts) => EVENT_TABLES.map((t) => `${t} ${c[t].final} (raw ${c[t].raw})`).join(', ');

describe
  .skipIf(needs(KAFKA).markMissing())
  .concurrent('pipeline under faults: Kafka → StoreWriter → embedded store', () => {
    it.skipIf(needs(KAFKA_MOCK).markMissing())(
      'brokers down for 30 s while events keep arriving: spooled, replayed, stored exactly once',
      async () => {
        const started = Date.now();
        // Always the mock: a real broker cannot be switched off from here.
        const target = await startKafkaTarget({ brokers: 3, real: false });
        targets.push(target);
        const mock = target.mock!;
        const topic = target.name('pipeline.brokers');
        await target.createTopics([{ topic, partitions: 4 }]);
        const database = 'pf_brokers';
        await migrate(local.client, { database, ttlDays: 0, logger });

        const events = source.events;
        const cut1 = Math.floor(events.length * 0.2);
        const cut2 = Math.floor(events.length * 0.8);
        const producer = new EventProducer({
          kafka: kafkaOf(target),
          topic,
          spool: { dir: join(dir, 'spool-brokers') },
          logger,
          lingerMs: LINGER_MS,
        });
        // The outage starts at the worst moment: right after the chunk that completes the first 20 %
        // is in the store, before its offsets are committed (the commit then fails, and that chunk is
        // read again once the brokers are back).
        let down = 0;
        const sink = new StoreSink(local.client, { database, runId: RUN_ID, logger });
        const ingest = ingestFrom(sink, {
          kafka: kafkaOf(target),
          topic,
          groupId: target.name('pf-brokers'),
          calls: { client: local.client, database },
          onDelivered: async (_events, _context, total) => {
            if (down !== 0 || total < cut1) return;
            down = Date.now();
            for (const id of mock.brokerIds) await mock.setDown(id);
          },
        });
        await producer.connect();
        await ingest.started;
        try {
          await sendPaced(producer, events.slice(0, cut1), 400);
          await producer.flush();
          await waitFor(
            () => down !== 0,
            30_000,
            () => `the first ${cut1} events in the store before the outage (have ${ingest.delivered()})`,
          );
          await sendPaced(producer, events.slice(cut1, cut2), (cut2 - cut1) / ((OUTAGE_MS - 2000) / 1000));
          await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down)));
          const inOutage = producer.stats();
          const storedInOutage = ingest.delivered();
          expect(inOutage.mode).toBe('spooling');
          expect(inOutage.spoolSize).toBeGreaterThan(0);
          for (const id of mock.brokerIds) await mock.setUp(id);
          const up = Date.now();

          await sendPaced(producer, events.slice(cut2), 400);
          expect(await producer.drain(90_000)).toBe(true);
          const drainedMs = Date.now() - up;
          const final = await waitForCounts(local.client, database, sizes(source.expected), 120_000);
          const completeMs = Date.now() - up;

          const stats = producer.stats();
          expect(stats).toMatchObject({ failed: 0, spoolSize: 0, mode: 'direct' });
          expect(stats.replayed).toBe(stats.spooled);
          expect(stats.spooled).toBeGreaterThanOrEqual(cut2 - cut1);
          expect(final).not.toBeNull();
          // The chunk whose commit failed was not read again: the consumer seeks past it and commits it
          // after rejoining (ingest/kafka/README.md), so the marker saw every message once and the
          // retransmission flags are exact too.
          const redelivered = ingest.delivered() - events.length;
          expect(redelivered).toBe(0);
          const { counts, retransmissions } = await expectExactStore(local.client, database);
          console.log(
            `[pipeline] brokers down ${up - down} ms: ${inOutage.spooled} events spooled during it (${stats.spooled} in all, ` +
              `${stats.replayed} replayed; ${storedInOutage} events stored when the brokers returned), ` +
              `spool drained ${drainedMs} ms and store complete ${completeMs} ms after the brokers returned; ` +
              `store: ${brief(counts)}; consumer ${JSON.stringify(ingest.source.stats())}; ` +
              `sink ${JSON.stringify({ ...sink.stats(), writer: undefined })}; ${redelivered} events redelivered; ` +
              `retransmissions stored ${retransmissions}, analyzed ${source.summary.sip.retransmissions}; ${Date.now() - started} ms in all`,
          );
        } finally {
          await ingest.stop();
          await producer.close();
          await sink.close().catch(() => undefined);
        }
      },
      200_000,
    );

    it('the store down for 30 s during ingest: the consumer pauses and retries, commits nothing, loses nothing', async () => {
      const started = Date.now();
      const target = await startKafkaTarget({ brokers: 1 });
      targets.push(target);
      const topic = target.name('pipeline.storedown');
      const groupId = target.name('pf-storedown');
      await target.createTopics([{ topic, partitions: 3 }]);
      const database = 'pf_storedown';

      // The store lives in a process of its own (this one owns another): closed and reopened on command.
      const { storeHost } = compilePipelineScripts();
      const host = new JsonLineChild(storeHost, [join(dir, 'store-outage')]);
      children.push(host);
      const opened = await host.next((l) => l.event === 'open', 60_000);
      const client = clientOf(opened.url);
      await migrate(client, { database, ttlDays: 0, logger });

      const kafka = kafkaOf(target);
      const producer = new EventProducer({
        kafka,
        topic,
        spool: { dir: join(dir, 'spool-storedown') },
        logger,
        lingerMs: LINGER_MS,
      });
      // Short writer retries: the outage outlasts them, so the sink sees failures and the consumer's
      // paused retry loop (not the writer) is what rides it out.
      const sink = new StoreSink(client, {
        database,
        runId: RUN_ID,
        logger,
        retry: { attempts: 3, initialDelayMs: 200, maxDelayMs: 1000 },
      });
      const o = await offsets(kafka, groupId, topic);
      const ingest = ingestFrom(sink, {
        kafka,
        topic,
        groupId,
        calls: { client, database },
        maxEventsPerWrite: 1000,
        sinkRetry: { initialMs: 200, maxMs: 2000, jitter: 0.3 },
      });
      await producer.connect();
      await ingest.started;
      try {
        // A steady stream for ~50 s; the store goes down 8 s in, for 30 s.
        const sending = sendPaced(producer, source.events, source.events.length / 50);
        await sleep(8000);
        const storedBefore = ingest.delivered();
        expect(storedBefore).toBeGreaterThan(0);

        const closeAt = host.lines.length;
        host.send('close');
        await host.next((l) => l.event === 'closed', 30_000, closeAt);
        const outageStart = Date.now();
        await waitFor(
          () => ingest.source.stats().sinkFailures > 0,
          15_000,
          () => 'a failed sink call after the store closed',
        );
        await sleep(1000); // a commit already under way when the store went down may still land
        const frozen = await o.committed();
        const storedAtFreeze = ingest.delivered();
        let checks = 0;
        while (Date.now() - outageStart < OUTAGE_MS - 1000) {
          // Nothing can be written, so nothing is committed.
          expect(await o.committed()).toEqual(frozen);
          checks++;
          await sleep(2000);
        }
        await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
        expect(ingest.delivered()).toBe(storedAtFreeze);
        const during = ingest.source.stats();
        const openAt = host.lines.length;
        host.send('open');
        const reopened = await host.next((l) => l.event === 'open' || l.event === 'error', 60_000, openAt);
        expect(reopened).toMatchObject({ event: 'open', port: opened.port });
        const recovered = Date.now();

        await sending;
        await producer.flush();
        const final = await waitForCounts(client, database, sizes(source.expected), 120_000);
        const completeMs = Date.now() - recovered;
        expect(final).not.toBeNull();
        await expectAllCommitted(o);

        const stats = ingest.source.stats();
        const sinkStats = sink.stats();
        expect(during.sinkFailures).toBeGreaterThan(3);
        expect(sinkStats.writersReplaced).toBeGreaterThan(0);
        // Heartbeats during 30 s of retries kept the membership: no rebalance, no crash.
        expect(stats.joins).toBe(1);
        expect(stats.crashes).toBe(0);
        const { counts } = await expectExactStore(client, database);
        console.log(
          `[pipeline] store down ${recovered - outageStart} ms (reopened in ${reopened.ms} ms on port ${reopened.port}): ` +
            `${during.sinkFailures} failed sink calls, ${sinkStats.writersReplaced} writers replaced, offsets frozen over ${checks} checks; ` +
            `store complete ${completeMs} ms after it returned: ${brief(counts)}; consumer ${JSON.stringify(stats)}; ` +
            `writer retries ${sinkStats.writer.retries}, failed batches ${sinkStats.writer.failures}; ${Date.now() - started} ms in all`,
        );
      } finally {
        await ingest.stop();
        await producer.close();
        await sink.close().catch(() => undefined);
        await o.close();
        host.send('quit');
        await host.exited;
      }
    }, 200_000);

    it('the ingest process SIGKILLed mid-batch and restarted on its store: every event once', async () => {
      const started = Date.now();
      const target = await startKafkaTarget({ brokers: 1 });
      targets.push(target);
      const topic = target.name('pipeline.sigkill');
      const groupId = target.name('pf-sigkill');
      await target.createTopics([{ topic, partitions: 3 }]);
      const database = 'pf_sigkill';
      const { consumeToStore } = compilePipelineScripts();

      const kafka = kafkaOf(target);
      const producer = new EventProducer({
        kafka,
        topic,
        spool: { dir: join(dir, 'spool-sigkill') },
        logger,
        lingerMs: LINGER_MS,
      });
      await producer.connect();
      // A backlog first, so the consumer fetches batches larger than its 250-event chunks and the
      // kill lands inside one; the rest keeps arriving while the process dies and restarts.
      const backlog = Math.floor(source.events.length * 0.4);
      for (const e of source.events.slice(0, backlog)) await producer.send(e);
      await producer.flush();
      const sending = sendPaced(producer, source.events.slice(backlog), 200);

      const config = {
        brokers: target.brokers,
        topic,
        groupId,
        dataDir: join(dir, 'store-sigkill'),
        port: 0,
        database,
        runId: RUN_ID,
        maxEventsPerWrite: 250,
        holdAfterStoredMs: 150,
      };
      const o = await offsets(kafka, groupId, topic);
      try {
        const first = new JsonLineChild(consumeToStore, [JSON.stringify(config)]);
        children.push(first);
        const up1 = await first.next((l) => l.event === 'started', 60_000);
        // Kill right after a chunk is in the store and before its offsets are committed: the worst
        // moment, since that chunk must be read and written again after the restart.
        const killedOn = await first.next((l) => l.event === 'stored' && Number(l.total) >= 1500, 90_000);
        first.kill('SIGKILL');
        expect((await first.exited).signal).toBe('SIGKILL');
        const killedAt = Date.now();
        const storedByFirst = first.lines.filter((l) => l.event === 'stored');
        const lastChunk = String(storedByFirst.at(-1)?.chunk);
        expect(Number(storedByFirst.at(-1)?.total)).toBeLessThan(source.events.length);
        const committedAtKill = await o.committed();
        // The kill came between the write and the commit: that chunk is stored but not committed.
        const [, part, firstOffset] = /^(\d+):(\d+)-\d+$/.exec(lastChunk) ?? [];
        expect(BigInt(committedAtKill.get(Number(part)) ?? '0')).toBeLessThanOrEqual(BigInt(firstOffset));

        // The same store directory (its chDB lock released by the kernel) and the same port.
        const second = new JsonLineChild(consumeToStore, [
          JSON.stringify({ ...config, port: up1.port, holdAfterStoredMs: 0 }),
        ]);
        children.push(second);
        const up2 = await second.next((l) => l.event === 'started', 60_000);
        expect(up2.port).toBe(up1.port);
        const client = clientOf(up2.url);
        await sending;
        await producer.flush();
        const final = await waitForCounts(client, database, sizes(source.expected), 120_000);
        const completeMs = Date.now() - killedAt;
        expect(final).not.toBeNull();
        // A restarted process starts with an empty RetransmissionMarker: a retransmission whose original
        // it did not see is not marked (ingest/retransmissions.ts says so). Only missed, never invented.
        const { counts, retransmissions } = await expectExactStore(client, database, 'checked-apart');
        expect(retransmissions).toBeLessThanOrEqual(source.summary.sip.retransmissions);

        second.kill('SIGTERM');
        const stopped = await second.next((l) => l.event === 'stopped', 30_000);
        expect((await second.exited).code).toBe(0);
        await expectAllCommitted(o);
        const storedBySecond = second.lines.filter((l) => l.event === 'stored');
        const secondEvents = Number(storedBySecond.at(-1)?.total ?? 0);
        // The restarted process read from the last commit: the killed chunk again, then the rest.
        expect(Number(killedOn.total) + secondEvents).toBeGreaterThanOrEqual(source.events.length);
        console.log(
          `[pipeline] SIGKILL after ${killedOn.total} events stored (last chunk ${lastChunk}, committed then ` +
            `${JSON.stringify(Object.fromEntries(committedAtKill))}); restarted process (store reopened in ${up2.storeMs} ms) ` +
            `stored ${secondEvents} events, store complete ${completeMs} ms after the kill; ` +
            `${Number(killedOn.total) + secondEvents - source.events.length} events delivered twice, ` +
            `store: ${brief(counts)}; retransmissions stored ${retransmissions} of ${source.summary.sip.retransmissions} ` +
            `(the restarted process did not see the originals of the others); second process ${JSON.stringify(stopped.consumer)}; ` +
            `${Date.now() - started} ms in all`,
        );
      } finally {
        await producer.close();
        await o.close();
      }
    }, 200_000);

    // The product's own process: an outage longer than the writer's retries makes its writer fail
    // for good (sticky); `callscope ingest` goes through ingest/store-sink.ts, which starts a new writer
    // so that the consumer's retry of the uncommitted chunk succeeds once the store is back. It stamps
    // run id '' (a live stream), so the summary is read for that run.
    it('callscope ingest (the product command) rides out the store down for 30 s and stores everything', async () => {
      const started = Date.now();
      const target = await startKafkaTarget({ brokers: 1 });
      targets.push(target);
      const topic = target.name('pipeline.cli-storedown');
      const groupId = target.name('pf-cli-storedown');
      await target.createTopics([
        { topic, partitions: 3 },
        { topic: `${topic}.dlq`, partitions: 1 },
      ]);
      const database = 'pf_cli_storedown';
      const { storeHost, callscope } = compilePipelineScripts();
      const host = new JsonLineChild(storeHost, [join(dir, 'store-outage-cli')]);
      children.push(host);
      const opened = await host.next((l) => l.event === 'open', 60_000);
      const client = clientOf(opened.url);
      const ingest = new JsonLineChild(callscope, [
        'ingest',
        '--kafka',
        target.brokers,
        '--topic',
        topic,
        '--partitions',
        '3',
        '--group',
        groupId,
        '--clickhouse',
        String(opened.url),
        '--database',
        database,
        '--ttl-days',
        '0',
        '--json',
        '--log-level',
        'error',
      ]);
      children.push(ingest);
      const kafka = kafkaOf(target);
      const producer = new EventProducer({
        kafka,
        topic,
        spool: { dir: join(dir, 'spool-cli-storedown') },
        logger,
        lingerMs: LINGER_MS,
      });
      try {
        await ingest.next((l) => 'kafka' in l, 60_000);
        await producer.connect();
        const sending = sendPaced(producer, source.events, source.events.length / 45);
        await sleep(8000);
        const before = await waitForCounts(client, database, sizes(source.expected), 0);
        const closeAt = host.lines.length;
        host.send('close');
        await host.next((l) => l.event === 'closed', 30_000, closeAt);
        await sleep(OUTAGE_MS);
        const openAt = host.lines.length;
        host.send('open');
        await host.next((l) => l.event === 'open', 60_000, openAt);
        const recovered = Date.now();
        await sending;
        await producer.flush();
        // The store-outage scenario above is complete ~15 s after the last event is sent; give it 40.
        const final = await waitForCounts(client, database, sizes(source.expected), 40_000);
        console.log(
          `[pipeline] callscope ingest, store down 30 s: before the outage ${JSON.stringify(before)}, ` +
            `${Math.round((Date.now() - recovered) / 1000)} s after it returned ${JSON.stringify(final)} ` +
            `of ${JSON.stringify(sizes(source.expected))}; ingest still running: ${ingest.alive}; ` +
            `its log ends: ${ingest.stderrTail.split('\n').at(-1)?.slice(0, 300)}; ${Date.now() - started} ms in all`,
        );
        expect(final).toEqual(sizes(source.expected));
        await expectExactStore(client, database, 'exact', '');
      } finally {
        await producer.close();
        ingest.kill('SIGKILL');
        await ingest.exited;
        host.send('quit');
        await host.exited;
      }
    }, 200_000);

    it('poison messages go to the dead-letter topic with their reason; everything else is stored', async () => {
      const started = Date.now();
      const target = await startKafkaTarget({ brokers: 1 });
      targets.push(target);
      const topic = target.name('pipeline.poison');
      const dlq = `${topic}.dlq`;
      await target.createTopics([
        { topic, partitions: 2 },
        { topic: dlq, partitions: 1 },
      ]);
      const database = 'pf_poison';
      await migrate(local.client, { database, ttlDays: 0, logger });

      const kafka = kafkaOf(target);
      const events = source.events;
      const callId = events[100].correlationId;
      const frame = encodeHep3(events[100]);
      const badChunk = Buffer.from(frame);
      badChunk.writeUInt16BE(3, 10); // the first chunk's length: below its own 6-byte header
      const poison = [
        { value: Buffer.from('definitely not HEP\u0000\u00ff'), reason: /^HEP3 decode: no HEP3 magic$/ },
        { value: Buffer.alloc(0), reason: /^empty message value/ },
        { value: frame.subarray(0, frame.length - 40), reason: /^HEP3 decode: frame length \d+ exceeds/ },
        { value: badChunk, reason: /^HEP3 decode: chunk 0\/1 length 3 is below 6$/ },
      ];
      // Decodes as HEP3 but is not SIP: the writer has no table for it (counted, not stored, no DLQ).
      const notSip: CaptureEvent = {
        ...events[100],
        timestampNs: events[100].timestampNs + 1000n,
        protoType: HEP_PROTO_SIP,
        payload: Buffer.from('this is not a SIP message\r\n\r\n'),
      };

      const producer = new EventProducer({
        kafka,
        topic,
        spool: { dir: join(dir, 'spool-poison') },
        logger,
        lingerMs: LINGER_MS,
      });
      const raw = kafka.producer({ allowAutoTopicCreation: false });
      const sink = new StoreSink(local.client, { database, runId: RUN_ID, logger });
      await producer.connect();
      await raw.connect();
      const ingest = ingestFrom(sink, {
        kafka,
        topic,
        groupId: target.name('pf-poison'),
        calls: { client: local.client, database },
      });
      await ingest.started;
      try {
        // Events at a steady rate, a poison message in between every quarter, the non-SIP one at the end.
        const quarter = Math.ceil(events.length / 4);
        for (let q = 0; q < 4; q++) {
          await sendPaced(producer, events.slice(q * quarter, (q + 1) * quarter), 1000);
          await producer.flush();
          await raw.send({
            topic,
            acks: -1,
            messages: [{ key: callId, value: poison[q].value, headers: { origin: `poison-${q}` } }],
          });
        }
        await raw.send({ topic, acks: -1, messages: [eventMessage(notSip)] });
        await producer.flush();
        const final = await waitForCounts(local.client, database, sizes(source.expected), 120_000);
        await waitFor(
          () => ingest.source.stats().deadLettered >= poison.length && sink.stats().writer.skipped >= 1,
          30_000,
          () =>
            `${poison.length} dead letters and 1 skipped event (have ${JSON.stringify(ingest.source.stats())})`,
        );
        expect(final).not.toBeNull();
        expect(ingest.source.stats().deadLettered).toBe(poison.length);
        expect(ingest.source.stats().sip.unparsable).toBe(1);
        expect(sink.stats().writer.skippedByReason).toEqual({ 'unparsable SIP': 1 });
        const { counts } = await expectExactStore(local.client, database);

        // The dead-letter topic, read with a plain kafkajs consumer: each poison message, byte for byte,
        // with its reason and origin.
        const reader = kafka.consumer({ groupId: target.name('pf-dlq-reader'), ...GROUP_TIMING });
        const letters: { key: string | null; value: Buffer | null; headers: Record<string, string> }[] = [];
        await reader.connect();
        await reader.subscribe({ topic: dlq, fromBeginning: true });
        await reader.run({
          eachMessage: async ({ message }) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
            letters.push({ key: message.key?.toString('latin1') ?? null, value: message.value, headers });
          },
        });
        try {
          await waitFor(
            () => letters.length >= poison.length,
            30_000,
            () => `${poison.length} dead letters (have ${letters.length})`,
          );
          await sleep(500); // anything beyond them would show now
        } finally {
          await reader.disconnect();
        }
        expect(letters.length).toBe(poison.length);
        letters.sort((a, b) => a.headers.origin.localeCompare(b.headers.origin));
        const partitions = new Set<string>();
        letters.forEach((letter, q) => {
          expect(letter.headers.origin).toBe(`poison-${q}`);
          expect(letter.key).toBe(callId);
          expect(letter.value ?? Buffer.alloc(0)).toEqual(poison[q].value);
          expect(letter.headers[HEADER_ERROR]).toMatch(poison[q].reason);
          expect(letter.headers[HEADER_TOPIC]).toBe(topic);
          expect(letter.headers[HEADER_OFFSET]).toMatch(/^\d+$/);
          partitions.add(letter.headers[HEADER_PARTITION]);
        });
        // Same key, same partition: the Call-ID's.
        expect(partitions.size).toBe(1);
        console.log(
          `[pipeline] poison: ${letters.length} dead letters (${letters.map((l) => JSON.stringify(l.headers[HEADER_ERROR])).join(', ')}), ` +
            `1 HEP event with unparsable SIP counted as skipped by the writer; store: ${brief(counts)}; ` +
            `consumer ${JSON.stringify(ingest.source.stats())}; ${Date.now() - started} ms in all`,
        );
      } finally {
        await ingest.stop();
        await producer.close();
        await raw.disconnect();
        await sink.close().catch(() => undefined);
      }
    }, 200_000);

    it('two consumers rebalancing mid-stream, then the whole topic replayed by a new group: every call once, and unchanged by the replay', async () => {
      const started = Date.now();
      const target = await startKafkaTarget({ brokers: 1 });
      targets.push(target);
      const topic = target.name('pipeline.rebalance');
      const groupId = target.name('pf-rebalance');
      await target.createTopics([{ topic, partitions: 6 }]);
      const database = 'pf_rebalance';
      await migrate(local.client, { database, ttlDays: 0, logger });
      const calls = { client: local.client, database };
      const producer = new EventProducer({
        kafka: kafkaOf(target),
        topic,
        spool: { dir: join(dir, 'spool-rebalance') },
        logger,
        lingerMs: LINGER_MS,
      });
      const sinks = [0, 1, 2].map(() => new StoreSink(local.client, { database, runId: RUN_ID, logger }));
      const a = ingestFrom(sinks[0]!, { kafka: kafkaOf(target), topic, groupId, calls });
      let b: ReturnType<typeof ingestFrom> | null = null;
      let replay: ReturnType<typeof ingestFrom> | null = null;
      await producer.connect();
      await a.started;
      const events = source.events;
      const third = Math.floor(events.length / 3);
      try {
        await sendPaced(producer, events.slice(0, third), 400);
        // A second consumer joins (a rebalance), then the first leaves (another): B2BUA legs and
        // calls in progress change hands.
        b = ingestFrom(sinks[1]!, { kafka: kafkaOf(target), topic, groupId, calls });
        await b.started;
        await sendPaced(producer, events.slice(third, 2 * third), 400);
        await a.stop();
        await sendPaced(producer, events.slice(2 * third), 400);
        await producer.flush();
        const final = await waitForCounts(local.client, database, sizes(source.expected), 120_000);
        expect(final).not.toBeNull();
        // A consumer handed a partition mid-stream has not seen the originals of its retransmissions
        // (their flags are checked apart); the calls do not depend on the flags.
        await expectExactStore(local.client, database, 'checked-apart');
        const writtenByB = b.calls.stats().versionsWritten;
        // The whole topic again, from its start, by another group into the same store.
        replay = ingestFrom(sinks[2]!, {
          kafka: kafkaOf(target),
          topic,
          groupId: target.name('pf-replay'),
          calls,
        });
        await replay.started;
        await waitFor(
          () => replay!.delivered() >= events.length,
          120_000,
          () => `the replay delivered ${replay!.delivered()} of ${events.length}`,
        );
        await sleep(2000); // a few cycles of both jobs over the replayed messages
        await replay.stop();
        await b.stop();
        expect(replay.calls.stats().cycles).toBeGreaterThan(0);
        const { counts } = await expectExactStore(local.client, database, 'checked-apart');
        // Every call was computed again from the replayed messages and found unchanged: no new version.
        expect(replay.calls.stats().callsComputed).toBeGreaterThan(0);
        expect(replay.calls.stats().versionsWritten).toBe(0);
        expect(b.calls.stats().versionsWritten).toBe(writtenByB);
        console.log(
          `[pipeline] rebalance: consumer A ${JSON.stringify(a.source.stats())}, B ${JSON.stringify(b.source.stats())}; ` +
            `calls jobs A ${JSON.stringify(a.calls.stats())}, B ${JSON.stringify(b.calls.stats())}, ` +
            `replay ${JSON.stringify(replay.calls.stats())}; ${expectedCalls.size} calls; store: ${brief(counts)}; ${Date.now() - started} ms in all`,
        );
      } finally {
        await a.stop();
        await b?.stop();
        await replay?.stop();
        await producer.close();
        for (const sink of sinks) await sink.close().catch(() => undefined);
      }
    }, 200_000);
  });

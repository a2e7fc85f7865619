/**
 * The two outages the transport must ride out, 30 s each, run side by side (they use separate
 * clusters, topics and groups, so they are independent):
 * - every broker down while capture keeps sending: events spool to disk, replay in order when the
 *   brokers return, and the sink gets every event (once, by id);
 * - the store (sink) failing: the partition pauses, retries back off, nothing is committed until the
 *   write succeeds, heartbeats keep the membership, and nothing is lost or stored twice.
 */
import { afterAll, expect, it } from 'vitest';
import type { CaptureEvent } from '../../core/event.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { EventConsumer } from '../../ingest/kafka/consumer.js';
import { EventProducer } from '../../ingest/kafka/producer.js';
import { KAFKA, KAFKA_MOCK, needs, removeTmpDir, tmpDir } from '../oracle/tools.js';
import {
  CollectingSink,
  canonical,
  GROUP_TIMING,
  type KafkaTarget,
  orderByCall,
  sleep,
  startKafkaTarget,
  synthesizeEvents,
  testLogger,
  waitFor,
} from './fixtures.js';

const OUTAGE_MS = 30_000;
const logger = testLogger();
const dirs: string[] = [];
const targets: KafkaTarget[] = [];

afterAll(async () => {
  for (const t of targets) await t.stop();
  for (const d of dirs) removeTmpDir(d);
});

/** Sends `events` at about `perSecond`, awaiting each acceptance (the capture loop's backpressure). */
async function sendPaced(producer: EventProducer, events: CaptureEvent[], perSecond: number): Promise<void> {
  const start = Date.now();
  for (let i = 0; i < events.length; i++) {
    await producer.send(events[i]);
    if (i % 20 === 19) {
      const due = start + ((i + 1) * 1000) / perSecond;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
  }
}

// Independent scenarios (own cluster, topic, group each): run side by side to halve the wall time.
needs(KAFKA).describe.concurrent('Kafka outages', () => {
  needs(KAFKA_MOCK).it(
    'all brokers down for 30 s: events spool, then replay in order, each reaching the sink once',
    async () => {
      // Always the mock: a real broker cannot be switched off from here.
      const target = await startKafkaTarget({ brokers: 3, real: false });
      targets.push(target);
      const mock = target.mock!;
      const topic = target.name('callscope.outage');
      await target.createTopics([{ topic, partitions: 4 }]);
      const events = await synthesizeEvents(6000, '-outage');
      const [before, during, after] = [events.slice(0, 1500), events.slice(1500, 4500), events.slice(4500)];

      const spoolDir = tmpDir('callscope-kafka-spool-');
      dirs.push(spoolDir);
      const kafka = () => createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });
      const producer = new EventProducer({ kafka: kafka(), topic, spool: { dir: spoolDir }, logger });
      const sink = new CollectingSink();
      const consumer = new EventConsumer({
        kafka: kafka(),
        topic,
        groupId: target.name('outage'),
        onChunk: sink.write,
        logger,
        ...GROUP_TIMING,
      });
      await producer.connect();
      await consumer.start();
      try {
        await sendPaced(producer, before, 1000);
        await producer.flush();
        await waitFor(
          () => sink.byId.size >= before.length,
          30_000,
          () => `the first ${before.length} events before the outage (have ${sink.byId.size})`,
        );

        const down = Date.now();
        for (const id of mock.brokerIds) await mock.setDown(id);
        await sendPaced(producer, during, during.length / (OUTAGE_MS / 1000));
        await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down)));
        const inOutage = producer.stats();
        expect(inOutage.mode).toBe('spooling');
        expect(inOutage.spooled).toBeGreaterThan(0);
        expect(inOutage.spoolSize).toBeGreaterThan(0);
        for (const id of mock.brokerIds) await mock.setUp(id);
        const up = Date.now();

        await sendPaced(producer, after, 1000);
        expect(await producer.drain(60_000)).toBe(true);
        const drainedMs = Date.now() - up;
        await waitFor(
          () => sink.byId.size >= events.length,
          60_000,
          () => `all ${events.length} events after the outage (have ${sink.byId.size})`,
        );
        const stats = producer.stats();
        console.log(
          `[kafka] broker outage ${up - down} ms: spooled ${inOutage.spooled} during it ` +
            `(${stats.spooled} in all), replayed ${stats.replayed}, spool drained ${drainedMs} ms after the brokers returned, ` +
            `sink complete ${Date.now() - up} ms after; sink saw ${sink.duplicates} repeats; consumer ${JSON.stringify(consumer.stats())}`,
        );

        expect(stats).toMatchObject({ failed: 0, spoolSize: 0, mode: 'direct' });
        expect(stats.replayed).toBe(stats.spooled);
        expect(stats.sent + stats.replayed).toBeGreaterThanOrEqual(events.length);
        // Every event exactly once by id, with its content intact.
        expect(sink.byId.size).toBe(events.length);
        expect(sink.arrivals.map(canonical).sort()).toEqual(events.map(canonical).sort());
        // Each call's events in the order they were sent, across the outage and the replay.
        expect(orderByCall(sink.arrivals)).toEqual(orderByCall(events));
      } finally {
        await consumer.stop();
        await producer.close();
      }
    },
    180_000,
  );

  it('sink failing for 30 s: pause, back off, commit nothing until written, lose nothing', async () => {
    const target = await startKafkaTarget({ brokers: 1 });
    targets.push(target);
    const topic = target.name('callscope.sinkdown');
    await target.createTopics([{ topic, partitions: 3 }]);
    const events = await synthesizeEvents(5000, '-sinkdown');
    const groupId = target.name('sinkdown');
    const kafka = createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });

    const spoolDir = tmpDir('callscope-kafka-spool-');
    dirs.push(spoolDir);
    const producer = new EventProducer({ kafka, topic, spool: { dir: spoolDir }, logger });
    await producer.connect();
    for (const e of events.slice(0, 4000)) await producer.send(e);
    await producer.flush();

    const sink = new CollectingSink();
    // Fail from the second write on: one chunk lands, then the store goes down.
    const write = sink.write;
    let writes = 0;
    const admin = kafka.admin();
    await admin.connect();
    const committed = async (): Promise<Map<number, bigint>> => {
      const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map(t.partitions.map((p) => [p.partition, BigInt(p.offset)]));
    };
    const consumer = new EventConsumer({
      kafka,
      topic,
      groupId,
      logger,
      maxEventsPerWrite: 500,
      sinkRetry: { initialMs: 100, maxMs: 2000, jitter: 0.3 },
      ...GROUP_TIMING,
      onChunk: async (batch, context) => {
        if (++writes === 2 && !sink.failing) sink.failing = 'store unavailable (test)';
        await write(batch, context);
      },
    });
    await consumer.start();
    try {
      await waitFor(
        () => sink.failing !== null,
        30_000,
        () => 'the second write',
      );
      const outageStart = Date.now();
      await sleep(1000); // a commit already under way when the store went down may still land
      const frozen = await committed();
      const writtenAtFreeze = new Map(sink.writtenOffsets);
      // Capture keeps producing during the store outage.
      await sendPaced(producer, events.slice(4000), 100);
      while (Date.now() - outageStart < OUTAGE_MS) {
        const now = await committed();
        // Nothing committed while nothing could be written...
        expect(now).toEqual(frozen);
        // ...and a commit never runs ahead of what the sink accepted.
        for (const [p, off] of now) expect(off).toBeLessThanOrEqual((writtenAtFreeze.get(p) ?? -1n) + 1n);
        await sleep(2000);
      }
      expect(sink.byId.size).toBeLessThan(events.length);
      const during = consumer.stats();
      sink.failing = null;
      const recovered = Date.now();

      await waitFor(
        () => sink.byId.size >= events.length,
        60_000,
        () => `all ${events.length} events after the store came back (have ${sink.byId.size})`,
      );
      // Once everything is written, everything is committed: committed = end of each partition.
      const ends = new Map(
        (await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)] as const),
      );
      let final = await committed();
      for (let i = 0; i < 50 && [...ends].some(([p, h]) => final.get(p) !== h); i++) {
        await sleep(100);
        final = await committed();
      }
      expect(final).toEqual(ends);

      const stats = consumer.stats();
      console.log(
        `[kafka] sink outage ${recovered - outageStart} ms: ${during.sinkFailures} failed sink calls, all ${events.length} ` +
          `events written ${Date.now() - recovered} ms after recovery; consumer ${JSON.stringify(stats)}`,
      );
      expect(during.sinkFailures).toBeGreaterThan(5);
      // The failed chunk was offered again and accepted: nothing lost, nothing stored twice.
      expect(sink.byId.size).toBe(events.length);
      expect(sink.arrivals.map(canonical).sort()).toEqual(events.map(canonical).sort());
      expect(orderByCall(sink.arrivals)).toEqual(orderByCall(events));
      // Heartbeats during 30 s of retries kept the membership: no rebalance, no crash.
      expect(stats.joins).toBe(1);
      expect(stats.crashes).toBe(0);
    } finally {
      await consumer.stop();
      await admin.disconnect();
      await producer.close();
    }
  }, 180_000);
});

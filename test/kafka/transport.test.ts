/**
 * Capture → Kafka → ingest against a Kafka-protocol broker (librdkafka's mock cluster, or the broker
 * in KAFKA_BROKERS): 10,000 events arrive as the same multiset with every call's order kept; a
 * poison message goes to the dead-letter topic while the rest flows; topics are ensured even by a
 * broker that refuses CreateTopics.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { CaptureEvent } from '../../core/event.js';
import { createLogger } from '../../core/log.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC } from '../../ingest/kafka/constants.js';
import { EventConsumer } from '../../ingest/kafka/consumer.js';
import { eventMessage } from '../../ingest/kafka/message.js';
import { EventProducer } from '../../ingest/kafka/producer.js';
import { ensureTopics } from '../../ingest/kafka/topics.js';
import { KAFKA, needs, removeTmpDir, tmpDir } from '../oracle/tools.js';
import {
  CollectingSink,
  canonical,
  eventId,
  GROUP_TIMING,
  type KafkaTarget,
  orderByCall,
  startKafkaTarget,
  synthesizeEvents,
  testLogger,
  waitFor,
} from './fixtures.js';

const logger = testLogger();

needs(KAFKA).describe('Kafka transport', () => {
  let target: KafkaTarget;
  const dirs: string[] = [];

  beforeAll(async () => {
    target = await startKafkaTarget({ brokers: 3 });
  });

  afterAll(async () => {
    await target?.stop();
    for (const d of dirs) removeTmpDir(d);
  });

  const kafka = () => createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });

  it('delivers 10,000 events as the same multiset, each call in order', async () => {
    const topic = target.name('callscope.events');
    await target.createTopics([{ topic, partitions: 4 }]);
    const events = await synthesizeEvents(10_000);
    expect(new Set(events.map(eventId)).size).toBe(events.length); // ids are unique by construction

    const spoolDir = tmpDir('callscope-kafka-spool-');
    dirs.push(spoolDir);
    const producer = new EventProducer({ kafka: kafka(), topic, spool: { dir: spoolDir }, logger });
    const sink = new CollectingSink();
    const consumer = new EventConsumer({
      kafka: kafka(),
      topic,
      groupId: target.name('roundtrip'),
      onChunk: sink.write,
      logger,
      maxEventsPerWrite: 1000,
      ...GROUP_TIMING,
    });
    await producer.connect();
    const tJoin = Date.now();
    await consumer.start(); // resolves once the group is joined (the mock takes ~3 s)
    const joinMs = Date.now() - tJoin;
    const t0 = Date.now();
    try {
      for (const e of events) await producer.send(e);
      await producer.flush();
      const produced = Date.now() - t0;
      expect(producer.stats()).toMatchObject({ sent: 10_000, spooled: 0, failed: 0, queued: 0 });

      await waitFor(
        () => sink.byId.size >= events.length,
        60_000,
        () => `${events.length} events (have ${sink.byId.size})`,
      );
      console.log(
        `[kafka] 10,000 events: group joined in ${joinMs} ms; produced in ${produced} ms, all consumed after ${Date.now() - t0} ms`,
      );

      // The same multiset: every event back, field for field as HEP3 carries it, nothing more.
      const sent = events.map(canonical).sort();
      const got = sink.arrivals.map(canonical).sort();
      expect(got).toEqual(sent);
      expect(sink.duplicates).toBe(0);
      // Per Call-ID, the consumer saw them in the order they were sent.
      expect(orderByCall(sink.arrivals)).toEqual(orderByCall(events));
      // Decoded events carry no key-less surprises: events without Call-ID came back without one.
      expect(sink.arrivals.filter((e) => !e.correlationId).length).toBe(
        events.filter((e) => !e.correlationId).length,
      );
    } finally {
      await consumer.stop();
      await producer.close();
    }
  });

  it('sends a poison message to <topic>.dlq with the reason, and the rest flows', async () => {
    const topic = target.name('callscope.poison');
    const dlq = `${topic}.dlq`;
    await target.createTopics([
      { topic, partitions: 2 },
      { topic: dlq, partitions: 1 },
    ]);
    const events = await synthesizeEvents(300, '-poison');
    const raw = kafka().producer({ allowAutoTopicCreation: false });
    await raw.connect();
    const callId = events[10].correlationId;
    const toMsg = (e: CaptureEvent) => eventMessage(e);
    await raw.send({ topic, acks: -1, messages: events.slice(0, 150).map(toMsg) });
    const garbage = Buffer.from('this is not a HEP3 frame \u0000\u0001\u0002');
    const badLength = Buffer.from([0x48, 0x45, 0x50, 0x33, 0xff, 0xff, 0, 0]);
    await raw.send({
      topic,
      acks: -1,
      messages: [
        { key: callId, value: garbage, headers: { origin: 'test' } },
        { key: callId, value: badLength },
      ],
    });
    await raw.send({ topic, acks: -1, messages: events.slice(150).map(toMsg) });
    await raw.disconnect();

    const warnings: string[] = [];
    const sink = new CollectingSink();
    const consumer = new EventConsumer({
      kafka: kafka(),
      topic,
      groupId: target.name('poison'),
      onChunk: sink.write,
      logger: createLogger({ level: 'warn', write: (l) => warnings.push(l) }),
      ...GROUP_TIMING,
    });
    await consumer.start();
    try {
      await waitFor(
        () => sink.byId.size >= events.length && consumer.stats().deadLettered >= 2,
        30_000,
        () => `all events and 2 dead letters (have ${sink.byId.size}, ${consumer.stats().deadLettered})`,
      );
      expect(sink.arrivals.map(canonical).sort()).toEqual(events.map(canonical).sort());
      expect(orderByCall(sink.arrivals)).toEqual(orderByCall(events));
      expect(warnings.join('')).toMatch(/dead-letter topic/);
    } finally {
      await consumer.stop();
    }

    // Read the dead-letter topic back with a plain kafkajs consumer.
    const reader = kafka().consumer({ groupId: target.name('dlq-reader'), ...GROUP_TIMING });
    const letters: { value: Buffer | null; headers: Record<string, string>; key: string | null }[] = [];
    await reader.connect();
    await reader.subscribe({ topic: dlq, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        letters.push({ value: message.value, headers, key: message.key?.toString() ?? null });
      },
    });
    try {
      await waitFor(
        () => letters.length >= 2,
        30_000,
        () => `2 dead letters (have ${letters.length})`,
      );
    } finally {
      await reader.disconnect();
    }
    expect(letters.length).toBe(2);
    const [first, second] = letters;
    expect(first.value).toEqual(garbage);
    expect(first.key).toBe(callId);
    expect(first.headers[HEADER_ERROR]).toMatch(/^HEP3 decode: no HEP3 magic/);
    expect(first.headers[HEADER_TOPIC]).toBe(topic);
    expect(first.headers.origin).toBe('test'); // original headers are kept
    expect(second.headers[HEADER_ERROR]).toMatch(/frame length 65535 exceeds/);
    // Both came from the Call-ID's partition, one after the other.
    expect(second.headers[HEADER_PARTITION]).toBe(first.headers[HEADER_PARTITION]);
    expect(BigInt(second.headers[HEADER_OFFSET])).toBe(BigInt(first.headers[HEADER_OFFSET]) + 1n);
  });

  it('hands partitions over on rebalance (a member joins, another leaves) without losing events', async () => {
    const topic = target.name('callscope.rebalance');
    const groupId = target.name('rebalance');
    await target.createTopics([{ topic, partitions: 4 }]);
    const events = await synthesizeEvents(6000, '-rebalance');
    const spoolDir = tmpDir('callscope-kafka-spool-');
    dirs.push(spoolDir);
    const producer = new EventProducer({ kafka: kafka(), topic, spool: { dir: spoolDir }, logger });
    await producer.connect();
    // One sink shared by both members: the store they both write to.
    const sink = new CollectingSink();
    const member = () =>
      new EventConsumer({
        kafka: kafka(),
        topic,
        groupId,
        onChunk: sink.write,
        logger,
        maxEventsPerWrite: 200,
        ...GROUP_TIMING,
      });
    const a = member();
    const b = member();
    await a.start();
    const admin = kafka().admin();
    await admin.connect();
    try {
      // Events keep coming while the group changes: 2,000 before B joins, 2,000 while both run,
      // 2,000 after A left.
      const sendSome = async (from: number, to: number) => {
        for (const e of events.slice(from, to)) await producer.send(e);
        await producer.flush();
      };
      await sendSome(0, 2000);
      await waitFor(
        () => sink.byId.size >= 1000,
        30_000,
        () => `A writing (have ${sink.byId.size})`,
      );
      await b.start(); // resolves after the rebalance that gave B its share
      await sendSome(2000, 4000);
      await waitFor(
        () => b.stats().written > 0,
        30_000,
        () => 'B writing',
      );
      await a.stop(); // leaves the group: its partitions go to B
      await sendSome(4000, 6000);
      await waitFor(
        () => sink.byId.size >= events.length,
        60_000,
        () => `all ${events.length} events (have ${sink.byId.size})`,
      );
      await b.stop();
      console.log(
        `[kafka] rebalance: A ${JSON.stringify(a.stats())}, B ${JSON.stringify(b.stats())}, ${sink.duplicates} repeats`,
      );
      expect(sink.arrivals.map(canonical).sort()).toEqual(events.map(canonical).sort());
      expect(orderByCall(sink.arrivals)).toEqual(orderByCall(events));
      expect(a.stats().written).toBeGreaterThan(0);
      // Every write is committed at once, and what was written while the group rebalanced is
      // committed right after the rejoin: only a chunk in flight on a partition that moved to the
      // other member is written twice (the mock refuses commits during a rebalance).
      expect(sink.duplicates).toBeLessThanOrEqual(200);
      // And after the last member stopped, everything written is committed.
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      for (const p of await admin.fetchTopicOffsets(topic)) {
        expect(committed.partitions.find((c) => c.partition === p.partition)?.offset).toBe(p.high);
      }
    } finally {
      await a.stop();
      await b.stop();
      await admin.disconnect();
      await producer.close();
    }
  });

  it('ensures topics even where CreateTopics is refused, and names the ones that do not exist', async () => {
    const topic = target.name('callscope.ensure');
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l) });
    if (target.mock) {
      // The mock refuses CreateTopics (its controller id is 0, which is no broker): a topic that
      // already exists is accepted, one that does not is a clear error.
      await target.createTopics([{ topic, partitions: 3 }]);
      const ensured = await ensureTopics(kafka(), [{ topic, partitions: 3 }], log);
      expect(ensured).toEqual([{ topic, partitions: 3, created: false }]);
      const missing = target.name('callscope.missing');
      await expect(ensureTopics(kafka(), [{ topic: missing, partitions: 1 }], log)).rejects.toThrow(
        new RegExp(
          `${missing.replace(/\./g, '\\.')} does not exist and could not be created: .*Broker 0 not found`,
        ),
      );
      expect(lines.join('')).toMatch(/topic creation refused/);
    } else {
      const ensured = await ensureTopics(kafka(), [{ topic, partitions: 3 }], log);
      expect(ensured).toEqual([{ topic, partitions: 3, created: true }]);
      // Again: "already exists" is fine.
      expect(await ensureTopics(kafka(), [{ topic, partitions: 3 }], log)).toEqual([
        { topic, partitions: 3, created: false },
      ]);
    }
  });
});

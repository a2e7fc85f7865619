/**
 * The producer's edges against the mock cluster: starting while every broker is down, backpressure
 * when both the memory queue and the spool are full, and a spool left by a stopped process being
 * replayed, in order, by the next one.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  CollectingSink,
  canonical,
  eventId,
  GROUP_TIMING,
  type KafkaTarget,
  orderByCall,
  sleep,
  startKafkaTarget,
  synthesizeEvents,
  testLogger,
  waitFor,
} from '../../test/kafka/fixtures.js';
import { KAFKA_MOCK, needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { createKafka } from './client.js';
import { EventConsumer } from './consumer.js';
import { EventProducer } from './producer.js';

const logger = testLogger();

needs(KAFKA_MOCK).describe('Kafka producer while brokers are down', () => {
  let target: KafkaTarget;
  let consumer: EventConsumer;
  let topic: string;
  const sink = new CollectingSink();
  const dirs: string[] = [];
  const kafka = () => createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });
  const down = () => target.mock!.setDown(1);
  const up = () => target.mock!.setUp(1);

  beforeAll(async () => {
    target = await startKafkaTarget({ brokers: 1, real: false });
    topic = target.name('callscope.producer');
    await target.createTopics([{ topic, partitions: 2 }]);
    consumer = new EventConsumer({
      kafka: kafka(),
      topic,
      groupId: target.name('producer'),
      onChunk: sink.write,
      logger,
      ...GROUP_TIMING,
    });
    await consumer.start();
  });

  afterAll(async () => {
    await consumer?.stop();
    await target?.stop();
    for (const d of dirs) removeTmpDir(d);
  });

  it('starts with the brokers down, holds senders back when queue and spool are full, then delivers in order', async () => {
    const events = await synthesizeEvents(300, '-backpressure');
    const dir = tmpDir('callscope-kafka-spool-');
    dirs.push(dir);
    await down();
    // Room for about 40 events on disk and 20 in memory: the rest must wait for the brokers.
    const producer = new EventProducer({
      kafka: kafka(),
      topic,
      spool: { dir, maxBytes: 40 * 1500, segmentBytes: 8 * 1500 },
      maxQueued: 20,
      logger,
    });
    await producer.connect(); // unreachable brokers are no error: it starts spooling
    expect(producer.stats().mode).toBe('spooling');
    let accepted = 0;
    const sends = events.map((e) => producer.send(e).then(() => accepted++));
    await sleep(1500);
    const held = producer.stats();
    // Accepted: what filled the spool plus a full memory queue; every other sender is waiting.
    expect(held.spooled).toBeGreaterThan(0);
    expect(held.spoolSize).toBe(held.spooled);
    expect(accepted).toBe(held.spooled + 20);
    expect(accepted).toBeLessThan(events.length);
    expect(held.queued).toBe(events.length - held.spooled); // waiting senders count as queued

    await up();
    await Promise.all(sends);
    expect(await producer.drain(30_000)).toBe(true);
    await producer.close();
    const stats = producer.stats();
    expect(stats.failed).toBe(0);
    expect(stats.spooled).toBeGreaterThan(held.spooled); // later events went through the spool, behind the first
    await waitFor(
      () => events.every((e) => sink.byId.has(eventId(e))),
      30_000,
      () => 'the 300 events at the consumer',
    );
    const got = sink.arrivals.filter((e) => e.correlationId.endsWith('-backpressure'));
    expect(orderByCall(got)).toEqual(orderByCall(events));
  });

  it('replays, in order, a spool left behind by a producer that was closed during an outage', async () => {
    const events = await synthesizeEvents(400, '-restart');
    const dir = tmpDir('callscope-kafka-spool-');
    dirs.push(dir);
    await down();
    const first = new EventProducer({ kafka: kafka(), topic, spool: { dir }, logger });
    await first.connect();
    for (const e of events.slice(0, 250)) await first.send(e);
    await first.close();
    expect(first.stats()).toMatchObject({ spooled: 250, sent: 0, replayed: 0, failed: 0 });

    await up();
    const second = new EventProducer({ kafka: kafka(), topic, spool: { dir }, logger });
    await second.connect();
    expect(second.stats()).toMatchObject({ mode: 'spooling', spoolSize: 250 });
    // New events wait behind the old spool: per-call order holds across the two processes.
    for (const e of events.slice(250)) await second.send(e);
    expect(await second.drain(30_000)).toBe(true);
    await second.close();
    const stats = second.stats();
    expect(stats).toMatchObject({ failed: 0, spoolSize: 0 });
    expect(stats.replayed).toBeGreaterThanOrEqual(250);
    expect(stats.sent + stats.replayed).toBe(400);
    await waitFor(
      () => events.every((e) => sink.byId.has(eventId(e))),
      30_000,
      () => 'the 400 events at the consumer',
    );
    const got = sink.arrivals.filter((e) => e.correlationId.endsWith('-restart'));
    expect(orderByCall(got)).toEqual(orderByCall(events));
    expect(got.map(canonical).sort()).toEqual(
      events
        .filter((e) => e.correlationId)
        .map(canonical)
        .sort(),
    );
  });
});

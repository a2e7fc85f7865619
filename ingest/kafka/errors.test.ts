/** The transport's small pure parts: error classification, backoff, message framing, broker lists. */
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { synthesizeEvents } from '../../test/kafka/fixtures.js';
import { backoffDelay, sleepWhile } from './backoff.js';
import { parseBrokers } from './client.js';
import { describeError, isBrokerUnavailable } from './errors.js';
import { eventMessage, messageFromSpoolRecord, spoolRecord } from './message.js';

describe('isBrokerUnavailable', () => {
  it('looks through kafkajs wrappers for connection trouble', () => {
    // What kafkajs 2.2.4 throws from send() when every broker refuses connections.
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    const wrapped = Object.assign(new KafkaJSNonRetriableError(refused), { cause: refused });
    expect(isBrokerUnavailable(wrapped)).toBe(true);
    // A wrapper that kept only the message.
    expect(isBrokerUnavailable(new KafkaJSNonRetriableError(refused))).toBe(true);
    expect(describeError(wrapped)).toMatch(/ECONNREFUSED/);
    expect(isBrokerUnavailable(Object.assign(new Error('x'), { name: 'KafkaJSRequestTimeoutError' }))).toBe(
      true,
    );
  });

  it('treats retriable protocol errors as temporary and refusals as final', () => {
    const leader = new KafkaJSProtocolError('There is no leader for this topic-partition');
    Object.assign(leader, { retriable: true, type: 'LEADER_NOT_AVAILABLE' });
    expect(isBrokerUnavailable(leader)).toBe(true);
    const tooLarge = new KafkaJSProtocolError('The request included a message larger than the max');
    Object.assign(tooLarge, { retriable: false, type: 'MESSAGE_TOO_LARGE' });
    expect(isBrokerUnavailable(new KafkaJSNonRetriableError(tooLarge))).toBe(false);
    expect(isBrokerUnavailable(new RangeError('HEP3 encode'))).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially, stays within the bound, and jitters below it', () => {
    const opts = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(0, opts, () => 0)).toBe(100);
    expect(backoffDelay(3, opts, () => 0)).toBe(800);
    expect(backoffDelay(4, opts, () => 0)).toBe(1000);
    expect(backoffDelay(1000, opts, () => 0)).toBe(1000);
    expect(backoffDelay(4, opts, () => 1)).toBe(500);
  });

  it('sleepWhile ticks (heartbeats) and stops early when told', async () => {
    let ticks = 0;
    let go = true;
    setTimeout(() => {
      go = false;
    }, 120);
    const full = await sleepWhile(
      10_000,
      () => go,
      async () => {
        ticks++;
      },
      20,
    );
    expect(full).toBe(false);
    expect(ticks).toBeGreaterThanOrEqual(3);
  });
});

describe('messages', () => {
  it('key the Call-ID, carry HEP3, and survive the spool framing (null keys too)', async () => {
    const [withId] = await synthesizeEvents(1);
    const m = eventMessage(withId);
    expect(m.key?.toString('latin1')).toBe(withId.correlationId);
    expect(m.value.subarray(0, 4).toString()).toBe('HEP3');
    expect(messageFromSpoolRecord(spoolRecord(m))).toEqual(m);
    const noId = eventMessage({ ...withId, correlationId: '' });
    expect(noId.key).toBeNull();
    expect(messageFromSpoolRecord(spoolRecord(noId))).toEqual(noId);
    expect(() => messageFromSpoolRecord(Buffer.from([0, 0, 0, 9, 1]))).toThrow(/runs past/);
  });
});

describe('parseBrokers', () => {
  it('accepts KAFKA_BROKERS-style lists and refuses an empty one', () => {
    expect(parseBrokers(' a:9092, b:9093 ,')).toEqual(['a:9092', 'b:9093']);
    expect(() => parseBrokers('')).toThrow(/no Kafka brokers/);
  });
});

/** Error classification: which kafkajs errors mean "brokers unavailable, spool and retry". */
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { describeError, isBrokerUnavailable } from './errors.js';

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

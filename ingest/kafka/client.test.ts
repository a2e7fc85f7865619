/** Broker lists as KAFKA_BROKERS gives them. */
import { describe, expect, it } from 'vitest';
import { parseBrokers } from './client.js';

describe('parseBrokers', () => {
  it('accepts KAFKA_BROKERS-style lists and refuses an empty one', () => {
    expect(parseBrokers(' a:9092, b:9093 ,')).toEqual(['a:9092', 'b:9093']);
    expect(() => parseBrokers('')).toThrow(/no Kafka brokers/);
  });
});

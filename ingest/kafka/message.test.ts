/** Kafka messages of capture events, and their spool framing. */
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { synthesizeEvents } from '../../test/kafka/fixtures.js';
import { eventMessage, keyPartition, messageFromSpoolRecord, spoolRecord } from './message.js';

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

  it("place a key on the partition kafkajs's default partitioner (Java's murmur2) gives it", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 3, 16, 32, 100]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({
        partitionErrorCode: 0,
        partitionId: i,
        leader: 1,
        replicas: [1],
        isr: [1],
      }));
      for (let n = 0; n < 500; n++) {
        const key = Buffer.from(
          `${n.toString(36)}-${'x'.repeat(n % 7)}@10.0.${n % 255}.${(n * 7) % 255}\u00e9`,
          'latin1',
        );
        const expected = partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
        expect(keyPartition(key, partitions)).toBe(expected);
      }
    }
  });
});

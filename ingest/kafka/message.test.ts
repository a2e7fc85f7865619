/** Kafka messages of capture events, and their spool framing. */
import { describe, expect, it } from 'vitest';
import { synthesizeEvents } from '../../test/kafka/fixtures.js';
import { eventMessage, messageFromSpoolRecord, spoolRecord } from './message.js';

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

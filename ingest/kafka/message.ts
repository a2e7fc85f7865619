/**
 * What one CaptureEvent becomes on the wire: a Kafka message whose value is the HEP3 frame and whose
 * key is the Call-ID, so that every event of a call lands on one partition, in order. The spool
 * keeps messages in the same form (key and value) so that a replay sends exactly what would have
 * been sent.
 */
import type { CaptureEvent } from '../../core/event.js';
import { encodeHep3 } from '../../core/hep3.js';

export interface EventMessage {
  /** Call-ID bytes (latin1, as the HEP correlation chunk carries them); null spreads round-robin. */
  key: Buffer | null;
  value: Buffer;
}

/** Encodes an event; throws the codec's RangeError (naming the Call-ID) when it cannot be framed. */
export function eventMessage(event: CaptureEvent): EventMessage {
  return {
    key: event.correlationId ? Buffer.from(event.correlationId, 'latin1') : null,
    value: encodeHep3(event),
  };
}

const NULL_KEY = 0xffffffff;

/** Spool record: `u32 key length (0xffffffff: null key) | key | value`. */
export function spoolRecord(message: EventMessage): Buffer {
  const keyLen = message.key ? message.key.length : 0;
  const out = Buffer.allocUnsafe(4 + keyLen + message.value.length);
  out.writeUInt32BE(message.key ? keyLen : NULL_KEY, 0);
  if (message.key) message.key.copy(out, 4);
  message.value.copy(out, 4 + keyLen);
  return out;
}

/** Inverse of {@link spoolRecord}; throws on a record it did not write. */
export function messageFromSpoolRecord(record: Buffer): EventMessage {
  if (record.length < 4) throw new Error(`spool record of ${record.length} bytes is too short`);
  const keyLen = record.readUInt32BE(0);
  if (keyLen === NULL_KEY) return { key: null, value: record.subarray(4) };
  if (4 + keyLen > record.length) {
    throw new Error(`spool record key length ${keyLen} runs past its ${record.length} bytes`);
  }
  return { key: record.subarray(4, 4 + keyLen), value: record.subarray(4 + keyLen) };
}

/**
 * Kafka's murmur2 key hash (Java client's Utils.murmur2, as kafkajs's default partitioner has it), in
 * 32-bit integer arithmetic: kafkajs's own goes through 64-bit Long objects and cost the producer
 * more than HEP3 encoding did.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2] << 16;
  if (rest >= 2) h ^= data[tail + 1] << 8;
  if (rest >= 1) {
    h ^= data[tail];
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition kafkajs's default partitioner (and Java's) gives a non-null key. */
export function keyPartition(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** Bytes a message costs in memory and on the spool, near enough for bounds. */
export function messageBytes(message: EventMessage): number {
  return 4 + (message.key?.length ?? 0) + message.value.length;
}

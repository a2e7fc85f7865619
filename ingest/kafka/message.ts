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

/** Bytes a message costs in memory and on the spool, near enough for bounds. */
export function messageBytes(message: EventMessage): number {
  return 4 + (message.key?.length ?? 0) + message.value.length;
}

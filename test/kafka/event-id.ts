/** The id the store deduplicates by (shared by the tests and the consumer child process). */
import { createHash } from 'node:crypto';
import type { CaptureEvent } from '../../core/event.js';

/** Capture time, source port, Call-ID and a hash of the payload. */
export function eventId(e: CaptureEvent): string {
  const h = createHash('sha1').update(e.payload).digest('hex').slice(0, 16);
  return `${e.timestampNs}:${e.srcPort}:${e.correlationId}:${h}`;
}

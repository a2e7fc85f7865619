/**
 * Stable 64-bit event ids over capture id, node, protocol type, capture time (ns), addresses, ports,
 * VLAN and payload. The same event sent again (a retried batch, a Kafka redelivery, the same file
 * ingested again) gets the same id, so the store keeps it once.
 *
 * Two schemes, one per store (the store records which: schema/migrations.ts, version 9):
 * - `xxh64`: xxHash64 (seed 0) of the fields laid out below, layout version 2. A fifth of SHA-256's
 *   cost; ClickHouse's `xxHash64` of the same bytes gives the same number.
 * - `sha256`: the first 8 bytes, big-endian, of SHA-256 over layout version 1: what every store written
 *   before the change holds, so such a store keeps it (a file ingested again must not be stored twice).
 */
import * as crypto from 'node:crypto';
import { xxh64 } from '@node-rs/xxhash';
import type { CaptureEvent } from '../core/event.js';

export type EventIdScheme = 'xxh64' | 'sha256';

export const EVENT_ID_SCHEMES: readonly EventIdScheme[] = ['xxh64', 'sha256'];

/** The scheme of a store created now. */
export const DEFAULT_EVENT_ID_SCHEME: EventIdScheme = 'xxh64';

const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

/** Computes event ids; owns the scratch buffer the hash input is laid out in (a writer has one). */
export class EventIds {
  /** Grown to the largest input hashed whole (xxh64); SHA-256 hashes a larger payload where it lies. */
  private scratch: Buffer;

  constructor(
    readonly scheme: EventIdScheme = DEFAULT_EVENT_ID_SCHEME,
    scratchBytes = 16 * 1024,
  ) {
    this.scratch = Buffer.allocUnsafe(Math.max(64, scratchBytes));
  }

  of(event: CaptureEvent): bigint {
    const end = this.layout(event);
    const payload = event.payload;
    if (this.scheme === 'xxh64') {
      if (end + payload.length > this.scratch.length) this.grow(end, end + payload.length);
      this.scratch.set(payload, end);
      return xxh64(this.scratch.subarray(0, end + payload.length));
    }
    return this.sha256(end, payload);
  }

  /** The bytes the id hashes (tests compare the engine's own hash of them). */
  input(event: CaptureEvent): Buffer {
    const end = this.layout(event);
    return Buffer.concat([this.scratch.subarray(0, end), event.payload]);
  }

  /** Lays out every field but the payload; returns where the payload goes. */
  private layout(event: CaptureEvent): number {
    const h = this.scratch;
    h.writeUInt8(this.scheme === 'xxh64' ? 2 : 1, 0); // layout version of this hash input
    h.writeUInt8(event.ipFamily & 0xff, 1);
    h.writeUInt8(event.ipProtocol & 0xff, 2);
    h.writeUInt16BE(event.protoType & 0xffff, 3);
    h.writeUInt32BE(event.captureId >>> 0, 5);
    h.writeBigInt64BE(BigInt.asIntN(64, event.timestampNs), 9);
    h.writeUInt16BE(event.srcPort & 0xffff, 17);
    h.writeUInt16BE(event.dstPort & 0xffff, 19);
    h.writeInt32BE(event.vlan === null ? -1 : event.vlan | 0, 21);
    h.writeUInt32BE(event.payload.length >>> 0, 25);
    let end = this.putText(event.nodeName, 29);
    end = this.putText(event.transport, end);
    end = this.putText(event.srcIp, end);
    return this.putText(event.dstIp, end);
  }

  private sha256(end: number, payload: Buffer): bigint {
    const scratch = this.scratch;
    if (oneShotHash === undefined || end + payload.length > scratch.length) {
      return crypto
        .createHash('sha256')
        .update(scratch.subarray(0, end))
        .update(payload)
        .digest()
        .readBigUInt64BE(0);
    }
    // crypto.hash (Node >= 20.12) skips the Hash object, a good share of the cost for short inputs.
    scratch.set(payload, end);
    return oneShotHash('sha256', scratch.subarray(0, end + payload.length), 'buffer').readBigUInt64BE(0);
  }

  /** Writes `text` length-prefixed at `at` (so that ("ab", "c") and ("a", "bc") differ); returns the end. */
  private putText(text: string, at: number): number {
    const max = 3 * text.length;
    if (at + 4 + max > this.scratch.length) this.grow(at, at + 4 + max);
    const h = this.scratch;
    // Addresses, transports and node names are ASCII: copied here, a third of Buffer.write's cost.
    let n = 0;
    for (; n < text.length; n++) {
      const c = text.charCodeAt(n);
      if (c >= 0x80) break;
      h[at + 4 + n] = c;
    }
    if (n < text.length) n = h.write(text, at + 4, max, 'utf8');
    h.writeUInt32BE(n, at);
    return at + 4 + n;
  }

  /** Room for `needed` bytes, keeping the first `keep`. */
  private grow(keep: number, needed: number): void {
    const grown = Buffer.allocUnsafe(Math.max(2 * this.scratch.length, needed));
    this.scratch.copy(grown, 0, 0, keep);
    this.scratch = grown;
  }
}

/** The id of one event (tests and tools; a writer keeps its own EventIds). */
export function eventId(event: CaptureEvent, scheme: EventIdScheme = DEFAULT_EVENT_ID_SCHEME): bigint {
  return new EventIds(scheme, 1024).of(event);
}

export function isEventIdScheme(value: unknown): value is EventIdScheme {
  return EVENT_ID_SCHEMES.includes(value as EventIdScheme);
}

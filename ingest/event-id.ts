/**
 * Stable 64-bit event ids: the first 8 bytes of SHA-256 over capture id, node, protocol type, capture
 * time (ns), addresses, ports, VLAN and payload. The same event sent again (a retried batch, a Kafka
 * redelivery, the same file ingested again) gets the same id, so the store keeps it once.
 */
import * as crypto from 'node:crypto';
import type { CaptureEvent } from '../core/event.js';

const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

/** Computes event ids; owns the scratch buffer the hash input is laid out in (a writer has one). */
export class EventIds {
  /** Payloads too large for it are hashed where they lie. */
  private scratch: Buffer;

  constructor(scratchBytes = 16 * 1024) {
    this.scratch = Buffer.allocUnsafe(Math.max(64, scratchBytes));
  }

  of(event: CaptureEvent): bigint {
    const h = this.scratch;
    h.writeUInt8(1, 0); // layout version of this hash input
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
    end = this.putText(event.dstIp, end);
    const payload = event.payload;
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
    if (at + 4 + max > this.scratch.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.scratch.length, at + 4 + max));
      this.scratch.copy(grown, 0, 0, at);
      this.scratch = grown;
    }
    const n = this.scratch.write(text, at + 4, max, 'utf8');
    this.scratch.writeUInt32BE(n, at);
    return at + 4 + n;
  }
}

/** The id of one event (tests and tools; a writer keeps its own EventIds). */
export function eventId(event: CaptureEvent): bigint {
  return new EventIds(1024).of(event);
}

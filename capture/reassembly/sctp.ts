import { SCTP_FLAG_BEGIN, SCTP_FLAG_END } from '../layers/sctp.js';

export interface SctpLimits {
  /** Partially received user messages held at once (oldest dropped first). */
  maxPending?: number;
  maxMessageBytes?: number;
}

export interface SctpStats {
  fragments: number;
  reassembled: number;
  /** Fragments that did not continue a message in TSN order, or exceeded the limits. */
  dropped: number;
  pending: number;
}

interface Pending {
  nextTsn: number;
  parts: Buffer[];
  bytes: number;
}

/**
 * Reassembles SCTP user messages split over several DATA chunks (B…E flags, consecutive TSNs in
 * one stream). Captures see each chunk once, in order, except for retransmissions, which repeat a
 * TSN and are dropped here.
 */
export class SctpMessageReassembler {
  private readonly pending = new Map<string, Pending>();
  private readonly maxPending: number;
  private readonly maxMessageBytes: number;
  readonly stats: SctpStats = { fragments: 0, reassembled: 0, dropped: 0, pending: 0 };

  constructor(limits: SctpLimits = {}) {
    this.maxPending = limits.maxPending ?? 4096;
    this.maxMessageBytes = limits.maxMessageBytes ?? 1 << 20;
  }

  /** Adds one fragment (not B and E both). Returns the whole message when `flags` has E and it completes one. */
  add(
    direction: string,
    streamId: number,
    tsn: number,
    flags: number,
    buf: Buffer,
    off: number,
    end: number,
  ): Buffer | null {
    this.stats.fragments++;
    const key = `${direction}\u0000${streamId}`;
    const data = Buffer.from(buf.subarray(off, end));
    if (flags & SCTP_FLAG_BEGIN) {
      if (this.pending.has(key)) this.stats.dropped++;
      else if (this.pending.size >= this.maxPending) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
        this.stats.dropped++;
      }
      this.pending.delete(key);
      this.pending.set(key, { nextTsn: (tsn + 1) >>> 0, parts: [data], bytes: data.length });
      this.stats.pending = this.pending.size;
      return null;
    }
    const message = this.pending.get(key);
    if (!message || message.nextTsn !== tsn || message.bytes + data.length > this.maxMessageBytes) {
      this.stats.dropped++;
      if (message && message.bytes + data.length > this.maxMessageBytes) this.pending.delete(key);
      this.stats.pending = this.pending.size;
      return null;
    }
    message.parts.push(data);
    message.bytes += data.length;
    message.nextTsn = (tsn + 1) >>> 0;
    if ((flags & SCTP_FLAG_END) === 0) return null;
    this.pending.delete(key);
    this.stats.pending = this.pending.size;
    this.stats.reassembled++;
    return Buffer.concat(message.parts, message.bytes);
  }
}

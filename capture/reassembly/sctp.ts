import { SCTP_FLAG_BEGIN, SCTP_FLAG_END } from '../layers/sctp.js';

export interface SctpLimits {
  /** Partially received user messages held at once (oldest dropped first). Default 4,096. */
  maxPending?: number;
  /** Largest user message reassembled; a longer one is dropped. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Buffer bytes held across all pending messages (oldest dropped first). Default 16 MiB. */
  maxBytes?: number;
}

export interface SctpStats {
  fragments: number;
  reassembled: number;
  /**
   * Fragments that did not continue a message in TSN order (gaps, retransmissions, no B first) or
   * exceeded maxMessageBytes, plus pending messages abandoned by a new B fragment on their stream.
   */
  dropped: number;
  /** Pending messages discarded, oldest first, to stay within maxPending and maxBytes. */
  evicted: number;
  pending: number;
  /** Buffer bytes held by the pending messages (≤ maxBytes). */
  bufferedBytes: number;
}

const DEFAULT_MAX_PENDING = 4096;
const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
const DEFAULT_MAX_BYTES = 16 << 20;

/** A partially received message; also a node of the oldest-first list of pending messages. */
interface Pending {
  readonly key: string;
  nextTsn: number;
  /** Bytes [0, bytes) received; grows by doubling, so its length is what is charged to maxBytes. */
  buf: Buffer;
  bytes: number;
  older: Pending | null;
  newer: Pending | null;
}

/** A limit that is a finite number ≥ 1 (rounded down), or the default. */
function limit(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 1 ? Math.floor(value) : fallback;
}

/**
 * Reassembles SCTP user messages split over several DATA chunks (B…E flags, consecutive TSNs in
 * one stream). Captures see each chunk once, in order, except for retransmissions, which repeat a
 * TSN and are dropped here.
 *
 * Memory is bounded by maxPending messages and maxBytes of buffers in all; each message by
 * maxMessageBytes. A fragment is copied only once accepted, into its message's buffer. When a
 * limit would be exceeded the oldest pending messages (by first fragment) are evicted. Pending
 * messages sit in a map for lookup and in an intrusive doubly linked list, oldest first, so
 * eviction and removal are O(1): the map is never iterated.
 */
export class SctpMessageReassembler {
  private readonly pending = new Map<string, Pending>();
  private oldest: Pending | null = null;
  private newest: Pending | null = null;
  private bufferedBytes = 0;
  private readonly maxPending: number;
  private readonly maxMessageBytes: number;
  private readonly maxBytes: number;
  readonly stats: SctpStats = {
    fragments: 0,
    reassembled: 0,
    dropped: 0,
    evicted: 0,
    pending: 0,
    bufferedBytes: 0,
  };

  constructor(limits: SctpLimits = {}) {
    this.maxPending = limit(limits.maxPending, DEFAULT_MAX_PENDING);
    this.maxBytes = limit(limits.maxBytes, DEFAULT_MAX_BYTES);
    // A message must fit in the total, with every other one evicted.
    this.maxMessageBytes = Math.min(limit(limits.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES), this.maxBytes);
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
    const data = buf.subarray(off, end); // a view: copied only if accepted
    const len = data.length;
    if (flags & SCTP_FLAG_BEGIN) {
      const previous = this.pending.get(key);
      if (previous) {
        this.remove(previous);
        this.stats.dropped++;
      }
      if (len > this.maxMessageBytes) {
        this.stats.dropped++;
        return this.done(null);
      }
      while (this.pending.size >= this.maxPending || this.bufferedBytes + len > this.maxBytes) {
        if (!this.evictOldest(null)) break;
      }
      const message: Pending = {
        key,
        nextTsn: (tsn + 1) >>> 0,
        buf: Buffer.allocUnsafeSlow(len), // not pooled: a small fragment must not pin an 8 KiB slab
        bytes: len,
        older: this.newest,
        newer: null,
      };
      data.copy(message.buf, 0);
      if (this.newest) this.newest.newer = message;
      else this.oldest = message;
      this.newest = message;
      this.pending.set(key, message);
      this.bufferedBytes += len;
      return this.done(null);
    }
    const message = this.pending.get(key);
    if (!message || message.nextTsn !== tsn) {
      // Out of order: a gap, a retransmission, or no B seen. A pending message stays until its
      // stream starts another or it is evicted (a retransmission does not end it).
      this.stats.dropped++;
      return this.done(null);
    }
    const total = message.bytes + len;
    if (total > this.maxMessageBytes) {
      this.remove(message);
      this.stats.dropped++;
      return this.done(null);
    }
    if (flags & SCTP_FLAG_END) {
      this.remove(message);
      this.stats.reassembled++;
      let whole: Buffer;
      if (message.buf.length >= total) {
        data.copy(message.buf, message.bytes);
        whole = message.buf.length === total ? message.buf : message.buf.subarray(0, total);
      } else {
        whole = Buffer.allocUnsafe(total);
        message.buf.copy(whole, 0, 0, message.bytes);
        data.copy(whole, message.bytes);
      }
      return this.done(whole);
    }
    this.reserve(message, total);
    data.copy(message.buf, message.bytes);
    message.bytes = total;
    message.nextTsn = (tsn + 1) >>> 0;
    return this.done(null);
  }

  /** Grows message.buf to hold `need` bytes (≤ maxMessageBytes), evicting older messages if needed. */
  private reserve(message: Pending, need: number): void {
    const cap = message.buf.length;
    if (cap >= need) return;
    // Double, but not past the message limit nor into room other messages would have to give up.
    const room = this.maxBytes - this.bufferedBytes + cap;
    const grown = Math.max(need, Math.min(cap * 2, this.maxMessageBytes, room));
    while (this.bufferedBytes - cap + grown > this.maxBytes) if (!this.evictOldest(message)) break;
    const next = Buffer.allocUnsafeSlow(grown);
    message.buf.copy(next, 0, 0, message.bytes);
    message.buf = next;
    this.bufferedBytes += grown - cap;
  }

  /** Evicts the oldest pending message other than `keep`; false when there is none. */
  private evictOldest(keep: Pending | null): boolean {
    let victim = this.oldest;
    if (victim !== null && victim === keep) victim = victim.newer;
    if (victim === null) return false; // not reached: maxMessageBytes ≤ maxBytes leaves room for one
    this.remove(victim);
    this.stats.evicted++;
    return true;
  }

  private remove(message: Pending): void {
    this.pending.delete(message.key);
    if (message.older) message.older.newer = message.newer;
    else this.oldest = message.newer;
    if (message.newer) message.newer.older = message.older;
    else this.newest = message.older;
    message.older = message.newer = null;
    this.bufferedBytes -= message.buf.length;
  }

  private done(result: Buffer | null): Buffer | null {
    this.stats.pending = this.pending.size;
    this.stats.bufferedBytes = this.bufferedBytes;
    return result;
  }
}

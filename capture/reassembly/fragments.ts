/**
 * IP fragment reassembly shared by IPv4 and IPv6: the caller builds the datagram key (addresses,
 * identification, and for IPv4 the protocol) and passes byte offsets, so both families look alike.
 *
 * Hostile input is the norm (teardrop/overlap tricks, ping-of-death, floods of first fragments), so
 * every datagram is accounted against hard limits and the oldest one is dropped to make room.
 */

export interface FragmentLimits {
  /** Datagrams being reassembled at once (default 4096). */
  maxDatagrams?: number;
  /** Bytes accounted for all datagrams in flight (default 64 MiB); see FragmentStats.bufferedBytes. */
  maxBytes?: number;
  /** Seconds of capture time after a datagram's first fragment before it is dropped (default 30). */
  timeoutSec?: number;
  /** Largest reassembled payload accepted (default 65535). */
  maxDatagramBytes?: number;
}

export interface FragmentStats {
  /** add() calls. */
  fragments: number;
  reassembled: number;
  /** Fragments that brought no new bytes and matched what was already held. */
  duplicates: number;
  /** Fragments overlapping bytes already held (they brought new bytes, or conflicted). */
  overlaps: number;
  /** Overlapping fragments whose bytes differ from those already held (the first ones are kept). */
  conflictingOverlaps: number;
  timedOut: number;
  /** Datagrams dropped to respect maxDatagrams / maxBytes. */
  evicted: number;
  /** Fragments reaching beyond maxDatagramBytes (their datagram is dropped). */
  oversize: number;
  /** Unusable fragments: bad ranges, offset or middle length not a multiple of 8, inconsistent end. */
  invalid: number;
  inFlight: number;
  /**
   * Accounted memory of datagrams in flight: buffer capacity plus a small charge per disjoint run of
   * received bytes (so sparse hostile patterns pay for their bookkeeping too).
   */
  bufferedBytes: number;
}

export interface ReassembledDatagram {
  /** The whole payload; owned by the caller (a fresh buffer, possibly a view of a slightly larger one). */
  payload: Buffer;
  /** `meta` given with the fragment at offset 0. */
  meta: number;
  /** Fragments received for this datagram, duplicates included. */
  fragments: number;
}

const DEFAULT_MAX_DATAGRAMS = 4096;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_SEC = 30;
const DEFAULT_MAX_DATAGRAM_BYTES = 65535;
/** Accounted per coverage run: two numbers in an array, rounded up. */
const RUN_COST = 16;

const EMPTY = Buffer.alloc(0);

/** One datagram being reassembled; also a node of the insertion-ordered list used for expiry. */
class Datagram {
  prev: Datagram | null = null;
  next: Datagram | null = null;
  /** Bytes indexed by their offset in the payload; only covered ranges are meaningful. */
  buf: Buffer = EMPTY;
  /** Received ranges as sorted, disjoint, non-touching [start, end) pairs. */
  runs: number[] = [];
  covered = 0;
  /** Payload length once the last fragment (MF=0) is in, else -1. */
  total = -1;
  meta = 0;
  hasMeta = false;
  fragments = 0;
  charged = 0;

  constructor(
    readonly key: string,
    readonly tsSec: number,
  ) {}
}

function limit(v: number | undefined, def: number, min: number): number {
  return typeof v === 'number' && v >= min && !Number.isNaN(v) ? v : def;
}

/** All counters at zero (also what a summary shows for a capture that never fragmented). */
export function emptyFragmentStats(): FragmentStats {
  return {
    fragments: 0,
    reassembled: 0,
    duplicates: 0,
    overlaps: 0,
    conflictingOverlaps: 0,
    timedOut: 0,
    evicted: 0,
    oversize: 0,
    invalid: 0,
    inFlight: 0,
    bufferedBytes: 0,
  };
}

export class FragmentReassembler {
  readonly stats: FragmentStats = emptyFragmentStats();
  private readonly maxDatagrams: number;
  private readonly maxBytes: number;
  private readonly timeoutSec: number;
  private readonly maxDatagramBytes: number;
  private readonly map = new Map<string, Datagram>();
  /** Oldest first: a Map used as a queue degrades when deleting from its front, a linked list does not. */
  private head: Datagram | null = null;
  private tail: Datagram | null = null;
  private lastExpire = Number.NEGATIVE_INFINITY;

  constructor(limits: FragmentLimits = {}) {
    this.maxDatagrams = Math.floor(limit(limits.maxDatagrams, DEFAULT_MAX_DATAGRAMS, 1));
    this.maxBytes = limit(limits.maxBytes, DEFAULT_MAX_BYTES, 0);
    this.timeoutSec = limit(limits.timeoutSec, DEFAULT_TIMEOUT_SEC, Number.MIN_VALUE);
    this.maxDatagramBytes = Math.floor(limit(limits.maxDatagramBytes, DEFAULT_MAX_DATAGRAM_BYTES, 0));
  }

  /**
   * Adds one fragment. `offset` is the byte offset of its data in the original payload (a multiple
   * of 8, as both IP versions encode it); data[dataOff, dataEnd) is copied. Returns the datagram when
   * this fragment completes it, else null.
   */
  add(
    key: string,
    offset: number,
    moreFragments: boolean,
    data: Buffer,
    dataOff: number,
    dataEnd: number,
    tsSec: number,
    meta: number,
  ): ReassembledDatagram | null {
    const stats = this.stats;
    stats.fragments++;
    if (
      !Buffer.isBuffer(data) ||
      !Number.isInteger(offset) ||
      offset < 0 ||
      (offset & 7) !== 0 ||
      !Number.isInteger(dataOff) ||
      !Number.isInteger(dataEnd) ||
      dataOff < 0 ||
      dataEnd < dataOff ||
      dataEnd > data.length ||
      !Number.isFinite(tsSec)
    ) {
      stats.invalid++;
      return null;
    }
    const len = dataEnd - dataOff;
    const end = offset + len;
    let d = this.map.get(key);
    if (end > this.maxDatagramBytes) {
      stats.oversize++;
      if (d !== undefined) this.remove(d);
      return null;
    }
    // Only the last fragment may have a length that is not a multiple of 8 (RFC 791, RFC 8200).
    if (moreFragments && (len === 0 || (len & 7) !== 0)) {
      stats.invalid++;
      return null;
    }
    // A stale datagram with a recycled identification must not absorb new fragments.
    if (d !== undefined && tsSec - d.tsSec >= this.timeoutSec) {
      stats.timedOut++;
      this.remove(d);
      d = undefined;
    }
    if (d === undefined) {
      if (this.map.size >= this.maxDatagrams && this.head !== null) {
        stats.evicted++;
        this.remove(this.head);
      }
      d = new Datagram(key, tsSec);
      this.map.set(key, d);
      this.link(d);
    }
    d.fragments++;

    const runs = d.runs;
    const maxEnd = runs.length === 0 ? 0 : runs[runs.length - 1];
    if (!moreFragments) {
      if (d.total >= 0 ? d.total !== end : maxEnd > end) {
        stats.invalid++;
        this.remove(d);
        return null;
      }
      d.total = end;
    } else if (d.total >= 0 && end > d.total) {
      stats.invalid++;
      this.remove(d);
      return null;
    }
    if (offset === 0 && !d.hasMeta) {
      d.meta = meta;
      d.hasMeta = true;
    }

    if (len > 0) {
      if (end > d.buf.length) {
        // Grow geometrically while the length is unknown so many fragments cost O(n) copying.
        const cap = d.total >= 0 ? d.total : Math.min(this.maxDatagramBytes, Math.max(end, d.buf.length * 2));
        if (!this.reserve(d, cap - d.buf.length + RUN_COST)) return null;
        const grown = Buffer.allocUnsafeSlow(cap);
        d.buf.copy(grown, 0);
        d.buf = grown;
      } else if (!this.reserve(d, RUN_COST)) {
        return null;
      }
      this.merge(d, offset, end, data, dataOff);
      const charge = d.buf.length + RUN_COST * (runs.length >> 1);
      stats.bufferedBytes += charge - d.charged;
      d.charged = charge;
    }

    if (d.total < 0 || d.covered !== d.total) return null;
    const payload = d.total === 0 ? Buffer.alloc(0) : d.buf.subarray(0, d.total);
    const result: ReassembledDatagram = { payload, meta: d.meta, fragments: d.fragments };
    // The buffer now belongs to the caller: detach it before releasing the datagram.
    d.buf = EMPTY;
    this.remove(d);
    stats.reassembled++;
    return result;
  }

  /**
   * Drops datagrams whose first fragment is at least timeoutSec older than nowSec. Cheap enough to
   * call for every packet: it scans at most once per second of capture time, oldest first.
   */
  expire(nowSec: number): void {
    if (!Number.isFinite(nowSec)) return;
    if (nowSec >= this.lastExpire && nowSec < this.lastExpire + 1) return;
    this.lastExpire = nowSec;
    while (this.head !== null && nowSec - this.head.tsSec >= this.timeoutSec) {
      this.stats.timedOut++;
      this.remove(this.head);
    }
  }

  /** Forgets every datagram and resets all counters. */
  clear(): void {
    this.map.clear();
    this.head = null;
    this.tail = null;
    this.lastExpire = Number.NEGATIVE_INFINITY;
    const s = this.stats;
    s.fragments = s.reassembled = s.duplicates = s.overlaps = s.conflictingOverlaps = 0;
    s.timedOut = s.evicted = s.oversize = s.invalid = s.inFlight = s.bufferedBytes = 0;
  }

  /**
   * Copies the bytes of [offset, end) not yet held (first received wins), compares the rest, and
   * merges the range into the coverage runs.
   */
  private merge(d: Datagram, offset: number, end: number, data: Buffer, dataOff: number): void {
    const runs = d.runs;
    const buf = d.buf;
    const n = runs.length >> 1;
    // First run ending at or after `offset` (touching runs merge too).
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runs[2 * mid + 1] < offset) lo = mid + 1;
      else hi = mid;
    }
    let j = lo;
    let cursor = offset;
    let fresh = 0;
    let overlapped = false;
    let conflict = false;
    const shift = dataOff - offset;
    for (; j < n && runs[2 * j] <= end; j++) {
      const a = runs[2 * j];
      const b = runs[2 * j + 1];
      if (a > cursor) {
        data.copy(buf, cursor, cursor + shift, a + shift);
        fresh += a - cursor;
      }
      const os = Math.max(a, offset);
      const oe = Math.min(b, end);
      if (oe > os) {
        overlapped = true;
        if (!conflict && buf.compare(data, os + shift, oe + shift, os, oe) !== 0) conflict = true;
      }
      if (b > cursor) cursor = b;
    }
    if (cursor < end) {
      data.copy(buf, cursor, cursor + shift, end + shift);
      fresh += end - cursor;
    }

    const stats = this.stats;
    if (fresh === 0 && !conflict) stats.duplicates++;
    else if (overlapped) {
      stats.overlaps++;
      if (conflict) stats.conflictingOverlaps++;
    }
    d.covered += fresh;

    if (j === lo) {
      runs.splice(2 * lo, 0, offset, end);
    } else {
      const start = Math.min(runs[2 * lo], offset);
      const last = Math.max(runs[2 * j - 1], end);
      runs[2 * lo] = start;
      runs[2 * lo + 1] = last;
      if (j - lo > 1) runs.splice(2 * lo + 2, 2 * (j - lo - 1));
    }
  }

  /**
   * Makes room for `bytes` more accounted bytes for `d`, evicting the oldest other datagrams.
   * Drops `d` itself (and returns false) when it cannot fit even alone.
   */
  private reserve(d: Datagram, bytes: number): boolean {
    const stats = this.stats;
    while (stats.bufferedBytes + bytes > this.maxBytes) {
      const victim = this.head === d ? d.next : this.head;
      if (victim === null) {
        stats.evicted++;
        this.remove(d);
        return false;
      }
      stats.evicted++;
      this.remove(victim);
    }
    return true;
  }

  private link(d: Datagram): void {
    d.prev = this.tail;
    if (this.tail !== null) this.tail.next = d;
    else this.head = d;
    this.tail = d;
    this.stats.inFlight++;
  }

  private remove(d: Datagram): void {
    if (d.prev !== null) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next !== null) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = d.next = null;
    this.map.delete(d.key);
    this.stats.inFlight--;
    this.stats.bufferedBytes -= d.charged;
    d.charged = 0;
  }
}

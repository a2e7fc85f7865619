/**
 * TCP stream reassembly, one direction at a time: the caller keys each direction (src → dst) and
 * gets an ordered byte stream per key through a sink. Captures start anywhere, lose packets and
 * carry hostile garbage, so nothing here waits forever or holds unbounded memory: holes that do not
 * fill are declared as gaps, and streams beyond the limits are evicted least-recently-used first.
 */

export interface TcpSegmentMeta {
  tsSec: number;
  tsNsec: number;
  packetNumber: number;
}

export type TcpEndReason = 'fin' | 'rst' | 'idle' | 'evicted' | 'flush';

export interface TcpStreamSink {
  /** In-order stream bytes; the view (and `meta`) is valid only during the call. */
  data(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void;
  /** Bytes that will never arrive (lost before capture, or given up on): the stream skips `bytes` ahead. */
  gap(bytes: number): void;
  /** Stream ended (FIN/RST, idle eviction, flush at end of capture). Called once; no call follows. */
  end(reason: TcpEndReason): void;
}

export interface TcpLimits {
  /** Directions tracked at once, recently closed ones included (default 65536). */
  maxStreams?: number;
  /** Out-of-order payload bytes held per direction (default 256 KiB). */
  maxBufferedBytesPerStream?: number;
  /** Accounted bytes held for all directions (default 64 MiB); see TcpStats.bufferedBytes. */
  maxBufferedBytes?: number;
  /** Seconds of capture time without a segment before a direction ends with 'idle' (default 300). */
  idleTimeoutSec?: number;
  /** Out-of-order segments held per direction (default 256). */
  maxOutOfOrderSegments?: number;
  /**
   * Seconds of capture time a hole may stay open before it is declared a gap by expire() (default
   * 10): data lost before the capture point is never retransmitted where we can see it.
   */
  holeTimeoutSec?: number;
}

export interface TcpStats {
  /** segment() calls. */
  segments: number;
  /** Streams opened (newSink calls). */
  streams: number;
  /** Segments (or SYNs) bringing no new bytes. */
  retransmissions: number;
  /** Segments partly overlapping bytes already delivered or held (trimmed to the new bytes). */
  overlaps: number;
  /** Segments arriving ahead of the next expected sequence number. */
  outOfOrder: number;
  gaps: number;
  gapBytes: number;
  /** Active streams ended by limits (maxStreams) or superseded by a new connection on the same key. */
  evictedStreams: number;
  idleStreams: number;
  /** Payload bytes discarded undelivered without being duplicates: data past a FIN. */
  droppedBytes: number;
  activeStreams: number;
  /** Accounted bytes held out of order: payload plus a fixed charge per held segment. */
  bufferedBytes: number;
}

export const TCP_FIN = 0x01,
  TCP_SYN = 0x02,
  TCP_RST = 0x04,
  TCP_ACK = 0x10;

const DEFAULT_MAX_STREAMS = 65536;
const DEFAULT_MAX_PER_STREAM = 256 * 1024;
const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;
const DEFAULT_IDLE_SEC = 300;
const DEFAULT_MAX_SEGMENTS = 256;
const DEFAULT_HOLE_SEC = 10;
/**
 * Sequence distance (16 MiB) beyond which a segment cannot belong to the connection being tracked:
 * it is another connection reusing the port whose SYN we did not see.
 */
const SEQ_WINDOW = 1 << 24;
/** Accounted per held segment on top of its bytes, so floods of tiny segments are bounded too. */
const HELD_COST = 128;

/** A copied out-of-order piece; it doubles as the meta handed to the sink when delivered. */
class Held implements TcpSegmentMeta {
  constructor(
    readonly seq: number,
    readonly buf: Buffer,
    readonly tsSec: number,
    readonly tsNsec: number,
    readonly packetNumber: number,
  ) {}
}

class Stream {
  /** Links in the LRU list (active or closed, depending on `ended`). */
  prev: Stream | null = null;
  next: Stream | null = null;
  /** Links in the list of streams holding data behind a hole, oldest hole first. */
  holePrev: Stream | null = null;
  holeNext: Stream | null = null;
  inHoles = false;
  holeSince = 0;
  lastSeen = 0;
  /** Next expected sequence number (uint32). */
  nextSeq = 0;
  ended = false;
  hasIsn = false;
  isn = 0;
  hasFin = false;
  finSeq = 0;
  /** Held pieces sorted by sequence, disjoint, all ahead of nextSeq; consumed from heldStart. */
  held: Held[] = [];
  heldStart = 0;
  heldBytes = 0;

  constructor(
    readonly key: string,
    public sink: TcpStreamSink,
  ) {}
}

class StreamList {
  head: Stream | null = null;
  tail: Stream | null = null;
}

function listPush(list: StreamList, s: Stream): void {
  s.prev = list.tail;
  s.next = null;
  if (list.tail !== null) list.tail.next = s;
  else list.head = s;
  list.tail = s;
}

function listRemove(list: StreamList, s: Stream): void {
  if (s.prev !== null) s.prev.next = s.next;
  else list.head = s.next;
  if (s.next !== null) s.next.prev = s.prev;
  else list.tail = s.prev;
  s.prev = s.next = null;
}

const NO_SINK: TcpStreamSink = Object.freeze({ data() {}, gap() {}, end() {} });
const NO_META: TcpSegmentMeta = Object.freeze({ tsSec: 0, tsNsec: 0, packetNumber: 0 });

function limit(v: number | undefined, def: number, min: number): number {
  return typeof v === 'number' && v >= min && !Number.isNaN(v) ? v : def;
}

/** All counters at zero. */
export function emptyTcpStats(): TcpStats {
  return {
    segments: 0,
    streams: 0,
    retransmissions: 0,
    overlaps: 0,
    outOfOrder: 0,
    gaps: 0,
    gapBytes: 0,
    evictedStreams: 0,
    idleStreams: 0,
    droppedBytes: 0,
    activeStreams: 0,
    bufferedBytes: 0,
  };
}

export class TcpReassembler {
  readonly stats: TcpStats = emptyTcpStats();
  private readonly maxStreams: number;
  private readonly maxPerStream: number;
  private readonly maxTotal: number;
  private readonly idleSec: number;
  private readonly maxSegments: number;
  private readonly holeSec: number;
  private readonly map = new Map<string, Stream>();
  private readonly active = new StreamList();
  /** Streams ended by FIN/RST, kept so stray retransmissions do not open new streams. */
  private readonly closed = new StreamList();
  private holeHead: Stream | null = null;
  private holeTail: Stream | null = null;
  private holeCount = 0;
  /** Latest capture time seen (segment meta or expire). */
  private now = 0;
  private lastExpire = Number.NEGATIVE_INFINITY;
  // Scratch for hold(): the new ranges of a segment and where they go.
  private readonly gapFrom: number[] = [];
  private readonly gapTo: number[] = [];
  private readonly gapAt: number[] = [];

  constructor(
    private readonly newSink: (key: string, meta: TcpSegmentMeta) => TcpStreamSink,
    limits: TcpLimits = {},
  ) {
    this.maxStreams = Math.floor(limit(limits.maxStreams, DEFAULT_MAX_STREAMS, 1));
    this.maxPerStream = limit(limits.maxBufferedBytesPerStream, DEFAULT_MAX_PER_STREAM, 0);
    this.maxTotal = limit(limits.maxBufferedBytes, DEFAULT_MAX_BUFFERED, 0);
    this.idleSec = limit(limits.idleTimeoutSec, DEFAULT_IDLE_SEC, 0);
    this.maxSegments = limit(limits.maxOutOfOrderSegments, DEFAULT_MAX_SEGMENTS, 0);
    this.holeSec = limit(limits.holeTimeoutSec, DEFAULT_HOLE_SEC, 0);
  }

  /**
   * One TCP segment of one direction. `seq` is the raw 32-bit sequence number; payload[off, end) is
   * delivered in place when in order, copied when held. Never throws on malformed arguments (an
   * unusable payload range counts as no payload); exceptions thrown by sinks propagate.
   */
  segment(
    key: string,
    seq: number,
    flags: number,
    payload: Buffer,
    off: number,
    end: number,
    meta: TcpSegmentMeta,
  ): void {
    const stats = this.stats;
    stats.segments++;
    if (typeof meta !== 'object' || meta === null) meta = NO_META;
    if (Number.isFinite(meta.tsSec)) this.now = meta.tsSec;
    seq = seq >>> 0;
    if (
      !Buffer.isBuffer(payload) ||
      !Number.isInteger(off) ||
      !Number.isInteger(end) ||
      off < 0 ||
      end < off ||
      end > payload.length
    ) {
      off = end = 0;
    }
    const len = end - off;
    let st = this.map.get(key);

    if (flags & TCP_RST) {
      if (st === undefined) return;
      if (!st.ended) this.finish(st, 'rst', true);
      this.touch(st);
      return;
    }
    let dataSeq = seq;
    if (flags & TCP_SYN) {
      dataSeq = (seq + 1) >>> 0;
      if (st !== undefined && !st.ended && st.hasIsn && st.isn === seq) {
        if (len === 0) stats.retransmissions++;
      } else {
        // A different SYN: the key is being reused by a new connection.
        if (st !== undefined) this.discard(st);
        st = this.open(key, meta);
        st.hasIsn = true;
        st.isn = seq;
        st.nextSeq = dataSeq;
      }
    } else if (st === undefined || st.ended) {
      if (st !== undefined && this.near(st, seq)) {
        // A straggler of the closed connection.
        this.touch(st);
        if (len > 0) stats.retransmissions++;
        return;
      }
      // Mid-connection start: anchor on the first segment carrying payload.
      if (len === 0) return;
      if (st !== undefined) this.discard(st);
      st = this.open(key, meta);
      st.nextSeq = seq;
    } else if (len > 0 && !this.near(st, seq)) {
      this.discard(st);
      st = this.open(key, meta);
      st.nextSeq = seq;
    }
    this.touch(st);
    if (len > 0) this.data(st, dataSeq, payload, off, end, meta);
    if ((flags & TCP_FIN) !== 0 && !st.ended) this.fin(st, (dataSeq + len) >>> 0);
  }

  /**
   * Declares holes open for holeTimeoutSec as gaps and ends streams idle for idleTimeoutSec.
   * Cheap per packet: it does work at most once per second of capture time, oldest first.
   */
  expire(nowSec: number): void {
    if (!Number.isFinite(nowSec)) return;
    if (nowSec >= this.lastExpire && nowSec < this.lastExpire + 1) return;
    this.lastExpire = nowSec;
    this.now = nowSec;
    // Each skip moves a stream that still holds data to the back with a fresh time; bound the pass.
    for (let budget = this.holeCount; budget > 0; budget--) {
      const st = this.holeHead;
      if (st === null || !(nowSec - st.holeSince >= this.holeSec)) break;
      if (!this.skipHole(st)) this.leaveHoles(st);
      this.checkFin(st);
    }
    for (
      let st = this.active.head;
      st !== null && nowSec - st.lastSeen >= this.idleSec;
      st = this.active.head
    ) {
      this.stats.idleStreams++;
      this.finish(st, 'idle', false);
    }
    for (
      let st = this.closed.head;
      st !== null && nowSec - st.lastSeen >= this.idleSec;
      st = this.closed.head
    ) {
      this.forget(st);
    }
  }

  /** End of input: delivers what is held (declaring gaps over holes) and ends every stream. */
  flush(): void {
    for (let st = this.active.head; st !== null; st = this.active.head) this.finish(st, 'flush', false);
    for (let st = this.closed.head; st !== null; st = this.closed.head) this.forget(st);
  }

  private data(st: Stream, seq: number, buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void {
    const stats = this.stats;
    let ahead = false;
    let overlapped = false;
    let partial = false;
    for (;;) {
      let len = end - off;
      if (st.hasFin) {
        const room = (st.finSeq - seq) | 0;
        if (room < len) {
          const cut = room > 0 ? len - room : len;
          stats.droppedBytes += cut;
          end -= cut;
          len -= cut;
          if (len <= 0) return;
        }
      }
      const rel = (seq - st.nextSeq) | 0;
      if (rel <= -len) {
        if (!partial) stats.retransmissions++;
        return;
      }
      if (rel <= 0) {
        if (rel < 0) {
          if (!overlapped) stats.overlaps++;
          overlapped = true;
          off -= rel;
          len += rel;
          seq = st.nextSeq;
        }
        if (st.heldStart < st.held.length) {
          const first = (st.held[st.heldStart].seq - seq) | 0;
          if (first > 0 && first < len) {
            // Bytes already held were received first: they win over this segment's copy.
            if (!overlapped) stats.overlaps++;
            overlapped = true;
            partial = true;
            this.deliver(st, buf, off, off + first, meta);
            if (st.ended) return;
            off += first;
            seq = (seq + first) >>> 0;
            continue;
          }
        }
        this.deliver(st, buf, off, end, meta);
        return;
      }
      if (!ahead) stats.outOfOrder++;
      ahead = true;
      if (this.hold(st, rel, buf, off, end, meta)) return;
      if (!this.makeRoom(st, rel, len)) {
        stats.droppedBytes += len;
        return;
      }
      if (st.ended) return;
    }
  }

  private deliver(st: Stream, buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void {
    st.nextSeq = (st.nextSeq + (end - off)) >>> 0;
    st.sink.data(buf, off, end, meta);
    if (st.heldStart < st.held.length) this.drain(st);
    this.checkFin(st);
  }

  /** Delivers held pieces that have become in order; returns how many were consumed. */
  private drain(st: Stream): number {
    const stats = this.stats;
    const held = st.held;
    let i = st.heldStart;
    const first = i;
    while (i < held.length) {
      const p = held[i];
      const rel = (p.seq - st.nextSeq) | 0;
      if (rel > 0) break;
      i++;
      // Consume before calling the sink so the state stays consistent whatever it does.
      st.heldStart = i;
      const plen = p.buf.length;
      st.heldBytes -= plen;
      stats.bufferedBytes -= plen + HELD_COST;
      const o = -rel;
      let e = plen;
      if (o >= e) {
        stats.overlaps++;
        continue;
      }
      if (o > 0) stats.overlaps++;
      if (st.hasFin) {
        const room = (st.finSeq - st.nextSeq) | 0;
        if (e - o > room) {
          const cut = room > 0 ? e - o - room : e - o;
          stats.droppedBytes += cut;
          e -= cut;
          if (e <= o) continue;
        }
      }
      st.nextSeq = (st.nextSeq + (e - o)) >>> 0;
      st.sink.data(p.buf, o, e, p);
    }
    const consumed = i - first;
    if (i >= held.length) {
      held.length = 0;
      st.heldStart = 0;
      this.leaveHoles(st);
    } else if (consumed > 0) {
      if (i >= 64 && i * 2 >= held.length) {
        held.splice(0, i);
        st.heldStart = 0;
      }
      // What remains waits behind a new hole.
      this.leaveHoles(st);
      this.enterHoles(st);
    }
    return consumed;
  }

  /**
   * Copies the bytes of an out-of-order segment not already held (first received wins). Returns
   * false, holding nothing, when that would exceed a limit.
   */
  private hold(
    st: Stream,
    rel: number,
    buf: Buffer,
    off: number,
    end: number,
    meta: TcpSegmentMeta,
  ): boolean {
    const held = st.held;
    const n = held.length;
    const next = st.nextSeq;
    const re = rel + (end - off);
    let lo = st.heldStart;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = held[mid];
      if (((p.seq - next) | 0) + p.buf.length <= rel) lo = mid + 1;
      else hi = mid;
    }
    const from = this.gapFrom;
    const to = this.gapTo;
    const at = this.gapAt;
    from.length = to.length = at.length = 0;
    let cursor = rel;
    let fresh = 0;
    let j = lo;
    for (; j < n; j++) {
      const p = held[j];
      const a = (p.seq - next) | 0;
      if (a >= re) break;
      if (a > cursor) {
        from.push(cursor);
        to.push(a);
        at.push(j);
        fresh += a - cursor;
      }
      const b = a + p.buf.length;
      if (b > cursor) cursor = b;
    }
    if (cursor < re) {
      from.push(cursor);
      to.push(re);
      at.push(j);
      fresh += re - cursor;
    }
    const stats = this.stats;
    if (fresh === 0) {
      stats.retransmissions++;
      return true;
    }
    const pieces = from.length;
    if (
      st.heldBytes + fresh > this.maxPerStream ||
      n - st.heldStart + pieces > this.maxSegments ||
      stats.bufferedBytes + fresh + pieces * HELD_COST > this.maxTotal
    ) {
      return false;
    }
    if (fresh < re - rel) stats.overlaps++;
    // Back to front so the recorded insertion indexes stay valid.
    for (let k = pieces - 1; k >= 0; k--) {
      const a = from[k];
      const b = to[k];
      const copy = Buffer.allocUnsafeSlow(b - a);
      buf.copy(copy, 0, off + a - rel, off + b - rel);
      held.splice(at[k], 0, new Held((next + a) >>> 0, copy, meta.tsSec, meta.tsNsec, meta.packetNumber));
    }
    st.heldBytes += fresh;
    stats.bufferedBytes += fresh + pieces * HELD_COST;
    this.enterHoles(st);
    return true;
  }

  /**
   * A segment `rel` bytes ahead cannot be held: move some stream forward. Prefers this stream
   * (gap to whichever comes first, the segment or its earliest held piece), else the stream with the
   * oldest hole when the total budget is what is short, else gaps straight to the segment.
   */
  private makeRoom(st: Stream, rel: number, len: number): boolean {
    if (st.heldStart < st.held.length) {
      const first = (st.held[st.heldStart].seq - st.nextSeq) | 0;
      if (rel < first) {
        this.gap(st, rel);
        return true;
      }
      const moved = this.skipHole(st);
      this.checkFin(st);
      return moved;
    }
    const other = this.holeHead;
    if (
      other !== null &&
      other !== st &&
      len <= this.maxPerStream &&
      this.maxSegments >= 1 &&
      len + HELD_COST <= this.maxTotal
    ) {
      if (!this.skipHole(other)) this.leaveHoles(other);
      this.checkFin(other);
      return true;
    }
    this.gap(st, rel);
    return true;
  }

  /** Gives up on the first hole: declares it a gap (up to the FIN) and delivers what follows it. */
  private skipHole(st: Stream): boolean {
    if (st.heldStart >= st.held.length) return false;
    let bytes = (st.held[st.heldStart].seq - st.nextSeq) | 0;
    if (st.hasFin) {
      const room = (st.finSeq - st.nextSeq) | 0;
      if (bytes > room) bytes = room;
    }
    if (bytes > 0) this.gap(st, bytes);
    return this.drain(st) > 0 || bytes > 0;
  }

  private gap(st: Stream, bytes: number): void {
    st.nextSeq = (st.nextSeq + bytes) >>> 0;
    this.stats.gaps++;
    this.stats.gapBytes += bytes;
    st.sink.gap(bytes);
  }

  private fin(st: Stream, finSeq: number): void {
    if (st.hasFin) return;
    const rel = (finSeq - st.nextSeq) | 0;
    // A FIN before bytes already delivered, or absurdly far ahead, is garbage.
    if (rel < 0 || rel > SEQ_WINDOW) return;
    st.hasFin = true;
    st.finSeq = finSeq;
    this.checkFin(st);
  }

  private checkFin(st: Stream): void {
    if (st.hasFin && !st.ended && st.nextSeq === st.finSeq) this.finish(st, 'fin', true);
  }

  /** Whether `seq` is plausibly part of the connection `st` tracks (or tracked). */
  private near(st: Stream, seq: number): boolean {
    const rel = (seq - st.nextSeq) | 0;
    return rel <= SEQ_WINDOW && rel >= -SEQ_WINDOW;
  }

  private open(key: string, meta: TcpSegmentMeta): Stream {
    if (this.map.size >= this.maxStreams) {
      // Closed streams are only kept as a courtesy: they go first.
      const victim = this.closed.head ?? this.active.head;
      if (victim !== null) this.discard(victim);
    }
    const st = new Stream(key, this.newSink(key, meta));
    st.lastSeen = this.now;
    this.map.set(key, st);
    listPush(this.active, st);
    this.stats.streams++;
    this.stats.activeStreams++;
    return st;
  }

  /** Removes a stream to make room for another; an active one ends with 'evicted'. */
  private discard(st: Stream): void {
    if (st.ended) {
      this.forget(st);
      return;
    }
    this.stats.evictedStreams++;
    this.finish(st, 'evicted', false);
  }

  /**
   * Ends an active stream: delivers everything held (declaring gaps over holes, as nothing more will
   * come), then either keeps it as a closed tombstone (`keep`) or forgets it.
   */
  private finish(st: Stream, reason: TcpEndReason, keep: boolean): void {
    while (st.heldStart < st.held.length && !(st.hasFin && st.nextSeq === st.finSeq)) {
      if (!this.skipHole(st)) break;
    }
    const atFin = st.hasFin && st.nextSeq === st.finSeq;
    if (atFin && (reason === 'flush' || reason === 'idle')) reason = 'fin';
    // Whatever is still held lies past the FIN.
    const stats = this.stats;
    for (let i = st.heldStart; i < st.held.length; i++) {
      const plen = st.held[i].buf.length;
      stats.droppedBytes += plen;
      stats.bufferedBytes -= plen + HELD_COST;
    }
    st.held = [];
    st.heldStart = 0;
    st.heldBytes = 0;
    this.leaveHoles(st);
    listRemove(this.active, st);
    st.ended = true;
    stats.activeStreams--;
    if (keep) {
      st.lastSeen = this.now;
      listPush(this.closed, st);
    } else {
      this.map.delete(st.key);
    }
    const sink = st.sink;
    st.sink = NO_SINK;
    sink.end(reason);
  }

  private forget(st: Stream): void {
    listRemove(this.closed, st);
    this.map.delete(st.key);
  }

  private touch(st: Stream): void {
    st.lastSeen = this.now;
    const list = st.ended ? this.closed : this.active;
    if (list.tail !== st) {
      listRemove(list, st);
      listPush(list, st);
    }
  }

  private enterHoles(st: Stream): void {
    if (st.inHoles) return;
    st.inHoles = true;
    st.holeSince = this.now;
    st.holePrev = this.holeTail;
    st.holeNext = null;
    if (this.holeTail !== null) this.holeTail.holeNext = st;
    else this.holeHead = st;
    this.holeTail = st;
    this.holeCount++;
  }

  private leaveHoles(st: Stream): void {
    if (!st.inHoles) return;
    st.inHoles = false;
    if (st.holePrev !== null) st.holePrev.holeNext = st.holeNext;
    else this.holeHead = st.holeNext;
    if (st.holeNext !== null) st.holeNext.holePrev = st.holePrev;
    else this.holeTail = st.holePrev;
    st.holePrev = st.holeNext = null;
    this.holeCount--;
  }
}

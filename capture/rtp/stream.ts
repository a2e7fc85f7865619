import type { RtcpFigures } from '../../core/media-report.js';
import type { RtpHeader } from './header.js';
import {
  addTransit,
  burstRatio,
  DELAY_FIELDS,
  delayShares,
  initDelay,
  intervalLossPercent,
  LossBurstHistogram,
  mosFromR,
  rFactor,
} from './quality.js';
import {
  addRtpPacket,
  BYTES,
  CLOCK_RATE,
  expectedPackets,
  FIRST_TIME_MS,
  initStats,
  JITTER_MS,
  LAST_TIME_MS,
  lastHadWrongTimestamp,
  MARKERS,
  MAX_DELTA_MS,
  MAX_JITTER_MS,
  MAX_SKEW_MS,
  MEAN_DELTA_MS,
  MEAN_JITTER_MS,
  MIN_DELTA_MS,
  MIN_JITTER_MS,
  PACKETS,
  SEQUENCE_ERRORS,
  STATS_FIELDS,
  WRONG_TIMESTAMPS,
} from './stream-stats.js';

/** Window of recent sequence numbers kept per stream to tell duplicates, late packets and loss runs. */
const WINDOW = 32;
/** Loss-run buckets: runs of 1..9 packets, and 10 or more. */
const LOSS_RUN_BUCKETS = 10;

/**
 * Where a stream's media was announced: the SDP endpoint (address and port) of one call. Several
 * streams share one (every SSRC sent to the port), and one call has several.
 */
export interface MediaBinding {
  callId: string;
  /** Dynamic payload types from `a=rtpmap`. */
  rtpmap: Map<number, { encoding: string; clockRate: number }>;
  kind: 'rtp' | 'rtcp' | 'udptl';
  rtcpMux: boolean;
}

/*
 * A stream's state is one row of doubles in a Float64Array shared by STREAMS_PER_CHUNK streams (plus
 * three references kept beside it: the SDP binding, RTCP figures and loss-run histogram, the last two
 * created only when needed). In an object, 20,000 streams cost ~1,170 bytes each and a packet touched
 * the object's ~11 cache lines plus ~20 heap numbers (a double field is a separate 16-byte box). A row
 * is 87 doubles (696 bytes), and what an in-order packet reads and writes is in its first 56 (7 cache
 * lines): the 5-tuple and SSRC the lookup compares, tshark's figures, then the window, interval and
 * delay figures. What only losses, reports and sweeps touch comes last. Booleans are 0/1, "none" -1.
 */
// Lookup: compared while walking a hash bucket.
const PORTS = 0;
const SRC_A = 1;
const DST_A = 2;
/** As a signed 32-bit integer, so it never leaves the small-integer range in comparisons or arguments. */
const SSRC = 3;
/** Next slot in the hash bucket, -1 at its end. */
const NEXT = 4;
const SRC_B = 5;
const DST_B = 6;
const SRC_C = 7;
const DST_C = 8;
const SRC_D = 9;
const DST_D = 10;
/** 1 when the stream has an SDP binding: read per packet, so the binding array is not. */
const BOUND = 11;
// tshark's figures (stream-stats.ts).
const STATS = 12;
// Per packet besides them.
const PAYLOAD_TYPE = STATS + STATS_FIELDS;
/** Payload types seen, as bits (0..127), four 32-bit words. */
const PT_MASK = PAYLOAD_TYPE + 1;
const INTERVAL_PACKETS = PT_MASK + 4;
const INTERVAL_MAX_JITTER = INTERVAL_PACKETS + 1;
// Sequence window: bit i set = sequence (highest − i) received; `fill` bits are meaningful.
const HIGHEST = INTERVAL_MAX_JITTER + 1;
const HIGHEST_EXT = HIGHEST + 1;
const WINDOW_BITS = HIGHEST_EXT + 1;
const FILL = WINDOW_BITS + 1;
const PREV_LOST = FILL + 1;
// Loss transitions (for BurstR) of the current interval, counted as bits leave the window; RR is the
// one counted per packet, the others only around losses (after the per-packet figures, below).
const RR = PREV_LOST + 1;
/** First RTP timestamp with a known clock (-1: none yet): delay variation's time origin. */
const TS_BASE = RR + 1;
/** Delay variation (quality.ts): packets and fastest transit per packet, then the late counts. */
const DELAY = TS_BASE + 1;
// Only when a packet is lost, late or a duplicate.
const LOSS_RUN = DELAY + DELAY_FIELDS;
const RL = LOSS_RUN + 1;
const LR = RL + 1;
const LL = LR + 1;
const DUPLICATES = LL + 1;
const OUT_OF_ORDER = DUPLICATES + 1;
// Per interval, per sweep, per report.
const INTERVAL_START_MS = OUT_OF_ORDER + 1;
const INTERVAL_START_EXT = INTERVAL_START_MS + 1;
const MOS_SUM = INTERVAL_START_EXT + 1;
const MOS_INTERVALS = MOS_SUM + 1;
const MIN_MOS = MOS_INTERVALS + 1;
const LAST_MOS = MIN_MOS + 1;
const LAST_R = LAST_MOS + 1;
/** Capture time (ms since the capture's first packet) after which the stream ends if silent. */
const END_AFTER_MS = LAST_R + 1;
/** END_BYE, END_RTCP_BYE or 0. */
const END_REASON = END_AFTER_MS + 1;
/** SSRC of the stream last seen on the same 5-tuple before this one, -1 for none. */
const PREVIOUS_SSRC = END_REASON + 1;
const HASH = PREVIOUS_SSRC + 1;
const IP_FAMILY = HASH + 1;
/** Outer VLAN id, -1 for none. */
const VLAN = IP_FAMILY + 1;
/** DISCOVERY_SDP or DISCOVERY_HEURISTIC. */
const DISCOVERY = VLAN + 1;
/** Next slot among the streams of the same call, -1 at the end. */
const NEXT_OF_CALL = DISCOVERY + 1;
// Live streams in creation order (what sweeps and reports walk), -1 at either end; LIVE is 1 while tracked.
const LIVE_PREV = NEXT_OF_CALL + 1;
const LIVE_NEXT = LIVE_PREV + 1;
const LIVE = LIVE_NEXT + 1;
const FIELDS = LIVE + 1;

const END_BYE = 1;
const END_RTCP_BYE = 2;
const DISCOVERY_SDP = 1;
const DISCOVERY_HEURISTIC = 2;

/**
 * Streams per chunk of rows. Chunks are added as streams arrive and never copied, so a table of N
 * streams holds at most N + 255 rows (growing one big array by doubling could leave half unused).
 */
const CHUNK_BITS = 8;
const STREAMS_PER_CHUNK = 1 << CHUNK_BITS;
const SLOT_IN_CHUNK = STREAMS_PER_CHUNK - 1;

interface Chunk {
  readonly f: Float64Array;
  readonly binding: (MediaBinding | null)[];
  /** Created on the first RTCP that mentions the stream. */
  readonly rtcp: (RtcpState | null)[];
  /** Created on the first loss run: most streams never lose a packet. */
  readonly bursts: (LossBurstHistogram | null)[];
}

/** A stream's 5-tuple as the lookup compares it: IPv4 addresses are word A, B..D are 0. */
export interface StreamKey {
  ports: number;
  srcA: number;
  srcB: number;
  srcC: number;
  srcD: number;
  dstA: number;
  dstB: number;
  dstC: number;
  dstD: number;
}

/**
 * The RTP streams (5-tuple + SSRC) being tracked: tshark-compatible statistics plus what quality
 * scoring needs — a 32-packet sequence window (duplicates, late packets, loss runs as they leave the
 * window), the current interval's counters and the transit-time baseline for delay variation. A stream
 * is a slot number; the hash index (per 5-tuple, the SSRC compared while walking) and the chains of
 * streams are slot numbers in the rows and in one Int32Array, so the tracker holds no object per stream.
 */
export class MediaStreamTable {
  private chunks: Chunk[] = [];
  /** Slots of ended streams, reused before new rows. */
  private readonly free: number[] = [];
  private rows = 0;
  private count = 0;
  /** First slot of each hash bucket, -1 when empty; as many buckets as a power of two ≥ the streams. */
  private heads = new Int32Array(1024).fill(-1);
  private mask = 1023;
  private liveFirst = -1;
  private liveLast = -1;
  private readonly view = new MediaStream();

  get size(): number {
    return this.count;
  }

  /** The slot of stream (key, ssrc) in bucket `hash`, -1 when it is not tracked. `ssrc` as int32. */
  find(hash: number, k: StreamKey, ssrc: number): number {
    const chunks = this.chunks;
    for (let slot = this.heads[hash & this.mask]; slot >= 0; ) {
      const f = chunks[slot >>> CHUNK_BITS].f;
      const o = (slot & SLOT_IN_CHUNK) * FIELDS;
      // The comparisons written out, not sameTuple(): this loop runs for every packet.
      if (
        f[o + SSRC] === ssrc &&
        f[o + PORTS] === k.ports &&
        f[o + SRC_A] === k.srcA &&
        f[o + DST_A] === k.dstA &&
        f[o + SRC_B] === k.srcB &&
        f[o + DST_B] === k.dstB &&
        f[o + SRC_C] === k.srcC &&
        f[o + DST_C] === k.dstC &&
        f[o + SRC_D] === k.srcD &&
        f[o + DST_D] === k.dstD
      )
        return slot;
      slot = f[o + NEXT];
    }
    return -1;
  }

  /**
   * The SSRC (unsigned) of the stream last started on this 5-tuple with another SSRC, -1 for none:
   * asked only when a new stream starts.
   */
  otherSsrcOfTuple(hash: number, k: StreamKey, ssrc: number): number {
    for (let slot = this.heads[hash & this.mask]; slot >= 0; ) {
      const f = this.chunks[slot >>> CHUNK_BITS].f;
      const o = (slot & SLOT_IN_CHUNK) * FIELDS;
      if (f[o + SSRC] !== ssrc && sameTuple(f, o, k)) return f[o + SSRC] >>> 0;
      slot = f[o + NEXT];
    }
    return -1;
  }

  /** Starts a stream; returns its slot. `ssrc` as int32, `vlan` -1 for none. */
  add(
    hash: number,
    k: StreamKey,
    ssrc: number,
    ipFamily: 4 | 6,
    vlan: number,
    binding: MediaBinding | null,
    discovery: 'sdp' | 'heuristic',
    nowMs: number,
  ): number {
    if (this.count >= this.heads.length) this.growIndex();
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.rows++;
      if (slot >>> CHUNK_BITS === this.chunks.length) {
        this.chunks.push({
          f: new Float64Array(STREAMS_PER_CHUNK * FIELDS),
          binding: new Array<MediaBinding | null>(STREAMS_PER_CHUNK).fill(null),
          rtcp: new Array<RtcpState | null>(STREAMS_PER_CHUNK).fill(null),
          bursts: new Array<LossBurstHistogram | null>(STREAMS_PER_CHUNK).fill(null),
        });
      }
    }
    const c = this.chunks[slot >>> CHUNK_BITS];
    const i = slot & SLOT_IN_CHUNK;
    const f = c.f;
    const o = i * FIELDS;
    f.fill(0, o, o + FIELDS);
    f[o + PORTS] = k.ports;
    f[o + SRC_A] = k.srcA;
    f[o + SRC_B] = k.srcB;
    f[o + SRC_C] = k.srcC;
    f[o + SRC_D] = k.srcD;
    f[o + DST_A] = k.dstA;
    f[o + DST_B] = k.dstB;
    f[o + DST_C] = k.dstC;
    f[o + DST_D] = k.dstD;
    f[o + SSRC] = ssrc;
    f[o + HASH] = hash;
    initStats(f, o + STATS);
    f[o + TS_BASE] = -1;
    initDelay(f, o + DELAY);
    f[o + INTERVAL_START_MS] = nowMs;
    f[o + END_AFTER_MS] = Number.POSITIVE_INFINITY;
    f[o + PREVIOUS_SSRC] = -1;
    f[o + IP_FAMILY] = ipFamily;
    f[o + VLAN] = vlan;
    f[o + DISCOVERY] = discovery === 'sdp' ? DISCOVERY_SDP : DISCOVERY_HEURISTIC;
    f[o + NEXT_OF_CALL] = -1;
    f[o + LIVE] = 1;
    c.binding[i] = binding;
    f[o + BOUND] = binding === null ? 0 : 1;
    c.rtcp[i] = null;
    c.bursts[i] = null;
    const b = hash & this.mask;
    f[o + NEXT] = this.heads[b];
    this.heads[b] = slot;
    f[o + LIVE_PREV] = this.liveLast;
    f[o + LIVE_NEXT] = -1;
    if (this.liveLast >= 0) this.setField(this.liveLast, LIVE_NEXT, slot);
    else this.liveFirst = slot;
    this.liveLast = slot;
    this.count++;
    return slot;
  }

  /** Stops tracking the stream: out of its bucket and the live list; its slot is reused. */
  remove(slot: number): void {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const f = c.f;
    const o = (slot & SLOT_IN_CHUNK) * FIELDS;
    const b = f[o + HASH] & this.mask;
    const next = f[o + NEXT];
    if (this.heads[b] === slot) this.heads[b] = next;
    else {
      for (let s = this.heads[b]; s >= 0; s = this.field(s, NEXT)) {
        if (this.field(s, NEXT) === slot) {
          this.setField(s, NEXT, next);
          break;
        }
      }
    }
    const prev = f[o + LIVE_PREV];
    const after = f[o + LIVE_NEXT];
    if (prev >= 0) this.setField(prev, LIVE_NEXT, after);
    else this.liveFirst = after;
    if (after >= 0) this.setField(after, LIVE_PREV, prev);
    else this.liveLast = prev;
    f[o + LIVE] = 0;
    const i = slot & SLOT_IN_CHUNK;
    c.binding[i] = null;
    c.rtcp[i] = null;
    c.bursts[i] = null;
    this.free.push(slot);
    this.count--;
  }

  /** Twice the buckets, every stream hashed again (newest first in each bucket, as added). */
  private growIndex(): void {
    this.heads = new Int32Array(this.heads.length * 2).fill(-1);
    this.mask = this.heads.length - 1;
    for (let s = this.liveFirst; s >= 0; s = this.field(s, LIVE_NEXT)) {
      const b = this.field(s, HASH) & this.mask;
      this.setField(s, NEXT, this.heads[b]);
      this.heads[b] = s;
    }
  }

  private field(slot: number, field: number): number {
    return this.chunks[slot >>> CHUNK_BITS].f[(slot & SLOT_IN_CHUNK) * FIELDS + field];
  }

  private setField(slot: number, field: number, value: number): void {
    this.chunks[slot >>> CHUNK_BITS].f[(slot & SLOT_IN_CHUNK) * FIELDS + field] = value;
  }

  /** The first live stream in creation order, -1 for none; `nextLive` walks on. */
  get firstLive(): number {
    return this.liveFirst;
  }

  nextLive(slot: number): number {
    return this.field(slot, LIVE_NEXT);
  }

  isLive(slot: number): boolean {
    return this.field(slot, LIVE) === 1;
  }

  binding(slot: number): MediaBinding | null {
    const c = this.chunks[slot >>> CHUNK_BITS];
    return c.f[(slot & SLOT_IN_CHUNK) * FIELDS + BOUND] === 0 ? null : c.binding[slot & SLOT_IN_CHUNK];
  }

  lastTimeMs(slot: number): number {
    return this.field(slot, STATS + LAST_TIME_MS);
  }

  intervalStartMs(slot: number): number {
    return this.field(slot, INTERVAL_START_MS);
  }

  endAfterMs(slot: number): number {
    return this.field(slot, END_AFTER_MS);
  }

  endReason(slot: number): 'bye' | 'rtcp-bye' | null {
    const r = this.field(slot, END_REASON);
    return r === END_BYE ? 'bye' : r === END_RTCP_BYE ? 'rtcp-bye' : null;
  }

  /** The stream ends once silent after `atMs` (a BYE seen), unless an earlier end is already set. */
  endAfter(slot: number, atMs: number, reason: 'bye' | 'rtcp-bye'): void {
    if (this.field(slot, END_AFTER_MS) > atMs) {
      this.setField(slot, END_AFTER_MS, atMs);
      this.setField(slot, END_REASON, reason === 'bye' ? END_BYE : END_RTCP_BYE);
    }
  }

  previousSsrc(slot: number, ssrc: number): void {
    this.setField(slot, PREVIOUS_SSRC, ssrc);
  }

  /** Next stream of the same call after `slot`, -1 at the end. */
  nextOfCall(slot: number): number {
    return this.field(slot, NEXT_OF_CALL);
  }

  setNextOfCall(slot: number, next: number): void {
    this.setField(slot, NEXT_OF_CALL, next);
  }

  clockRate(slot: number): number {
    return this.field(slot, STATS + CLOCK_RATE);
  }

  /** RTCP figures of the stream, created on the first RTCP that mentions it. */
  rtcpState(slot: number): RtcpState {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const i = slot & SLOT_IN_CHUNK;
    let st = c.rtcp[i];
    if (st === null) {
      st = emptyRtcpState();
      c.rtcp[i] = st;
    }
    return st;
  }

  /** The stream's figures as an object with names, for reports: one view, moved to `slot` each time. */
  at(slot: number): MediaStream {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const i = slot & SLOT_IN_CHUNK;
    return this.view.moveTo(c.f, i * FIELDS, c.binding[i], c.rtcp[i], c.bursts[i]);
  }

  /** Adds a packet: tshark statistics, then the window, interval and delay figures. */
  packet(slot: number, h: RtpHeader, clockRate: number): void {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const f = c.f;
    const o = (slot & SLOT_IN_CHUNK) * FIELDS;
    const first = f[o + STATS + PACKETS] === 0;
    addRtpPacket(f, o + STATS, h, clockRate);
    const timeMs = h.timeMs;
    const sequence = h.sequence;
    const payloadType = h.payloadType;
    // The stream's codec is its voice payload: comfort noise and events do not replace it.
    if (first || (clockRate !== 0 && payloadType !== 13 && payloadType !== 19))
      f[o + PAYLOAD_TYPE] = payloadType;
    const m = o + PT_MASK + (payloadType >>> 5);
    f[m] = f[m] | (1 << (payloadType & 31));
    f[o + INTERVAL_PACKETS]++;
    const jitter = f[o + STATS + JITTER_MS];
    if (jitter > f[o + INTERVAL_MAX_JITTER]) f[o + INTERVAL_MAX_JITTER] = jitter;
    if (first) {
      f[o + HIGHEST] = sequence;
      f[o + HIGHEST_EXT] = sequence;
      f[o + INTERVAL_START_EXT] = sequence - 1;
      f[o + INTERVAL_START_MS] = timeMs;
      f[o + WINDOW_BITS] = 1;
      f[o + FILL] = 1;
    } else {
      let d = (sequence - f[o + HIGHEST]) & 0xffff;
      if (d >= 0x8000) d -= 0x10000;
      if (d === 1 && f[o + FILL] === WINDOW) {
        // The next packet in order with the window full, as nearly every packet is: what
        // sequenceWindow does for it, without the calls (the oldest position leaves the window).
        const window = f[o + WINDOW_BITS];
        const oldestReceived = window >= 0x80000000;
        if (oldestReceived && f[o + PREV_LOST] === 0) f[o + RR]++;
        else this.outBit(c, slot, f, o, oldestReceived);
        f[o + WINDOW_BITS] = ((window << 1) | 1) >>> 0;
        f[o + HIGHEST] = sequence;
        f[o + HIGHEST_EXT]++;
      } else this.sequenceWindow(c, slot, f, o, sequence, d);
    }
    if (clockRate !== 0 && !lastHadWrongTimestamp(f, o + STATS)) {
      // Transit time against the RTP clock; the fastest packet so far is the baseline (clock offsets cancel).
      const timestamp = h.timestamp;
      if (f[o + TS_BASE] < 0) f[o + TS_BASE] = timestamp;
      // RTP timestamp in ms since the stream's first timestamp (wrap-safe for 2^31 ticks).
      const sinceBase = (((timestamp - f[o + TS_BASE]) >>> 0) * 1000) / clockRate;
      addTransit(f, o + DELAY, timeMs - sinceBase);
    }
  }

  /** `d`: the sequence's distance from the highest one so far (−0x8000..0x7fff). */
  private sequenceWindow(
    c: Chunk,
    slot: number,
    f: Float64Array,
    o: number,
    sequence: number,
    d: number,
  ): void {
    if (d > 0) {
      this.shiftOut(c, slot, f, o, d);
      f[o + WINDOW_BITS] = d >= WINDOW ? 1 : ((f[o + WINDOW_BITS] << d) | 1) >>> 0;
      f[o + FILL] = Math.min(WINDOW, f[o + FILL] + d);
      f[o + HIGHEST] = sequence;
      f[o + HIGHEST_EXT] += d;
      return;
    }
    const back = -d;
    if (back >= WINDOW || back >= f[o + FILL]) {
      // Older than anything still in the window: late (or a duplicate we can no longer tell apart).
      f[o + OUT_OF_ORDER]++;
      return;
    }
    const bit = 1 << back;
    if (f[o + WINDOW_BITS] & bit) f[o + DUPLICATES]++;
    else {
      f[o + WINDOW_BITS] = (f[o + WINDOW_BITS] | bit) >>> 0;
      f[o + OUT_OF_ORDER]++;
    }
  }

  /** Moves `count` positions of the window out (oldest first), counting loss runs and transitions. */
  private shiftOut(c: Chunk, slot: number, f: Float64Array, o: number, count: number): void {
    const fill = f[o + FILL];
    const leaving = fill + count - WINDOW;
    if (leaving <= 0) return;
    const old = Math.min(leaving, fill);
    const window = f[o + WINDOW_BITS];
    for (let k = 0; k < old; k++) this.outBit(c, slot, f, o, ((window >>> (fill - 1 - k)) & 1) === 1);
    // A jump longer than the window: the sequence numbers between leave at once, all lost.
    const gap = leaving - old;
    if (gap > 0) {
      if (f[o + PREV_LOST] !== 0) f[o + LL] += gap;
      else {
        f[o + RL]++;
        f[o + LL] += gap - 1;
      }
      f[o + LOSS_RUN] += gap;
      f[o + PREV_LOST] = 1;
    }
  }

  private outBit(c: Chunk, slot: number, f: Float64Array, o: number, received: boolean): void {
    if (received) {
      if (f[o + PREV_LOST] !== 0) {
        f[o + LR]++;
        const i = slot & SLOT_IN_CHUNK;
        let bursts = c.bursts[i];
        if (bursts === null) {
          bursts = new LossBurstHistogram(LOSS_RUN_BUCKETS);
          c.bursts[i] = bursts;
        }
        bursts.record(f[o + LOSS_RUN]);
        f[o + LOSS_RUN] = 0;
      } else f[o + RR]++;
      f[o + PREV_LOST] = 0;
    } else {
      if (f[o + PREV_LOST] !== 0) f[o + LL]++;
      else f[o + RL]++;
      f[o + LOSS_RUN]++;
      f[o + PREV_LOST] = 1;
    }
  }

  /** Drains the window at the end of the stream so the last loss runs are counted. */
  drain(slot: number): void {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const f = c.f;
    const o = (slot & SLOT_IN_CHUNK) * FIELDS;
    const window = f[o + WINDOW_BITS];
    for (let i = f[o + FILL] - 1; i >= 0; i--) this.outBit(c, slot, f, o, ((window >>> i) & 1) === 1);
    f[o + FILL] = 0;
    f[o + WINDOW_BITS] = 0;
  }

  /**
   * Closes the current interval: loss from this interval's sequence range (not cumulative), MOS from
   * it with the codec's constants and the observed burstiness. Returns the interval figures.
   */
  closeInterval(slot: number, endMs: number, codec: string | null): IntervalResult {
    const c = this.chunks[slot >>> CHUNK_BITS];
    const f = c.f;
    const o = (slot & SLOT_IN_CHUNK) * FIELDS;
    const expected = f[o + HIGHEST_EXT] - f[o + INTERVAL_START_EXT];
    const packets = f[o + INTERVAL_PACKETS];
    const lost = Math.max(0, expected - packets);
    const lossPercent = intervalLossPercent(expected, packets);
    const burstR = burstRatio({
      receivedToLost: f[o + RL],
      receivedToReceived: f[o + RR],
      lostToReceived: f[o + LR],
      lostToLost: f[o + LL],
    });
    // Half the RTCP round trip is the only delay a passive observer can know.
    const rtt = c.rtcp[slot & SLOT_IN_CHUNK]?.roundTripMs ?? null;
    const r = rFactor({ codec, lossPercent, burstR, oneWayDelayMs: rtt === null ? undefined : rtt / 2 });
    const mos = mosFromR(r);
    const result: IntervalResult = {
      startMs: f[o + INTERVAL_START_MS],
      endMs,
      packets,
      expected: Math.max(expected, 0),
      lost,
      lossPercent,
      jitterMs: f[o + STATS + JITTER_MS],
      maxJitterMs: f[o + INTERVAL_MAX_JITTER],
      burstR,
      rFactor: r,
      mos,
    };
    if (packets > 0) {
      f[o + MOS_SUM] += mos;
      const intervals = ++f[o + MOS_INTERVALS];
      f[o + MIN_MOS] = intervals === 1 ? mos : Math.min(f[o + MIN_MOS], mos);
      f[o + LAST_MOS] = mos;
      f[o + LAST_R] = r;
    }
    f[o + INTERVAL_START_MS] = endMs;
    f[o + INTERVAL_START_EXT] = f[o + HIGHEST_EXT];
    f[o + INTERVAL_PACKETS] = 0;
    f[o + INTERVAL_MAX_JITTER] = 0;
    f[o + RR] = 0;
    f[o + RL] = 0;
    f[o + LR] = 0;
    f[o + LL] = 0;
    return result;
  }
}

/** Whether the row at `f[o]` is the stream of 5-tuple `k`. */
function sameTuple(f: Float64Array, o: number, k: StreamKey): boolean {
  return (
    f[o + PORTS] === k.ports &&
    f[o + SRC_A] === k.srcA &&
    f[o + DST_A] === k.dstA &&
    f[o + SRC_B] === k.srcB &&
    f[o + DST_B] === k.dstB &&
    f[o + SRC_C] === k.srcC &&
    f[o + DST_C] === k.dstC &&
    f[o + SRC_D] === k.srcD &&
    f[o + DST_D] === k.dstD
  );
}

/**
 * One stream's figures by name, read from its row: what reports and codec naming read. The table moves
 * its one view from stream to stream; hold it only while building one report.
 */
export class MediaStream {
  private f: Float64Array = new Float64Array(FIELDS);
  private o = 0;
  binding: MediaBinding | null = null;
  rtcp: RtcpState | null = null;
  private bursts: LossBurstHistogram | null = null;

  moveTo(
    f: Float64Array,
    o: number,
    binding: MediaBinding | null,
    rtcp: RtcpState | null,
    bursts: LossBurstHistogram | null,
  ): this {
    this.f = f;
    this.o = o;
    this.binding = binding;
    this.rtcp = rtcp;
    this.bursts = bursts;
    return this;
  }

  private get(field: number): number {
    return this.f[this.o + field];
  }

  get ipFamily(): 4 | 6 {
    return this.get(IP_FAMILY) === 6 ? 6 : 4;
  }
  get srcA(): number {
    return this.get(SRC_A);
  }
  get srcB(): number {
    return this.get(SRC_B);
  }
  get srcC(): number {
    return this.get(SRC_C);
  }
  get srcD(): number {
    return this.get(SRC_D);
  }
  get dstA(): number {
    return this.get(DST_A);
  }
  get dstB(): number {
    return this.get(DST_B);
  }
  get dstC(): number {
    return this.get(DST_C);
  }
  get dstD(): number {
    return this.get(DST_D);
  }
  /** Source port << 16 | destination port (signed). */
  get ports(): number {
    return this.get(PORTS);
  }
  get ssrc(): number {
    return this.get(SSRC) >>> 0;
  }
  get vlan(): number | null {
    const v = this.get(VLAN);
    return v < 0 ? null : v;
  }
  get discovery(): 'sdp' | 'heuristic' {
    return this.get(DISCOVERY) === DISCOVERY_SDP ? 'sdp' : 'heuristic';
  }
  get previousSsrc(): number | null {
    const v = this.get(PREVIOUS_SSRC);
    return v < 0 ? null : v;
  }
  /** Voice payload type: the latest one with a clock that is not comfort noise (else the first seen). */
  get payloadType(): number {
    return this.get(PAYLOAD_TYPE);
  }
  get clockRate(): number {
    return this.get(STATS + CLOCK_RATE);
  }
  get packets(): number {
    return this.get(STATS + PACKETS);
  }
  get expected(): number {
    return expectedPackets(this.f, this.o + STATS);
  }
  /** Expected minus received: negative when duplicates outnumber losses, as tshark prints it. */
  get lost(): number {
    return this.expected - this.packets;
  }
  /** Whether tshark would mark the stream in its "Problems?" column (a sequence or timestamp error). */
  get problem(): boolean {
    return this.sequenceErrors > 0 || this.wrongTimestamps > 0;
  }
  get sequenceErrors(): number {
    return this.get(STATS + SEQUENCE_ERRORS);
  }
  get wrongTimestamps(): number {
    return this.get(STATS + WRONG_TIMESTAMPS);
  }
  get markers(): number {
    return this.get(STATS + MARKERS);
  }
  get bytes(): number {
    return this.get(STATS + BYTES);
  }
  get firstTimeMs(): number {
    return this.get(STATS + FIRST_TIME_MS);
  }
  get lastTimeMs(): number {
    return this.get(STATS + LAST_TIME_MS);
  }
  get minDeltaMs(): number {
    return this.get(STATS + MIN_DELTA_MS);
  }
  get meanDeltaMs(): number {
    return this.get(STATS + MEAN_DELTA_MS);
  }
  get maxDeltaMs(): number {
    return this.get(STATS + MAX_DELTA_MS);
  }
  get minJitterMs(): number {
    return this.get(STATS + MIN_JITTER_MS);
  }
  get meanJitterMs(): number {
    return this.get(STATS + MEAN_JITTER_MS);
  }
  get maxJitterMs(): number {
    return this.get(STATS + MAX_JITTER_MS);
  }
  get maxSkewMs(): number {
    return this.get(STATS + MAX_SKEW_MS);
  }
  get duplicates(): number {
    return this.get(DUPLICATES);
  }
  get outOfOrder(): number {
    return this.get(OUT_OF_ORDER);
  }
  get mosIntervals(): number {
    return this.get(MOS_INTERVALS);
  }
  get meanMos(): number {
    const n = this.mosIntervals;
    return n > 0 ? this.get(MOS_SUM) / n : 0;
  }
  get minMos(): number {
    return this.get(MIN_MOS);
  }
  get lastMos(): number {
    return this.get(LAST_MOS);
  }
  get lastR(): number {
    return this.get(LAST_R);
  }

  /** Loss runs by length (index 0 = runs of 1); all zero when the stream never lost a packet. */
  lossBurstCounts(): number[] {
    return this.bursts === null ? new Array<number>(LOSS_RUN_BUCKETS).fill(0) : this.bursts.counts;
  }

  /** '50' → share of the stream's packets later than 50 ms, and so on. */
  delayShares(): Record<string, number> {
    return delayShares(this.f, this.o + DELAY);
  }

  payloadTypeList(): number[] {
    const out: number[] = [];
    for (let w = 0; w < 4; w++) {
      const mask = this.get(PT_MASK + w);
      for (let b = 0; b < 32; b++) if ((mask >>> b) & 1) out.push(w * 32 + b);
    }
    return out;
  }
}

export interface IntervalResult {
  startMs: number;
  endMs: number;
  packets: number;
  expected: number;
  lost: number;
  lossPercent: number;
  jitterMs: number;
  maxJitterMs: number;
  burstR: number;
  rFactor: number;
  mos: number;
}

/** RTCP seen about (report blocks) or from (SR, SDES, XR) a stream's SSRC: what its reports carry. */
export type RtcpState = RtcpFigures;

export function emptyRtcpState(): RtcpState {
  return {
    senderReports: 0,
    receiverReports: 0,
    fractionLost: null,
    cumulativeLost: null,
    jitterMs: null,
    roundTripMs: null,
    xrRFactor: null,
    xrMosLq: null,
    xrMosCq: null,
    cname: null,
  };
}

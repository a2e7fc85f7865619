import type { RtcpFigures } from '../../core/media-report.js';
import type { RtpHeader } from './header.js';
import {
  burstRatio,
  DelayVariation,
  intervalLossPercent,
  LossBurstHistogram,
  mosFromR,
  rFactor,
} from './quality.js';
import { RtpStreamStats } from './stream-stats.js';

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

/**
 * One RTP stream (5-tuple + SSRC): tshark-compatible statistics plus what quality scoring needs —
 * a 32-packet sequence window (duplicates, late packets, loss runs as they leave the window), the
 * current interval's counters and the transit-time baseline for delay variation.
 */
export class MediaStream extends RtpStreamStats {
  /** Chain of streams sharing one hash bucket. */
  next: MediaStream | null = null;
  /** Chain of streams of one call. */
  nextOfCall: MediaStream | null = null;
  ended = false;
  /** Capture time (ms since the capture's first packet) after which the stream ends if silent. */
  endAfterMs = Number.POSITIVE_INFINITY;
  endReason: 'bye' | 'rtcp-bye' | null = null;
  previousSsrc: number | null = null;
  duplicates = 0;
  outOfOrder = 0;
  /** Voice payload type: the latest one with a clock that is not comfort noise (else the first seen). */
  payloadType = 0;
  /** Payload types seen, as bits (0..127). */
  ptMask0 = 0;
  ptMask1 = 0;
  ptMask2 = 0;
  ptMask3 = 0;
  // Sequence window: bit i set = sequence (highest − i) received; `fill` bits are meaningful.
  private highest = 0;
  private highestExt = 0;
  private window = 0;
  private fill = 0;
  private lossRun = 0;
  private prevLost = false;
  // Loss transitions (for BurstR) of the current interval, counted as bits leave the window.
  private rr = 0;
  private rl = 0;
  private lr = 0;
  private ll = 0;
  // Interval counters.
  intervalStartMs = 0;
  private intervalPackets = 0;
  private intervalStartExt = 0;
  private intervalMaxJitter = 0;
  private mosSum = 0;
  mosIntervals = 0;
  minMos = 0;
  lastMos = 0;
  lastR = 0;
  /** Created on the first loss run: most streams never lose a packet. */
  bursts: LossBurstHistogram | null = null;
  readonly delay = new DelayVariation();
  rtcp: RtcpState | null = null;

  constructor(
    readonly hash: number,
    readonly ipFamily: 4 | 6,
    readonly srcA: number,
    readonly srcB: number,
    readonly srcC: number,
    readonly srcD: number,
    readonly dstA: number,
    readonly dstB: number,
    readonly dstC: number,
    readonly dstD: number,
    readonly ports: number,
    readonly ssrc: number,
    readonly vlan: number | null,
    readonly binding: MediaBinding | null,
    readonly discovery: 'sdp' | 'heuristic',
  ) {
    super();
  }

  /** Adds a packet: tshark statistics, then the window, interval and delay figures. */
  packet(h: RtpHeader, clockRate: number): void {
    const first = this.packets === 0;
    this.add(h, clockRate);
    const timeMs = h.timeMs;
    const sequence = h.sequence;
    const payloadType = h.payloadType;
    // The stream's codec is its voice payload: comfort noise and events do not replace it.
    if (first || (clockRate !== 0 && payloadType !== 13 && payloadType !== 19))
      this.payloadType = payloadType;
    if (payloadType < 32) this.ptMask0 |= 1 << payloadType;
    else if (payloadType < 64) this.ptMask1 |= 1 << (payloadType - 32);
    else if (payloadType < 96) this.ptMask2 |= 1 << (payloadType - 64);
    else this.ptMask3 |= 1 << (payloadType - 96);
    this.intervalPackets++;
    if (this.jitterMs > this.intervalMaxJitter) this.intervalMaxJitter = this.jitterMs;
    if (first) {
      this.highest = sequence;
      this.highestExt = sequence;
      this.intervalStartExt = sequence - 1;
      this.intervalStartMs = timeMs;
      this.window = 1;
      this.fill = 1;
    } else {
      this.sequenceWindow(sequence);
    }
    if (clockRate !== 0 && (this.lastFlags & 0x080) === 0) {
      // Transit time against the RTP clock; the fastest packet so far is the baseline (clock offsets cancel).
      this.delay.addTransit(timeMs - this.skewBase(h.timestamp, clockRate));
    }
  }

  private tsBase = -1;
  /** RTP timestamp in ms since the stream's first timestamp (wrap-safe for 2^31 ticks). */
  private skewBase(timestamp: number, clockRate: number): number {
    if (this.tsBase < 0) this.tsBase = timestamp;
    return (((timestamp - this.tsBase) >>> 0) * 1000) / clockRate;
  }

  private sequenceWindow(sequence: number): void {
    let d = (sequence - this.highest) & 0xffff;
    if (d >= 0x8000) d -= 0x10000;
    if (d > 0) {
      this.shiftOut(d);
      this.window = d >= WINDOW ? 1 : ((this.window << d) | 1) >>> 0;
      this.fill = Math.min(WINDOW, this.fill + d);
      this.highest = sequence;
      this.highestExt += d;
      return;
    }
    const back = -d;
    if (back >= WINDOW || back >= this.fill) {
      // Older than anything still in the window: late (or a duplicate we can no longer tell apart).
      this.outOfOrder++;
      return;
    }
    const bit = 1 << back;
    if (this.window & bit) this.duplicates++;
    else {
      this.window = (this.window | bit) >>> 0;
      this.outOfOrder++;
    }
  }

  /** Moves `count` positions of the window out (oldest first), counting loss runs and transitions. */
  private shiftOut(count: number): void {
    const leaving = this.fill + count - WINDOW;
    if (leaving <= 0) return;
    const old = Math.min(leaving, this.fill);
    for (let k = 0; k < old; k++) this.outBit(((this.window >>> (this.fill - 1 - k)) & 1) === 1);
    // A jump longer than the window: the sequence numbers between leave at once, all lost.
    const gap = leaving - old;
    if (gap > 0) {
      if (this.prevLost) this.ll += gap;
      else {
        this.rl++;
        this.ll += gap - 1;
      }
      this.lossRun += gap;
      this.prevLost = true;
    }
  }

  private outBit(received: boolean): void {
    if (received) {
      if (this.prevLost) {
        this.lr++;
        if (this.bursts === null) this.bursts = new LossBurstHistogram(LOSS_RUN_BUCKETS);
        this.bursts.record(this.lossRun);
        this.lossRun = 0;
      } else this.rr++;
      this.prevLost = false;
    } else {
      if (this.prevLost) this.ll++;
      else this.rl++;
      this.lossRun++;
      this.prevLost = true;
    }
  }

  /** Drains the window at the end of the stream so the last loss runs are counted. */
  drain(): void {
    for (let i = this.fill - 1; i >= 0; i--) this.outBit(((this.window >>> i) & 1) === 1);
    this.fill = 0;
    this.window = 0;
  }

  /**
   * Closes the current interval: loss from this interval's sequence range (not cumulative), MOS from
   * it with the codec's constants and the observed burstiness. Returns the interval figures.
   */
  closeInterval(endMs: number, codec: string | null): IntervalResult {
    const expected = this.highestExt - this.intervalStartExt;
    const packets = this.intervalPackets;
    const lost = Math.max(0, expected - packets);
    const lossPercent = intervalLossPercent(expected, packets);
    const burstR = burstRatio({
      receivedToLost: this.rl,
      receivedToReceived: this.rr,
      lostToReceived: this.lr,
      lostToLost: this.ll,
    });
    // Half the RTCP round trip is the only delay a passive observer can know.
    const rtt = this.rtcp?.roundTripMs ?? null;
    const r = rFactor({ codec, lossPercent, burstR, oneWayDelayMs: rtt === null ? undefined : rtt / 2 });
    const mos = mosFromR(r);
    const result: IntervalResult = {
      startMs: this.intervalStartMs,
      endMs,
      packets,
      expected: Math.max(expected, 0),
      lost,
      lossPercent,
      jitterMs: this.jitterMs,
      maxJitterMs: this.intervalMaxJitter,
      burstR,
      rFactor: r,
      mos,
    };
    if (packets > 0) {
      this.mosSum += mos;
      this.mosIntervals++;
      this.minMos = this.mosIntervals === 1 ? mos : Math.min(this.minMos, mos);
      this.lastMos = mos;
      this.lastR = r;
    }
    this.intervalStartMs = endMs;
    this.intervalStartExt = this.highestExt;
    this.intervalPackets = 0;
    this.intervalMaxJitter = 0;
    this.rr = 0;
    this.rl = 0;
    this.lr = 0;
    this.ll = 0;
    return result;
  }

  /** RTCP figures of this stream, created on the first RTCP that mentions it. */
  rtcpState(): RtcpState {
    if (this.rtcp === null) this.rtcp = emptyRtcpState();
    return this.rtcp;
  }

  get meanMos(): number {
    return this.mosIntervals > 0 ? this.mosSum / this.mosIntervals : 0;
  }

  /** Loss runs by length (index 0 = runs of 1); all zero when the stream never lost a packet. */
  lossBurstCounts(): number[] {
    return this.bursts === null ? new Array<number>(LOSS_RUN_BUCKETS).fill(0) : this.bursts.counts;
  }

  payloadTypeList(): number[] {
    const out: number[] = [];
    const masks = [this.ptMask0, this.ptMask1, this.ptMask2, this.ptMask3];
    for (let w = 0; w < 4; w++) for (let b = 0; b < 32; b++) if ((masks[w] >>> b) & 1) out.push(w * 32 + b);
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

/**
 * Per-stream RTP statistics computed exactly as Wireshark 4.0's RTP Streams table computes them
 * (the reference NOC engineers check against): sequence accounting from the first and last sequence
 * numbers with wrap cycles, arrival deltas, RFC 3550 jitter in milliseconds from capture time, skew.
 *
 * The order of operations, the packets excluded from min/mean/max ("irregular": marker, comfort noise
 * and the packet after it, timestamps before the first one) and the odd running means (divided by the
 * number of packets so far, whether or not each one contributed) are reproduced on purpose: the numbers
 * must equal tshark's to the printed microsecond. Integer clock division (8000 Hz → 8 per ms, 44100 →
 * 44) is part of that contract. See docs/MEDIA.md.
 */

import type { RtpHeader } from './header.js';

const FLAG_FIRST = 0x001;
const FLAG_MARKER = 0x002;
const FLAG_WRONG_SEQ = 0x004;
const FLAG_PT_CN = 0x010;
const FLAG_FOLLOW_PT_CN = 0x020;
const FLAG_WRONG_TIMESTAMP = 0x080;

const PT_CN = 13;
const PT_CN_OLD = 19;

function isComfortNoise(pt: number): boolean {
  return pt === PT_CN || pt === PT_CN_OLD;
}

export class RtpStreamStats {
  /** Packets counted (tshark's "Pkts"). */
  packets = 0;
  /** Sequence numbers that were neither next nor a forward jump counted as loss (late, duplicate). */
  sequenceErrors = 0;
  /** Packets whose RTP timestamp lies before the stream's first one. */
  wrongTimestamps = 0;
  markers = 0;
  /** RTP bytes (header + payload + padding) as carried in UDP. */
  bytes = 0;
  startSeq = 0;
  /** Sequence number of the last packet counted, not the highest one: tshark's "expected" uses it. */
  stopSeq = 0;
  seqCycles = 0;
  firstTimeMs = 0;
  lastTimeMs = 0;
  /** Arrival time of the last in-time-sequence packet, ms since the capture's first packet. */
  private timeMs = 0;
  private seqNum = 0;
  private under = false;
  private firstTimestamp = 0;
  private lastNominalMs = 0;
  private pt = -1;
  delta = 0;
  jitterMs = 0;
  /** |arrival − expected arrival| of the last packet with a known clock, ms. */
  diffMs = 0;
  skewMs = 0;
  maxSkewMs = 0;
  minDeltaMs = -1;
  maxDeltaMs = 0;
  meanDeltaMs = 0;
  minJitterMs = -1;
  maxJitterMs = 0;
  meanJitterMs = 0;
  /** Clock rate of the last packet with a known one (0: none yet). */
  clockRate = 0;
  /** Flags of the last packet (FLAG_* bits); tshark's per-packet problem markers. */
  lastFlags = 0;

  /**
   * Adds one packet. `h.timeMs` is the capture time relative to the capture's first packet (as
   * tshark's rel_ts), `clockRate` the payload type's RTP clock in Hz, 0 when jitter does not apply
   * (unknown dynamic type, telephone-event).
   */
  add(h: RtpHeader, clockRate: number): void {
    const timeMs = h.timeMs;
    const sequence = h.sequence;
    const timestamp = h.timestamp;
    const payloadType = h.payloadType;
    const marker = h.marker;
    const dataLength = h.dataLength;
    this.bytes += dataLength;
    this.lastTimeMs = timeMs;
    if (marker) this.markers++;
    if (this.packets === 0) {
      this.startSeq = sequence;
      this.stopSeq = sequence;
      this.seqNum = sequence;
      this.firstTimeMs = timeMs;
      this.firstTimestamp = timestamp;
      this.timeMs = timeMs;
      this.pt = payloadType;
      this.packets = 1;
      this.lastFlags = FLAG_FIRST | (marker ? FLAG_MARKER : 0);
      return;
    }
    let flags = 0;
    const first = this.firstTimestamp;
    // "In time sequence": within half the 32-bit timestamp range after the first packet's timestamp.
    const inTime =
      first <= timestamp ? timestamp - first < 0x80000000 : 0xffffffff - first + timestamp < 0x80000000;
    if (!inTime) {
      flags |= FLAG_WRONG_TIMESTAMP;
      this.wrongTimestamps++;
    }
    if (inTime) {
      if (sequence < this.startSeq && !this.under) {
        this.seqCycles++;
        this.under = true;
      } else if (sequence === 0 && this.stopSeq === 65535 && !this.under) {
        this.seqCycles++;
        this.under = true;
      } else if (sequence > this.startSeq && this.under) {
        this.under = false;
      }
    }
    const seqNum = this.seqNum;
    if (inTime && seqNum + 1 === sequence) {
      this.seqNum = sequence;
    } else if (inTime && seqNum === 65535 && sequence === 0) {
      this.seqNum = sequence;
    } else if (inTime && (seqNum + 1 < sequence || seqNum - sequence > 0xff00)) {
      this.seqNum = sequence;
      this.sequenceErrors++;
      flags |= FLAG_WRONG_SEQ;
    } else if (seqNum + 1 > sequence) {
      this.sequenceErrors++;
      flags |= FLAG_WRONG_SEQ;
    }
    if (isComfortNoise(payloadType)) flags |= FLAG_PT_CN;
    if (isComfortNoise(this.pt)) flags |= FLAG_FOLLOW_PT_CN;
    this.pt = payloadType;

    let currentJitter = 0;
    if (inTime) {
      if (clockRate !== 0) {
        this.clockRate = clockRate;
        // Integer kHz, as tshark divides (guint32 clock_rate / 1000).
        const nominal = ((timestamp - first) >>> 0) / Math.floor(clockRate / 1000);
        const expected = this.timeMs + (nominal - this.lastNominalMs);
        const diff = Math.abs(timeMs - expected);
        currentJitter = (15 * this.jitterMs + diff) / 16;
        this.delta = timeMs - this.timeMs;
        this.jitterMs = currentJitter;
        this.diffMs = diff;
        this.lastNominalMs = nominal;
        this.skewMs = nominal - (timeMs - this.firstTimeMs);
        if (Math.abs(this.skewMs) > Math.abs(this.maxSkewMs)) this.maxSkewMs = this.skewMs;
      } else {
        this.delta = timeMs - this.timeMs;
      }
    }
    if (marker) flags |= FLAG_MARKER;
    if ((flags & (FLAG_MARKER | FLAG_PT_CN | FLAG_WRONG_TIMESTAMP | FLAG_FOLLOW_PT_CN)) === 0) {
      const n = this.packets;
      if (this.delta > this.maxDeltaMs) this.maxDeltaMs = this.delta;
      if (this.minDeltaMs === -1 || this.delta < this.minDeltaMs) this.minDeltaMs = this.delta;
      this.meanDeltaMs = (this.meanDeltaMs * (n - 1) + this.delta) / n;
      if (clockRate !== 0) {
        if (this.jitterMs > this.maxJitterMs) this.maxJitterMs = this.jitterMs;
        this.meanJitterMs = (this.meanJitterMs * (n - 1) + currentJitter) / n;
        if (this.minJitterMs === -1 || this.jitterMs < this.minJitterMs) this.minJitterMs = this.jitterMs;
      }
    }
    if (inTime) this.timeMs = timeMs;
    this.stopSeq = sequence;
    this.packets++;
    this.lastFlags = flags;
  }

  /** Expected packets from the first and last sequence numbers and the wrap cycles (tshark's rule). */
  get expected(): number {
    return this.stopSeq + this.seqCycles * 0x10000 - this.startSeq + 1;
  }

  /** Expected minus received: negative when duplicates outnumber losses, as tshark prints it. */
  get lost(): number {
    return this.expected - this.packets;
  }

  /** Whether tshark would mark the stream in its "Problems?" column (a sequence or timestamp error). */
  get problem(): boolean {
    return this.sequenceErrors > 0 || this.wrongTimestamps > 0;
  }
}

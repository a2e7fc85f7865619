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
 *
 * The figures live in a block of a stream's row of doubles (stream.ts lays the rows out), not in an
 * object: 20,000 streams at once must each stay under 1 KB and in as few cache lines as possible, and a
 * double in an object field is a separate 16-byte heap number. Booleans are 0/1 in the row.
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

// Places of the figures in the block, from its start: those every packet reads or writes first, the
// counters of irregular packets last (fewer cache lines per packet with 20,000 streams).
/** Packets counted (tshark's "Pkts"). */
export const PACKETS = 0;
/** RTP bytes (header + payload + padding) as carried in UDP. */
export const BYTES = 1;
export const LAST_TIME_MS = 2;
export const START_SEQ = 3;
/** Sequence number of the last packet counted, not the highest one: tshark's "expected" uses it. */
export const STOP_SEQ = 4;
const SEQ_NUM = 5;
/** 1 while the sequence is below the first one after a wrap (tshark's `under`). */
const UNDER = 6;
const FIRST_TIMESTAMP = 7;
/** Payload type of the previous packet (-1 before the first). */
const PREVIOUS_PT = 8;
/** Arrival time of the last in-time-sequence packet, ms since the capture's first packet. */
const TIME_MS = 9;
const LAST_NOMINAL_MS = 10;
export const JITTER_MS = 11;
const DELTA_MS = 12;
const SKEW_MS = 13;
export const MAX_SKEW_MS = 14;
export const FIRST_TIME_MS = 15;
/** -1 until a regular packet sets it, as tshark's. */
export const MIN_DELTA_MS = 16;
export const MAX_DELTA_MS = 17;
export const MEAN_DELTA_MS = 18;
/** -1 until a regular packet with a known clock sets it. */
export const MIN_JITTER_MS = 19;
export const MAX_JITTER_MS = 20;
export const MEAN_JITTER_MS = 21;
/** Clock rate of the last packet with a known one (0: none yet). */
export const CLOCK_RATE = 22;
/** Flags of the last packet (FLAG_* bits); tshark's per-packet problem markers. */
export const LAST_FLAGS = 23;
/** Sequence numbers that were neither next nor a forward jump counted as loss (late, duplicate). */
export const SEQUENCE_ERRORS = 24;
/** Packets whose RTP timestamp lies before the stream's first one. */
export const WRONG_TIMESTAMPS = 25;
export const MARKERS = 26;
export const SEQ_CYCLES = 27;
/** Doubles the block takes. */
export const STATS_FIELDS = 28;

/** Writes a new stream's figures at `f[o]`: zero but for the -1 sentinels. */
export function initStats(f: Float64Array, o: number): void {
  f.fill(0, o, o + STATS_FIELDS);
  f[o + PREVIOUS_PT] = -1;
  f[o + MIN_DELTA_MS] = -1;
  f[o + MIN_JITTER_MS] = -1;
}

/** Whether the last packet added arrived with a timestamp before the stream's first one. */
export function lastHadWrongTimestamp(f: Float64Array, o: number): boolean {
  return (f[o + LAST_FLAGS] & FLAG_WRONG_TIMESTAMP) !== 0;
}

/**
 * Adds one packet to the block at `f[o]`. `h.timeMs` is the capture time relative to the capture's
 * first packet (as tshark's rel_ts), `clockRate` the payload type's RTP clock in Hz, 0 when jitter does
 * not apply (unknown dynamic type, telephone-event).
 */
export function addRtpPacket(f: Float64Array, o: number, h: RtpHeader, clockRate: number): void {
  const timeMs = h.timeMs;
  const sequence = h.sequence;
  const timestamp = h.timestamp;
  const payloadType = h.payloadType;
  const marker = h.marker;
  const dataLength = h.dataLength;
  f[o + BYTES] += dataLength;
  f[o + LAST_TIME_MS] = timeMs;
  if (marker) f[o + MARKERS]++;
  if (f[o + PACKETS] === 0) {
    f[o + START_SEQ] = sequence;
    f[o + STOP_SEQ] = sequence;
    f[o + SEQ_NUM] = sequence;
    f[o + FIRST_TIME_MS] = timeMs;
    f[o + FIRST_TIMESTAMP] = timestamp;
    f[o + TIME_MS] = timeMs;
    f[o + PREVIOUS_PT] = payloadType;
    f[o + PACKETS] = 1;
    f[o + LAST_FLAGS] = FLAG_FIRST | (marker ? FLAG_MARKER : 0);
    return;
  }
  let flags = 0;
  const first = f[o + FIRST_TIMESTAMP];
  // "In time sequence": within half the 32-bit timestamp range after the first packet's timestamp.
  const inTime =
    first <= timestamp ? timestamp - first < 0x80000000 : 0xffffffff - first + timestamp < 0x80000000;
  if (!inTime) {
    flags |= FLAG_WRONG_TIMESTAMP;
    f[o + WRONG_TIMESTAMPS]++;
  }
  if (inTime) {
    const startSeq = f[o + START_SEQ];
    const under = f[o + UNDER] !== 0;
    if (sequence < startSeq && !under) {
      f[o + SEQ_CYCLES]++;
      f[o + UNDER] = 1;
    } else if (sequence === 0 && f[o + STOP_SEQ] === 65535 && !under) {
      f[o + SEQ_CYCLES]++;
      f[o + UNDER] = 1;
    } else if (sequence > startSeq && under) {
      f[o + UNDER] = 0;
    }
  }
  const seqNum = f[o + SEQ_NUM];
  if (inTime && seqNum + 1 === sequence) {
    f[o + SEQ_NUM] = sequence;
  } else if (inTime && seqNum === 65535 && sequence === 0) {
    f[o + SEQ_NUM] = sequence;
  } else if (inTime && (seqNum + 1 < sequence || seqNum - sequence > 0xff00)) {
    f[o + SEQ_NUM] = sequence;
    f[o + SEQUENCE_ERRORS]++;
    flags |= FLAG_WRONG_SEQ;
  } else if (seqNum + 1 > sequence) {
    f[o + SEQUENCE_ERRORS]++;
    flags |= FLAG_WRONG_SEQ;
  }
  if (isComfortNoise(payloadType)) flags |= FLAG_PT_CN;
  if (isComfortNoise(f[o + PREVIOUS_PT])) flags |= FLAG_FOLLOW_PT_CN;
  f[o + PREVIOUS_PT] = payloadType;

  const lastTimeMs = f[o + TIME_MS];
  let currentJitter = 0;
  if (inTime) {
    if (clockRate !== 0) {
      f[o + CLOCK_RATE] = clockRate;
      // Integer kHz, as tshark divides (guint32 clock_rate / 1000).
      const nominal = ((timestamp - first) >>> 0) / Math.floor(clockRate / 1000);
      const expected = lastTimeMs + (nominal - f[o + LAST_NOMINAL_MS]);
      const diff = Math.abs(timeMs - expected);
      currentJitter = (15 * f[o + JITTER_MS] + diff) / 16;
      f[o + DELTA_MS] = timeMs - lastTimeMs;
      f[o + JITTER_MS] = currentJitter;
      f[o + LAST_NOMINAL_MS] = nominal;
      const skew = nominal - (timeMs - f[o + FIRST_TIME_MS]);
      f[o + SKEW_MS] = skew;
      if (Math.abs(skew) > Math.abs(f[o + MAX_SKEW_MS])) f[o + MAX_SKEW_MS] = skew;
    } else {
      f[o + DELTA_MS] = timeMs - lastTimeMs;
    }
  }
  if (marker) flags |= FLAG_MARKER;
  if ((flags & (FLAG_MARKER | FLAG_PT_CN | FLAG_WRONG_TIMESTAMP | FLAG_FOLLOW_PT_CN)) === 0) {
    const n = f[o + PACKETS];
    const delta = f[o + DELTA_MS];
    if (delta > f[o + MAX_DELTA_MS]) f[o + MAX_DELTA_MS] = delta;
    const minDelta = f[o + MIN_DELTA_MS];
    if (minDelta === -1 || delta < minDelta) f[o + MIN_DELTA_MS] = delta;
    f[o + MEAN_DELTA_MS] = (f[o + MEAN_DELTA_MS] * (n - 1) + delta) / n;
    if (clockRate !== 0) {
      const jitter = f[o + JITTER_MS];
      if (jitter > f[o + MAX_JITTER_MS]) f[o + MAX_JITTER_MS] = jitter;
      f[o + MEAN_JITTER_MS] = (f[o + MEAN_JITTER_MS] * (n - 1) + currentJitter) / n;
      const minJitter = f[o + MIN_JITTER_MS];
      if (minJitter === -1 || jitter < minJitter) f[o + MIN_JITTER_MS] = jitter;
    }
  }
  if (inTime) f[o + TIME_MS] = timeMs;
  f[o + STOP_SEQ] = sequence;
  f[o + PACKETS]++;
  f[o + LAST_FLAGS] = flags;
}

/** Expected packets from the first and last sequence numbers and the wrap cycles (tshark's rule). */
export function expectedPackets(f: Float64Array, o: number): number {
  return f[o + STOP_SEQ] + f[o + SEQ_CYCLES] * 0x10000 - f[o + START_SEQ] + 1;
}

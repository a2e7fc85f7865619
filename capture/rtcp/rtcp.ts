/**
 * RTCP compound packets (RFC 3550 §6: SR, RR, SDES, BYE, APP; RFC 3611 XR with the VoIP metrics
 * block; RFC 5761 rtcp-mux detection). Decodes straight from the bytes: only the result objects and
 * the SDES/BYE strings are allocated. Text (SDES items, BYE reason) is UTF-8 as RFC 3550 §6.5 says;
 * invalid sequences become U+FFFD. Every packet of the compound is checked (RFC 3550 A.2): version 2,
 * length inside the datagram, counts that fit the length, padding only on the last packet. Messages
 * name a packet by its place in the compound ("the 2nd RTCP packet of the compound"), never by a bare
 * number that reads like the capture's packet number beside it in a log.
 */

export interface RtcpReportBlock {
  ssrc: number;
  /** 0..255 as on the wire. */
  fractionLostRaw: number;
  /** fractionLostRaw / 256. */
  fractionLost: number;
  /** 24-bit two's complement: duplicates can make it negative. */
  cumulativeLost: number;
  /** Extended highest sequence number (cycles << 16 | seq). */
  highestSeq: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR, 0 when none was received. */
  lsr: number;
  /** Delay since that SR, 1/65536 s units. */
  dlsr: number;
}

export interface RtcpSenderInfo {
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** RFC 3611 §4.7 (XR block type 7). Values are raw as on the wire; 127 means unavailable where the RFC says so. */
export interface RtcpXrVoipMetrics {
  ssrc: number;
  /** Fraction of packets lost, in 1/256. */
  lossRate: number;
  /** Fraction of packets discarded (late or early), in 1/256. */
  discardRate: number;
  burstDensity: number;
  gapDensity: number;
  burstDurationMs: number;
  gapDurationMs: number;
  roundTripDelayMs: number;
  endSystemDelayMs: number;
  /** Signed dBm; 127 = unavailable. */
  signalLevel: number;
  /** Signed dBm; 127 = unavailable. */
  noiseLevel: number;
  /** Residual echo return loss, dB; 127 = unavailable. */
  rerl: number;
  gmin: number;
  /** 0..100; 127 = unavailable. */
  rFactor: number;
  /** 0..100; 127 = unavailable. */
  extRFactor: number;
  /** Wire value / 10 (1.0..5.0); null when the wire says 127 (unavailable). */
  mosLq: number | null;
  /** Wire value / 10 (1.0..5.0); null when the wire says 127 (unavailable). */
  mosCq: number | null;
  /** PLC (2 bits), JBA (2 bits), JB rate (4 bits) as one octet. */
  rxConfig: number;
  jbNominal: number;
  jbMaximum: number;
  jbAbsMax: number;
}

export interface RtcpSdesChunk {
  ssrc: number;
  cname: string | null;
  name: string | null;
  tool: string | null;
}

export type RtcpPacket =
  | { type: 'sr'; ssrc: number; sender: RtcpSenderInfo; reports: RtcpReportBlock[] }
  | { type: 'rr'; ssrc: number; reports: RtcpReportBlock[] }
  | { type: 'sdes'; chunks: RtcpSdesChunk[] }
  | { type: 'bye'; ssrcs: number[]; reason: string | null }
  | { type: 'app'; ssrc: number; name: string; subtype: number }
  | { type: 'xr'; ssrc: number; voipMetrics: RtcpXrVoipMetrics[] }
  /** RTPFB/PSFB (205/206) and any unknown type after the first packet; `length` in bytes, header included. */
  | { type: 'other'; packetType: number; length: number };

export type RtcpParseResult =
  | {
      ok: true;
      packets: RtcpPacket[];
      /** 1..3 bytes after the last packet: tolerated (see parseRtcpCompound), reported as `warning`. */
      trailingBytes?: number;
      warning?: string;
    }
  /** `packets` holds the packets decoded before the problem. */
  | { ok: false; error: string; packets: RtcpPacket[] };

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_APP = 204;
export const RTCP_RTPFB = 205;
export const RTCP_PSFB = 206;
export const RTCP_XR = 207;

const SDES_END = 0;
const SDES_CNAME = 1;
const SDES_NAME = 2;
const SDES_TOOL = 6;
const XR_VOIP_METRICS = 7;
/** Block length (32-bit words after the block header) of an XR VoIP metrics block. */
const XR_VOIP_METRICS_WORDS = 8;
const REPORT_BLOCK = 24;
const SENDER_INFO = 20;
/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET = 2_208_988_800;

const utf8 = new TextDecoder('utf-8');

/** 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st. */
function ordinal(n: number): string {
  const tens = n % 100;
  const units = n % 10;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  if (units === 1) return `${n}st`;
  if (units === 2) return `${n}nd`;
  if (units === 3) return `${n}rd`;
  return `${n}th`;
}

/** Packet `n` (1-based) of a compound, in words a log reader cannot take for a capture packet number. */
function nth(n: number): string {
  return `the ${ordinal(n)} RTCP packet of the compound`;
}

function u16(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function text(b: Uint8Array, s: number, e: number): string {
  if (s === e) return '';
  // Buffer decodes a range without a view object; a plain Uint8Array needs one (no copy).
  return Buffer.isBuffer(b) ? b.toString('utf8', s, e) : utf8.decode(b.subarray(s, e));
}

function reportBlock(b: Uint8Array, i: number): RtcpReportBlock {
  const fraction = b[i + 4];
  // Sign-extend the 24-bit count: shift it to the top of an int32 and back.
  const cumulative = (((b[i + 5] << 16) | (b[i + 6] << 8) | b[i + 7]) << 8) >> 8;
  return {
    ssrc: u32(b, i),
    fractionLostRaw: fraction,
    fractionLost: fraction / 256,
    cumulativeLost: cumulative,
    highestSeq: u32(b, i + 8),
    jitter: u32(b, i + 12),
    lsr: u32(b, i + 16),
    dlsr: u32(b, i + 20),
  };
}

function reportBlocks(b: Uint8Array, i: number, count: number): RtcpReportBlock[] {
  const reports: RtcpReportBlock[] = [];
  for (let k = 0; k < count; k++, i += REPORT_BLOCK) reports.push(reportBlock(b, i));
  return reports;
}

function voipMetrics(b: Uint8Array, i: number): RtcpXrVoipMetrics {
  const mosLq = b[i + 22];
  const mosCq = b[i + 23];
  return {
    ssrc: u32(b, i),
    lossRate: b[i + 4],
    discardRate: b[i + 5],
    burstDensity: b[i + 6],
    gapDensity: b[i + 7],
    burstDurationMs: u16(b, i + 8),
    gapDurationMs: u16(b, i + 10),
    roundTripDelayMs: u16(b, i + 12),
    endSystemDelayMs: u16(b, i + 14),
    signalLevel: (b[i + 16] << 24) >> 24,
    noiseLevel: (b[i + 17] << 24) >> 24,
    rerl: b[i + 18],
    gmin: b[i + 19],
    rFactor: b[i + 20],
    extRFactor: b[i + 21],
    mosLq: mosLq === 127 ? null : mosLq / 10,
    mosCq: mosCq === 127 ? null : mosCq / 10,
    rxConfig: b[i + 24],
    // b[i + 25] is reserved.
    jbNominal: u16(b, i + 26),
    jbMaximum: u16(b, i + 28),
    jbAbsMax: u16(b, i + 30),
  };
}

/**
 * SDES chunks in [i, e). Each chunk is an SSRC, items (type, length, text) and a null type that ends
 * the list, padded with nulls to the next 32-bit boundary of the packet (`p` is the packet start).
 */
function sdes(b: Uint8Array, p: number, i: number, e: number, count: number, n: number): RtcpPacket | string {
  const chunks: RtcpSdesChunk[] = [];
  for (let k = 1; k <= count; k++) {
    if (e - i < 4) return `rtcp: SDES chunk ${k} of ${count} missing in ${nth(n)}`;
    const ssrc = u32(b, i);
    i += 4;
    let cname: string | null = null;
    let name: string | null = null;
    let tool: string | null = null;
    let ended = false;
    while (i < e) {
      const type = b[i];
      if (type === SDES_END) {
        ended = true;
        i++;
        break;
      }
      if (e - i < 2) break;
      const len = b[i + 1];
      const s = i + 2;
      if (s + len > e) return `rtcp: SDES item length ${len} exceeds ${e - s} remaining bytes in ${nth(n)}`;
      // The first occurrence wins: RFC 3550 §6.5.1 allows exactly one CNAME.
      if (type === SDES_CNAME) cname ??= text(b, s, s + len);
      else if (type === SDES_NAME) name ??= text(b, s, s + len);
      else if (type === SDES_TOOL) tool ??= text(b, s, s + len);
      i = s + len;
    }
    if (!ended) return `rtcp: SDES chunk ${k} not terminated in ${nth(n)}`;
    i += (4 - ((i - p) & 3)) & 3;
    chunks.push({ ssrc, cname, name, tool });
  }
  // The terminator's padding can run past a packet cut short by the padding count.
  if (i > e) return `rtcp: SDES chunk ${count} padding runs past the end of ${nth(n)}`;
  return { type: 'sdes', chunks };
}

function bye(b: Uint8Array, i: number, e: number, count: number, n: number): RtcpPacket | string {
  if (e - i < count * 4)
    return `rtcp: BYE with ${count} sources needs ${count * 4} bytes, has ${e - i} in ${nth(n)}`;
  const ssrcs: number[] = [];
  for (let k = 0; k < count; k++, i += 4) ssrcs.push(u32(b, i));
  let reason: string | null = null;
  if (i < e) {
    const len = b[i];
    if (i + 1 + len > e)
      return `rtcp: BYE reason length ${len} exceeds ${e - i - 1} remaining bytes in ${nth(n)}`;
    reason = text(b, i + 1, i + 1 + len);
  }
  return { type: 'bye', ssrcs, reason };
}

function xr(b: Uint8Array, i: number, e: number, n: number): RtcpPacket | string {
  if (e - i < 4) return `rtcp: XR needs 4 bytes, has ${e - i} in ${nth(n)}`;
  const ssrc = u32(b, i);
  i += 4;
  const metrics: RtcpXrVoipMetrics[] = [];
  for (let k = 1; i < e; k++) {
    if (e - i < 4) return `rtcp: XR block ${k} header cut short (${e - i} bytes) in ${nth(n)}`;
    const blockType = b[i];
    const words = u16(b, i + 2);
    const size = 4 + words * 4;
    if (size > e - i)
      return `rtcp: XR block ${k} length ${size} exceeds ${e - i} remaining bytes in ${nth(n)}`;
    if (blockType === XR_VOIP_METRICS) {
      if (words !== XR_VOIP_METRICS_WORDS) {
        return `rtcp: XR VoIP metrics block ${k} length ${words} words, expected 8 in ${nth(n)}`;
      }
      metrics.push(voipMetrics(b, i + 4));
    }
    i += size;
  }
  return { type: 'xr', ssrc, voipMetrics: metrics };
}

/** One packet's body [i, e) → its result, or an error string. `count` is the 5-bit header field. */
function packet(
  b: Uint8Array,
  p: number,
  e: number,
  pt: number,
  count: number,
  length: number,
  n: number,
): RtcpPacket | string {
  const i = p + 4;
  switch (pt) {
    case RTCP_SR: {
      const need = 4 + SENDER_INFO + count * REPORT_BLOCK;
      // Bytes after the report blocks are profile-specific extensions (RFC 3550 §6.4.1): allowed, skipped.
      if (e - i < need)
        return `rtcp: SR with ${count} report blocks needs ${need} bytes, has ${e - i} in ${nth(n)}`;
      return {
        type: 'sr',
        ssrc: u32(b, i),
        sender: {
          ntpSeconds: u32(b, i + 4),
          ntpFraction: u32(b, i + 8),
          rtpTimestamp: u32(b, i + 12),
          packetCount: u32(b, i + 16),
          octetCount: u32(b, i + 20),
        },
        reports: reportBlocks(b, i + 24, count),
      };
    }
    case RTCP_RR: {
      const need = 4 + count * REPORT_BLOCK;
      if (e - i < need)
        return `rtcp: RR with ${count} report blocks needs ${need} bytes, has ${e - i} in ${nth(n)}`;
      return { type: 'rr', ssrc: u32(b, i), reports: reportBlocks(b, i + 4, count) };
    }
    case RTCP_SDES:
      return sdes(b, p, i, e, count, n);
    case RTCP_BYE:
      return bye(b, i, e, count, n);
    case RTCP_APP:
      if (e - i < 8) return `rtcp: APP needs 8 bytes, has ${e - i} in ${nth(n)}`;
      // The name is four ASCII characters (RFC 3550 §6.7); one char per byte keeps any byte visible.
      return {
        type: 'app',
        ssrc: u32(b, i),
        name: String.fromCharCode(b[i + 4], b[i + 5], b[i + 6], b[i + 7]),
        subtype: count,
      };
    case RTCP_XR:
      return xr(b, i, e, n);
    default:
      return { type: 'other', packetType: pt, length };
  }
}

/**
 * Decodes a compound RTCP packet in buf[off, end). Never throws, on any input. The first packet must
 * be of type 200..207 (not necessarily SR/RR: RFC 5506 reduced-size RTCP); later unknown types come
 * back as 'other'. Tolerated, as RFC 3550 allows or real stacks do: bytes after SR/RR report blocks
 * (profile extensions) and after the last SDES chunk, and non-zero octets where SDES/BYE pad to 32
 * bits. Strict: a missing SDES terminator is an error.
 *
 * 1..3 bytes after the last packet: RFC 3550 A.2 wants the packet lengths to add up to the datagram,
 * but such bytes cannot hold a packet (§6.4.1 lengths are whole 32-bit words) or padding (counted
 * inside the last packet's length), and every packet before them is complete. So the result is ok,
 * with `trailingBytes` and a `warning` (tshark's length check passes too). Four or more bytes are read
 * as the next packet's header and must be one.
 */
export function parseRtcpCompound(buf: Uint8Array, off: number, end: number): RtcpParseResult {
  const packets: RtcpPacket[] = [];
  if (!(Number.isInteger(off) && Number.isInteger(end) && off >= 0 && off <= end && end <= buf.length)) {
    return {
      ok: false,
      error: `rtcp: range [${off}, ${end}) is not inside the ${buf.length}-byte buffer`,
      packets,
    };
  }
  if (off === end) return { ok: false, error: 'rtcp: empty datagram', packets };
  let p = off;
  for (let n = 1; p < end; n++) {
    const remaining = end - p;
    if (remaining < 4) {
      if (n === 1)
        return { ok: false, error: `rtcp: ${remaining}-byte datagram is shorter than a header`, packets };
      // Fewer than 4 bytes can be neither an RTCP packet (lengths are whole 32-bit words) nor its
      // padding (counted in the packet's length): the packets before them stand.
      return {
        ok: true,
        packets,
        trailingBytes: remaining,
        warning: `rtcp: ${remaining} trailing bytes after ${nth(n - 1)}`,
      };
    }
    const first = buf[p];
    const version = first >> 6;
    if (version !== 2) return { ok: false, error: `rtcp: version ${version} in ${nth(n)}`, packets };
    const pt = buf[p + 1];
    // An unknown type is skipped inside a compound, but a datagram that starts with one is not RTCP.
    if (n === 1 && (pt < RTCP_SR || pt > RTCP_XR)) {
      return { ok: false, error: `rtcp: packet type ${pt} is not an RTCP type`, packets };
    }
    // The length field counts 32-bit words minus one, so a length is always a multiple of 4.
    const length = (u16(buf, p + 2) + 1) * 4;
    if (length > remaining) {
      return {
        ok: false,
        error: `rtcp: length ${length} exceeds ${remaining} remaining bytes in ${nth(n)}`,
        packets,
      };
    }
    let e = p + length;
    if (first & 0x20) {
      // RFC 3550 §6.4.1: only the last packet of a compound may be padded; the count includes itself.
      // Trailing bytes too few for another packet leave this one the last.
      if (end - e >= 4)
        return { ok: false, error: `rtcp: padding bit on ${nth(n)}, which is not the last`, packets };
      const pad = buf[e - 1];
      if (pad === 0 || pad > length - 4) {
        return {
          ok: false,
          error: `rtcp: padding count ${pad} does not fit ${nth(n)} (${length} bytes)`,
          packets,
        };
      }
      e -= pad;
    }
    const r = packet(buf, p, e, pt, first & 0x1f, length, n);
    if (typeof r === 'string') return { ok: false, error: r, packets };
    packets.push(r);
    p += length;
  }
  return { ok: true, packets };
}

/**
 * Cheap check for the first header: version 2, packet type 200..207, length inside [off, end). RTP on an
 * rtcp-mux port never has these second bytes (RFC 5761 §4 keeps payload types 64..95 out of use).
 */
export function looksLikeRtcp(buf: Uint8Array, off: number, end: number): boolean {
  if (!(off >= 0 && end <= buf.length && end - off >= 4)) return false;
  const pt = buf[off + 1];
  return (
    (buf[off] & 0xc0) === 0x80 && pt >= RTCP_SR && pt <= RTCP_XR && (u16(buf, off + 2) + 1) * 4 <= end - off
  );
}

/** The middle 32 bits of the NTP timestamp of a capture time (Unix seconds + ns), as LSR uses. */
export function ntpMiddle32(tsSec: number, tsNsec: number): number {
  const sec = Math.floor(tsSec) + Math.floor(tsNsec / 1e9);
  const nsec = tsNsec - Math.floor(tsNsec / 1e9) * 1e9;
  // Low 16 bits of NTP seconds, then the top 16 bits of the 2^-32 s fraction (= floor(ns * 2^16 / 1e9)).
  const lowSec = (((sec + NTP_UNIX_OFFSET) % 65536) + 65536) % 65536;
  return (lowSec * 65536 + Math.floor((nsec * 65536) / 1e9)) >>> 0;
}

/** Round trips above this are taken as a mismatched LSR rather than a real delay. */
const MAX_ROUND_TRIP_MS = 60_000;

/**
 * Round-trip time in ms seen from a receiver report arriving at the SR sender's side, RFC 3550 §6.4.1:
 * A − LSR − DLSR in 1/65536 s, computed at `arrivalMiddle32` (ntpMiddle32 of the time the RR was
 * captured). Null when lsr is 0 (no SR received yet) or the result is negative or above 60 s.
 */
export function roundTripMs(arrivalMiddle32: number, lsr: number, dlsr: number): number | null {
  if (lsr === 0) return null;
  // Modulo 2^32 so that a wrap of the 16.16 clock (every 18.2 h) between SR and RR is harmless.
  const delay = (arrivalMiddle32 - lsr - dlsr) | 0;
  if (delay < 0) return null;
  const ms = (delay * 1000) / 65536;
  return ms > MAX_ROUND_TRIP_MS ? null : ms;
}

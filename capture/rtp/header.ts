/**
 * RTP fixed header (RFC 3550 §5.1), decoded into a reused object: one per tracker, overwritten per
 * packet, so the hot path allocates nothing.
 */
export class RtpHeader {
  /**
   * Capture time, ms since the capture's first packet (tshark's relative time); set by the tracker.
   * Carried here so that the per-packet statistics take one object, not loose doubles that V8 would
   * box on every call.
   */
  timeMs = 0;
  version = 0;
  padding = false;
  extension = false;
  csrcCount = 0;
  marker = false;
  payloadType = 0;
  sequence = 0;
  timestamp = 0;
  ssrc = 0;
  /** Offset of the payload (after CSRCs and the header extension). */
  payloadOffset = 0;
  /** Payload bytes without padding. */
  payloadLength = 0;
  /** UDP payload length (header + payload + padding): what tshark's bandwidth figures count. */
  dataLength = 0;
  /**
   * The padding count ran past the payload. Wireshark still counts such a packet on a known stream
   * (clipping the padding), but its heuristic refuses it; so do we.
   */
  badPadding = false;
}

/** RTCP packet types 200..204 sit at payload types 72..76 with the marker bit set (RFC 5761 §4). */
export function isRtcpPayloadType(byte1: number): boolean {
  const pt = byte1 & 0x7f;
  return pt >= 72 && pt <= 76;
}

/**
 * Decodes buf[off, end) as RTP. Returns false (header left partly written) when it cannot be RTP:
 * not version 2, shorter than the header, CSRCs or extension running past the end, or a padding
 * count of 0. Payload types 72..76 are accepted here; callers route them to RTCP first.
 */
export function decodeRtpHeader(buf: Uint8Array, off: number, end: number, h: RtpHeader): boolean {
  if (end - off < 12) return false;
  const b0 = buf[off];
  if (b0 >> 6 !== 2) return false;
  const b1 = buf[off + 1];
  h.version = 2;
  h.padding = (b0 & 0x20) !== 0;
  h.extension = (b0 & 0x10) !== 0;
  h.csrcCount = b0 & 0x0f;
  h.marker = (b1 & 0x80) !== 0;
  h.payloadType = b1 & 0x7f;
  h.sequence = (buf[off + 2] << 8) | buf[off + 3];
  h.timestamp = ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0;
  h.ssrc = ((buf[off + 8] << 24) | (buf[off + 9] << 16) | (buf[off + 10] << 8) | buf[off + 11]) >>> 0;
  let p = off + 12 + 4 * h.csrcCount;
  if (h.extension) {
    if (p + 4 > end) return false;
    p += 4 + 4 * ((buf[p + 2] << 8) | buf[p + 3]);
  }
  if (p > end) return false;
  let padding = 0;
  h.badPadding = false;
  if (h.padding) {
    padding = buf[end - 1];
    if (padding === 0) return false;
    if (p + padding > end) {
      padding = end - p;
      h.badPadding = true;
    }
  }
  h.payloadOffset = p;
  h.payloadLength = end - p - padding;
  h.dataLength = end - off;
  return true;
}

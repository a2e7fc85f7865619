/**
 * SCTP (RFC 9260) packet walker: finds the user messages carried in DATA and I-DATA (RFC 8260)
 * chunks of one packet. The CRC32c is not checked: captures taken on the sending host carry
 * checksum-offload garbage, and tshark does not check it by default either.
 */

const CHUNK_DATA = 0;
const CHUNK_I_DATA = 64;
const COMMON_HEADER = 12;
const DATA_HEADER = 16; // type, flags, length, TSN, stream id, stream seq, PPID
const I_DATA_HEADER = 20; // type, flags, length, TSN, stream id, reserved, MID, PPID/FSN

/** DATA/I-DATA flags (RFC 9260 §3.3.1, RFC 8260 §2.1). */
export const SCTP_FLAG_END = 0x01;
export const SCTP_FLAG_BEGIN = 0x02;
export const SCTP_FLAG_UNORDERED = 0x04;
export const SCTP_FLAG_IMMEDIATE = 0x08;

export interface SctpWalkResult {
  srcPort: number;
  dstPort: number;
  /** Chunks of any type walked in this packet. */
  chunks: number;
  /** DATA and I-DATA chunks among them (tshark: one sctp.data_payload_proto_id each). */
  dataChunks: number;
  /** DATA/I-DATA chunks that were one fragment of a larger user message (not B and E both). */
  fragments: number;
  /** Malformed or truncated chunks; the walk stops at the first one it cannot step over. */
  errors: number;
}

/**
 * Iterates the DATA chunks (type 0) and I-DATA (type 64) of one SCTP packet; checks the common
 * header length; never throws. Returns null when there is no room for the common header.
 *
 * Only unfragmented user messages (B and E set) are passed to onData; fragments are counted in
 * `fragments` and dropped. SIP over SCTP is normally one message per chunk, but a message larger
 * than the path MTU is split (sip_sctp.pcap's 1,764-byte SIP-I INVITE arrives in two DATA chunks),
 * and reassembly needs per-association state this stateless walker does not keep: a caller that
 * keeps it can pass `emitFragments` and reassemble by stream and TSN from the flags. For I-DATA
 * fragments other than the first, the PPID field holds the fragment sequence number, so 0 is
 * reported instead.
 */
export function forEachSctpData(
  buf: Buffer,
  off: number,
  end: number,
  onData: (
    payloadProtocolId: number,
    streamId: number,
    tsn: number,
    flags: number,
    buf: Buffer,
    dataOff: number,
    dataEnd: number,
  ) => void,
  options?: { emitFragments?: boolean },
): SctpWalkResult | null {
  end = Math.min(end, buf.length);
  if (!(off >= 0) || end - off < COMMON_HEADER) return null;
  const result: SctpWalkResult = {
    srcPort: buf.readUInt16BE(off),
    dstPort: buf.readUInt16BE(off + 2),
    chunks: 0,
    dataChunks: 0,
    fragments: 0,
    errors: 0,
  };
  const emitFragments = options?.emitFragments === true;
  let p = off + COMMON_HEADER;
  while (p < end) {
    if (end - p < 4) {
      result.errors++;
      break;
    }
    const type = buf[p];
    const flags = buf[p + 1];
    const len = buf.readUInt16BE(p + 2);
    if (len < 4 || p + len > end) {
      // Too short to step over, or cut off by the snap length: nothing after it can be trusted.
      result.errors++;
      break;
    }
    result.chunks++;
    if (type === CHUNK_DATA || type === CHUNK_I_DATA) {
      result.dataChunks++;
      const hdr = type === CHUNK_DATA ? DATA_HEADER : I_DATA_HEADER;
      // A DATA chunk without user data is a protocol error (RFC 9260 §3.3.1 "No User Data").
      if (len <= hdr) {
        result.errors++;
      } else {
        const tsn = buf.readUInt32BE(p + 4);
        const streamId = buf.readUInt16BE(p + 8);
        const begin = (flags & SCTP_FLAG_BEGIN) !== 0;
        const whole = begin && (flags & SCTP_FLAG_END) !== 0;
        const ppid = type === CHUNK_DATA ? buf.readUInt32BE(p + 12) : begin ? buf.readUInt32BE(p + 16) : 0;
        if (!whole) result.fragments++;
        if (whole || emitFragments) onData(ppid, streamId, tsn, flags, buf, p + hdr, p + len);
      }
    }
    // Chunks are padded to 4 bytes; the padding is not counted in the length.
    p += (len + 3) & ~3;
  }
  return result;
}

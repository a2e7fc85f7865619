import type { DecodedPacket } from '../packet.js';

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
export const IPPROTO_MOBILITY = 135;

/** Fixed IPv6 header. Extension headers are walked by walkIPv6Extensions. */
export function decodeIPv6(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 40) {
    p.error = 'ipv6: short header';
    return -1;
  }
  if (buf[off] >> 4 !== 6) {
    p.error = 'ipv6: bad version';
    return -1;
  }
  const payloadLength = buf.readUInt16BE(off + 4);
  // Jumbograms (payload length 0 with a hop-by-hop option) take the captured length.
  let datagramEnd = payloadLength === 0 ? end : off + 40 + payloadLength;
  if (datagramEnd > end) {
    p.truncated = true;
    datagramEnd = end;
  }
  p.ipVersion = 6;
  p.next = buf[off + 6];
  p.ttl = buf[off + 7];
  for (let i = 0; i < 16; i++) {
    p.src[i] = buf[off + 8 + i];
    p.dst[i] = buf[off + 24 + i];
  }
  p.isFragment = false;
  p.payloadEnd = datagramEnd;
  return off + 40;
}

/**
 * Skips hop-by-hop, routing, destination-options, AH and mobility headers. Stops at a fragment
 * header (filling the fragment fields and returning the offset after it, with p.next = the
 * fragmented part's first header) or at the upper-layer protocol.
 */
export function walkIPv6Extensions(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  for (let hops = 0; hops < 16; hops++) {
    const nh = p.next;
    if (
      nh === IPPROTO_HOPOPTS ||
      nh === IPPROTO_ROUTING ||
      nh === IPPROTO_DSTOPTS ||
      nh === IPPROTO_MOBILITY
    ) {
      if (end - off < 8) return short(p);
      const len = (buf[off + 1] + 1) * 8;
      if (end - off < len) return short(p);
      p.next = buf[off];
      off += len;
    } else if (nh === IPPROTO_AH) {
      if (end - off < 8) return short(p);
      const len = (buf[off + 1] + 2) * 4;
      if (end - off < len) return short(p);
      p.next = buf[off];
      off += len;
    } else if (nh === IPPROTO_FRAGMENT) {
      if (end - off < 8) return short(p);
      p.next = buf[off];
      const offFlags = buf.readUInt16BE(off + 2);
      p.fragmentOffset = offFlags & 0xfff8;
      p.moreFragments = (offFlags & 1) === 1;
      p.fragmentId = buf.readUInt32BE(off + 4);
      // An atomic fragment (offset 0, M=0) is a whole datagram (RFC 6946).
      p.isFragment = p.fragmentOffset !== 0 || p.moreFragments;
      return off + 8;
    } else {
      return off;
    }
  }
  p.error = 'ipv6: too many extension headers';
  return -1;
}

function short(p: DecodedPacket): number {
  p.error = 'ipv6: extension header past end';
  return -1;
}

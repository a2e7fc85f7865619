import type { DecodedPacket } from '../packet.js';

/**
 * IPv4 header (options skipped by IHL). Returns the payload offset and narrows `end` through
 * p.payloadEnd to the total length, so Ethernet padding never reaches the transport.
 */
export function decodeIPv4(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 20) {
    p.error = 'ipv4: short header';
    return -1;
  }
  const vihl = buf[off];
  const ihl = (vihl & 0x0f) * 4;
  if (vihl >> 4 !== 4 || ihl < 20) {
    p.error = 'ipv4: bad version or header length';
    return -1;
  }
  if (end - off < ihl) {
    p.error = 'ipv4: header past end';
    return -1;
  }
  const totalLength = buf.readUInt16BE(off + 2);
  // TSO captures show 0 here; trust the capture length then.
  let datagramEnd = totalLength === 0 ? end : off + totalLength;
  if (totalLength !== 0 && totalLength < ihl) {
    p.error = 'ipv4: total length shorter than header';
    return -1;
  }
  if (datagramEnd > end) {
    p.truncated = true;
    datagramEnd = end;
  }
  p.ipVersion = 4;
  p.ipId = buf.readUInt16BE(off + 4);
  const flagsFrag = buf.readUInt16BE(off + 6);
  p.moreFragments = (flagsFrag & 0x2000) !== 0;
  p.fragmentOffset = (flagsFrag & 0x1fff) * 8;
  p.isFragment = p.moreFragments || p.fragmentOffset !== 0;
  p.fragmentId = p.ipId;
  p.ttl = buf[off + 8];
  p.next = buf[off + 9];
  for (let i = 0; i < 4; i++) {
    p.src[i] = buf[off + 12 + i];
    p.dst[i] = buf[off + 16 + i];
  }
  p.payloadEnd = datagramEnd;
  return off + ihl;
}

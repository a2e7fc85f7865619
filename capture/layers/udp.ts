import type { DecodedPacket } from '../packet.js';

/** UDP header; the payload runs to the UDP length (or to the captured end when truncated). */
export function decodeUdp(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 8) {
    p.error = 'udp: short header';
    return -1;
  }
  p.srcPort = buf.readUInt16BE(off);
  p.dstPort = buf.readUInt16BE(off + 2);
  const length = buf.readUInt16BE(off + 4);
  if (length !== 0 && length < 8) {
    p.error = 'udp: length shorter than header';
    return -1;
  }
  // Length 0 happens for jumbograms and some offloaded captures: use what is there.
  let payloadEnd = length === 0 ? end : off + length;
  if (payloadEnd > end) {
    p.truncated = true;
    payloadEnd = end;
  }
  p.payloadOffset = off + 8;
  p.payloadEnd = payloadEnd;
  return off + 8;
}

import type { DecodedPacket } from '../packet.js';

/** TCP header (options skipped by data offset). */
export function decodeTcp(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 20) {
    p.error = 'tcp: short header';
    return -1;
  }
  const dataOffset = (buf[off + 12] >> 4) * 4;
  if (dataOffset < 20 || end - off < dataOffset) {
    p.error = 'tcp: bad data offset';
    return -1;
  }
  p.srcPort = buf.readUInt16BE(off);
  p.dstPort = buf.readUInt16BE(off + 2);
  p.tcpSeq = buf.readUInt32BE(off + 4);
  p.tcpFlags = buf[off + 13];
  p.payloadOffset = off + dataOffset;
  p.payloadEnd = end;
  return off + dataOffset;
}

import type { DecodedPacket } from '../packet.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from './ethernet.js';

/**
 * BSD loopback (LINKTYPE_NULL: address family in the writer's byte order; LINKTYPE_LOOP: network
 * order). AF_INET6 differs between BSDs (24, 28, 30) and Linux (10), so accept all of them.
 */
export function decodeLoopback(
  p: DecodedPacket,
  buf: Buffer,
  off: number,
  end: number,
  bigEndian: boolean,
): number {
  if (end - off < 4) {
    p.error = 'loopback: short header';
    return -1;
  }
  let family = bigEndian ? buf.readUInt32BE(off) : buf.readUInt32LE(off);
  if (!bigEndian && family > 0xffff) family = buf.readUInt32BE(off);
  if (family === 2) p.next = ETHERTYPE_IPV4;
  else if (family === 10 || family === 24 || family === 28 || family === 30) p.next = ETHERTYPE_IPV6;
  else p.next = 0;
  return off + 4;
}

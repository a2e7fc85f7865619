import type { DecodedPacket } from '../packet.js';

export const VXLAN_PORT = 4789;

/** VXLAN (RFC 7348): 8-byte header with the I flag, then an Ethernet frame. -1 if not VXLAN. */
export function decodeVxlan(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 8 + 14) return -1;
  if ((buf[off] & 0x08) === 0 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 7] !== 0) return -1;
  p.next = 0;
  return off + 8;
}

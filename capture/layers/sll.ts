import type { DecodedPacket } from '../packet.js';

/** Linux cooked capture v1 (LINKTYPE_LINUX_SLL): 16-byte header, protocol in the last two. */
export function decodeSll(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 16) {
    p.error = 'sll: short header';
    return -1;
  }
  p.next = buf.readUInt16BE(off + 14);
  return off + 16;
}

/** Linux cooked capture v2 (LINKTYPE_LINUX_SLL2): 20-byte header, protocol first. */
export function decodeSll2(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 20) {
    p.error = 'sll2: short header';
    return -1;
  }
  p.next = buf.readUInt16BE(off);
  return off + 20;
}

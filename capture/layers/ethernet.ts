import type { DecodedPacket } from '../packet.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_QINQ_OLD = 0x9100;
export const ETHERTYPE_TEB = 0x6558; // transparent Ethernet bridging (GRE)
export const ETHERTYPE_ERSPAN_2 = 0x88be;
export const ETHERTYPE_ERSPAN_3 = 0x22eb;

/** Ethernet II with any stack of 802.1Q / 802.1ad tags. Returns the payload offset or -1. */
export function decodeEthernet(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 14) {
    p.error = 'ethernet: short frame';
    return -1;
  }
  if (p.macOffset < 0 && buf === p.frame) p.macOffset = off;
  let type = buf.readUInt16BE(off + 12);
  off += 14;
  while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD) {
    if (end - off < 4) {
      p.error = 'vlan: short tag';
      return -1;
    }
    if (p.vlanCount < p.vlans.length) p.vlans[p.vlanCount++] = buf.readUInt16BE(off) & 0x0fff;
    type = buf.readUInt16BE(off + 2);
    off += 4;
  }
  // 802.3 length field instead of an EtherType: LLC frames carry nothing we decode.
  p.next = type < 0x0600 ? 0 : type;
  return off;
}

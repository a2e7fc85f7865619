import { formatIPv4, formatMac } from '../../core/address.js';
import type { DecodedPacket } from '../packet.js';
import { ETHERTYPE_IPV4 } from './ethernet.js';

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

/** Fixed part of an ARP packet (RFC 826): hardware and protocol types, address lengths, opcode. */
const ARP_FIXED = 8;

/**
 * The decoder's ARP state, reused for every ARP frame like DecodedPacket: offsets into `buf` and small
 * numbers, no copies. Only IPv4 over 6-byte hardware addresses (Ethernet, IEEE 802) is decoded: what
 * a VIP move announces. Addresses are formatted on demand (most ARP frames interest nobody).
 */
export class ArpPacket {
  buf: Buffer = Buffer.alloc(0);
  /** 1 request, 2 reply (others: RARP, InARP... are counted, not decoded). */
  op = 0;
  /** Offsets of the sender and target hardware (6 bytes) and protocol (4 bytes) addresses. */
  senderMacOffset = 0;
  senderIpOffset = 0;
  targetMacOffset = 0;
  targetIpOffset = 0;

  /**
   * Gratuitous ARP (RFC 5227 §3 "ARP Announcement", `arping -U` / `-A`): sender and target address
   * are the same, request or reply. A probe (sender 0.0.0.0) announces nothing.
   */
  get gratuitous(): boolean {
    const b = this.buf;
    const s = this.senderIpOffset;
    const t = this.targetIpOffset;
    if (b[s] === 0 && b[s + 1] === 0 && b[s + 2] === 0 && b[s + 3] === 0) return false;
    return b[s] === b[t] && b[s + 1] === b[t + 1] && b[s + 2] === b[t + 2] && b[s + 3] === b[t + 3];
  }

  senderMac(): string {
    return formatMac(this.buf, this.senderMacOffset);
  }

  senderIp(): string {
    return formatIPv4(this.buf, this.senderIpOffset);
  }

  targetIp(): string {
    return formatIPv4(this.buf, this.targetIpOffset);
  }
}

/**
 * An ARP packet at off. Returns 1 when it is an IPv4 request or reply (fields in `arp`), 0 when it is
 * well-formed but of another kind (another protocol or opcode), -1 when malformed (p.error says why).
 * Ethernet padding after the 28 bytes is ignored.
 */
export function decodeArp(p: DecodedPacket, arp: ArpPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < ARP_FIXED) {
    p.error = 'arp: short header';
    return -1;
  }
  const protocol = buf.readUInt16BE(off + 2);
  const hlen = buf[off + 4]!;
  const plen = buf[off + 5]!;
  const body = ARP_FIXED + 2 * (hlen + plen);
  if (end - off < body) {
    p.error = 'arp: addresses past end';
    return -1;
  }
  if (protocol === ETHERTYPE_IPV4 && plen !== 4) {
    p.error = 'arp: IPv4 address length not 4';
    return -1;
  }
  const op = buf.readUInt16BE(off + 6);
  if (protocol !== ETHERTYPE_IPV4 || hlen !== 6 || (op !== ARP_REQUEST && op !== ARP_REPLY)) return 0;
  arp.buf = buf;
  arp.op = op;
  arp.senderMacOffset = off + ARP_FIXED;
  arp.senderIpOffset = off + ARP_FIXED + 6;
  arp.targetMacOffset = off + ARP_FIXED + 10;
  arp.targetIpOffset = off + ARP_FIXED + 16;
  return 1;
}

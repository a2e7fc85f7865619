import { type DecodedPacket, TUNNEL_ERSPAN } from '../packet.js';
import { ETHERTYPE_ERSPAN_2, ETHERTYPE_ERSPAN_3, ETHERTYPE_TEB } from './ethernet.js';

/**
 * GRE (RFC 2784/2890) and the ERSPAN headers it carries from a remote mirror session.
 * Sets p.next to the EtherType of what follows (ETHERTYPE_TEB for a bridged Ethernet frame).
 */
export function decodeGre(p: DecodedPacket, buf: Buffer, off: number, end: number): number {
  if (end - off < 4) {
    p.error = 'gre: short header';
    return -1;
  }
  const flags = buf.readUInt16BE(off);
  const version = flags & 0x7;
  if (version !== 0) {
    // Version 1 is PPTP's enhanced GRE: PPP inside, nothing for us.
    p.next = 0;
    return off + 4;
  }
  const proto = buf.readUInt16BE(off + 2);
  let o = off + 4;
  if (flags & 0x8000) o += 4; // checksum + reserved
  if (flags & 0x2000) o += 4; // key
  const hasSeq = (flags & 0x1000) !== 0;
  if (hasSeq) o += 4;
  if (o > end) {
    p.error = 'gre: options past end';
    return -1;
  }
  if (proto === ETHERTYPE_ERSPAN_2) {
    p.tunnels |= TUNNEL_ERSPAN;
    // ERSPAN type I has no header and no sequence number; type II has an 8-byte header.
    if (hasSeq) {
      if (end - o < 8) {
        p.error = 'erspan: short type II header';
        return -1;
      }
      o += 8;
    }
    p.next = ETHERTYPE_TEB;
    return o;
  }
  if (proto === ETHERTYPE_ERSPAN_3) {
    p.tunnels |= TUNNEL_ERSPAN;
    if (end - o < 12) {
      p.error = 'erspan: short type III header';
      return -1;
    }
    const optional = (buf[o + 11] & 0x01) !== 0; // O bit: platform-specific subheader follows
    o += 12 + (optional ? 8 : 0);
    if (o > end) {
      p.error = 'erspan: subheader past end';
      return -1;
    }
    p.next = ETHERTYPE_TEB;
    return o;
  }
  p.next = proto;
  return o;
}

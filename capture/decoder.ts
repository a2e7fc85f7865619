import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  type PacketRecord,
} from './file/record.js';
import { ARP_REQUEST, ArpPacket, decodeArp } from './layers/arp.js';
import {
  decodeEthernet,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_TEB,
} from './layers/ethernet.js';
import { decodeGre } from './layers/gre.js';
import { decodeIPv4 } from './layers/ipv4.js';
import { decodeIPv6, walkIPv6Extensions } from './layers/ipv6.js';
import { decodeLoopback } from './layers/loopback.js';
import { decodeSll, decodeSll2 } from './layers/sll.js';
import { decodeTcp } from './layers/tcp.js';
import { decodeUdp } from './layers/udp.js';
import { decodeVxlan, VXLAN_PORT } from './layers/vxlan.js';
import { DecodedPacket, TUNNEL_GRE, TUNNEL_IPIP, TUNNEL_VXLAN } from './packet.js';
import { type FragmentLimits, FragmentReassembler } from './reassembly/fragments.js';

export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_GRE = 47;
export const IPPROTO_SCTP = 132;

/** Receives each packet that reached a transport payload; p.buf[p.payloadOffset, p.payloadEnd). */
export interface TransportHandler {
  udp(p: DecodedPacket, record: PacketRecord): void;
  tcp(p: DecodedPacket, record: PacketRecord): void;
  sctp(p: DecodedPacket, record: PacketRecord): void;
  /** Each IPv4 ARP request or reply (the failover tracker watches who announces which address). */
  arp?(p: DecodedPacket, arp: ArpPacket, record: PacketRecord): void;
}

/** ARP frames (also counted in `nonIp`: they carry no IP). */
export interface ArpStats {
  /** IPv4 requests and replies decoded. */
  requests: number;
  replies: number;
  /** Of them, gratuitous: sender address = target address (an address announced, `arping -U`). */
  gratuitous: number;
  /** Well-formed ARP of another kind (not IPv4, not 6-byte hardware addresses, RARP, InARP). */
  other: number;
}

export interface DecoderStats {
  packets: number;
  /** Packets whose headers could not be decoded (short, inconsistent), by reason in `errors`. */
  malformed: number;
  /** Packets cut short by the capture's snaplen (caplen < original length). */
  truncated: number;
  /** Frames that carry no IP (ARP, LLDP, STP...) or an unsupported link type. */
  nonIp: number;
  ipv4: number;
  ipv6: number;
  udp: number;
  tcp: number;
  sctp: number;
  otherTransport: number;
  tunnelled: { ipip: number; gre: number; erspan: number; vxlan: number };
  arp: ArpStats;
  unsupportedLinkTypes: Record<string, number>;
  errors: Record<string, number>;
}

const MAX_TUNNEL_DEPTH = 4;

/**
 * Link layer → IP (with fragment reassembly and tunnels) → transport. One instance per capture
 * source: it owns the reassembly state and its limits.
 */
export class PacketDecoder {
  readonly packet = new DecodedPacket();
  /** The last ARP frame's fields (valid during the handler's `arp` call). */
  readonly arpPacket = new ArpPacket();
  readonly fragments: FragmentReassembler;
  readonly stats: DecoderStats = {
    packets: 0,
    malformed: 0,
    truncated: 0,
    nonIp: 0,
    ipv4: 0,
    ipv6: 0,
    udp: 0,
    tcp: 0,
    sctp: 0,
    otherTransport: 0,
    tunnelled: { ipip: 0, gre: 0, erspan: 0, vxlan: 0 },
    arp: { requests: 0, replies: 0, gratuitous: 0, other: 0 },
    unsupportedLinkTypes: {},
    errors: {},
  };
  private record!: PacketRecord;

  constructor(
    private readonly handler: TransportHandler,
    fragmentLimits?: FragmentLimits,
  ) {
    this.fragments = new FragmentReassembler(fragmentLimits);
  }

  decode(record: PacketRecord): void {
    const p = this.packet;
    const buf = record.data;
    this.record = record;
    this.stats.packets++;
    p.reset(buf);
    if (record.caplen < record.origLen) this.stats.truncated++;
    this.fragments.expire(record.tsSec);
    const off = record.offset;
    const end = off + record.caplen;
    switch (record.linkType) {
      case LINKTYPE_ETHERNET:
        this.ethernet(buf, off, end, 0);
        break;
      case LINKTYPE_LINUX_SLL:
        this.afterLink(decodeSll(p, buf, off, end), buf, end);
        break;
      case LINKTYPE_LINUX_SLL2:
        this.afterLink(decodeSll2(p, buf, off, end), buf, end);
        break;
      case LINKTYPE_NULL:
        this.afterLink(decodeLoopback(p, buf, off, end, false), buf, end);
        break;
      case LINKTYPE_LOOP:
        this.afterLink(decodeLoopback(p, buf, off, end, true), buf, end);
        break;
      case LINKTYPE_RAW:
      case LINKTYPE_IPV4:
      case LINKTYPE_IPV6: {
        const version = end > off ? buf[off] >> 4 : 0;
        if (version === 4) this.ipv4(buf, off, end, 0);
        else if (version === 6) this.ipv6(buf, off, end, 0);
        else this.fail('raw: not IPv4 or IPv6');
        break;
      }
      default: {
        const key = String(record.linkType);
        this.stats.unsupportedLinkTypes[key] = (this.stats.unsupportedLinkTypes[key] ?? 0) + 1;
        this.stats.nonIp++;
      }
    }
  }

  private fail(reason: string): void {
    this.packet.error = reason;
    this.stats.malformed++;
    this.stats.errors[reason] = (this.stats.errors[reason] ?? 0) + 1;
  }

  private afterLink(off: number, buf: Buffer, end: number): void {
    if (off < 0) {
      this.fail(this.packet.error ?? 'link: malformed');
      return;
    }
    this.network(this.packet.next, buf, off, end, 0);
  }

  private ethernet(buf: Buffer, off: number, end: number, depth: number): void {
    const next = decodeEthernet(this.packet, buf, off, end);
    if (next < 0) {
      this.fail(this.packet.error ?? 'ethernet: malformed');
      return;
    }
    this.network(this.packet.next, buf, next, end, depth);
  }

  private network(ethertype: number, buf: Buffer, off: number, end: number, depth: number): void {
    if (ethertype === ETHERTYPE_IPV4) this.ipv4(buf, off, end, depth);
    else if (ethertype === ETHERTYPE_IPV6) this.ipv6(buf, off, end, depth);
    else if (ethertype === ETHERTYPE_TEB && depth < MAX_TUNNEL_DEPTH) this.ethernet(buf, off, end, depth + 1);
    else if (ethertype === ETHERTYPE_ARP) this.arp(buf, off, end);
    else this.stats.nonIp++;
  }

  private arp(buf: Buffer, off: number, end: number): void {
    const arp = this.arpPacket;
    const kind = decodeArp(this.packet, arp, buf, off, end);
    if (kind < 0) {
      this.fail(this.packet.error ?? 'arp: malformed');
      return;
    }
    this.stats.nonIp++;
    const s = this.stats.arp;
    if (kind === 0) {
      s.other++;
      return;
    }
    if (arp.op === ARP_REQUEST) s.requests++;
    else s.replies++;
    if (arp.gratuitous) s.gratuitous++;
    this.handler.arp?.(this.packet, arp, this.record);
  }

  private ipv4(buf: Buffer, off: number, end: number, depth: number): void {
    const p = this.packet;
    const payload = decodeIPv4(p, buf, off, end);
    if (payload < 0) {
      this.fail(p.error ?? 'ipv4: malformed');
      return;
    }
    if (depth === 0) this.stats.ipv4++;
    end = p.payloadEnd;
    if (p.isFragment) {
      const whole = this.reassemble(4, buf, payload, end);
      if (whole === null) return;
      this.transport(whole.meta, whole.payload, 0, whole.payload.length, depth);
      return;
    }
    this.transport(p.next, buf, payload, end, depth);
  }

  private ipv6(buf: Buffer, off: number, end: number, depth: number): void {
    const p = this.packet;
    let payload = decodeIPv6(p, buf, off, end);
    if (payload < 0) {
      this.fail(p.error ?? 'ipv6: malformed');
      return;
    }
    if (depth === 0) this.stats.ipv6++;
    end = p.payloadEnd;
    payload = walkIPv6Extensions(p, buf, payload, end);
    if (payload < 0) {
      this.fail(p.error ?? 'ipv6: malformed');
      return;
    }
    if (p.isFragment) {
      const whole = this.reassemble(6, buf, payload, end);
      if (whole === null) return;
      p.next = whole.meta;
      // The fragmentable part may start with more extension headers.
      const inner = walkIPv6Extensions(p, whole.payload, 0, whole.payload.length);
      if (inner < 0) {
        this.fail(p.error ?? 'ipv6: malformed');
        return;
      }
      this.transport(p.next, whole.payload, inner, whole.payload.length, depth);
      return;
    }
    this.transport(p.next, buf, payload, end, depth);
  }

  /** Hands a fragment to the reassembler; returns the whole datagram once its last piece is in. */
  private reassemble(version: 4 | 6, buf: Buffer, payload: number, end: number) {
    const p = this.packet;
    const n = version === 4 ? 4 : 16;
    let key = version === 4 ? '4' : '6';
    for (let i = 0; i < p.vlanCount; i++) key += String.fromCharCode(p.vlans[i]);
    for (let i = 0; i < n; i++) key += String.fromCharCode(p.src[i], p.dst[i]);
    // IPv4 datagrams are identified per protocol too (RFC 791); IPv6 ids are 32 bits.
    key += String.fromCharCode(p.fragmentId >>> 16, p.fragmentId & 0xffff, version === 4 ? p.next : 0);
    const whole = this.fragments.add(
      key,
      p.fragmentOffset,
      p.moreFragments,
      buf,
      payload,
      end,
      this.record.tsSec,
      p.next,
    );
    if (whole !== null) p.reassembled = true;
    return whole;
  }

  private transport(proto: number, buf: Buffer, off: number, end: number, depth: number): void {
    const p = this.packet;
    p.ipProtocol = proto;
    p.buf = buf;
    switch (proto) {
      case IPPROTO_UDP: {
        if (decodeUdp(p, buf, off, end) < 0) {
          this.fail(p.error ?? 'udp: malformed');
          return;
        }
        if ((p.dstPort === VXLAN_PORT || p.srcPort === VXLAN_PORT) && depth < MAX_TUNNEL_DEPTH) {
          const inner = decodeVxlan(p, buf, p.payloadOffset, p.payloadEnd);
          if (inner >= 0) {
            p.tunnels |= TUNNEL_VXLAN;
            this.stats.tunnelled.vxlan++;
            this.ethernet(buf, inner, p.payloadEnd, depth + 1);
            return;
          }
        }
        this.stats.udp++;
        this.handler.udp(p, this.record);
        return;
      }
      case IPPROTO_TCP:
        if (decodeTcp(p, buf, off, end) < 0) {
          this.fail(p.error ?? 'tcp: malformed');
          return;
        }
        this.stats.tcp++;
        this.handler.tcp(p, this.record);
        return;
      case IPPROTO_SCTP:
        if (end - off < 12) {
          this.fail('sctp: short header');
          return;
        }
        p.srcPort = buf.readUInt16BE(off);
        p.dstPort = buf.readUInt16BE(off + 2);
        p.payloadOffset = off;
        p.payloadEnd = end;
        this.stats.sctp++;
        this.handler.sctp(p, this.record);
        return;
      case IPPROTO_IPIP:
        if (depth >= MAX_TUNNEL_DEPTH) {
          this.fail('tunnel: too deep');
          return;
        }
        p.tunnels |= TUNNEL_IPIP;
        this.stats.tunnelled.ipip++;
        this.ipv4(buf, off, end, depth + 1);
        return;
      case IPPROTO_IPV6:
        if (depth >= MAX_TUNNEL_DEPTH) {
          this.fail('tunnel: too deep');
          return;
        }
        p.tunnels |= TUNNEL_IPIP;
        this.stats.tunnelled.ipip++;
        this.ipv6(buf, off, end, depth + 1);
        return;
      case IPPROTO_GRE: {
        if (depth >= MAX_TUNNEL_DEPTH) {
          this.fail('tunnel: too deep');
          return;
        }
        const tunnelsBefore = p.tunnels;
        const inner = decodeGre(p, buf, off, end);
        if (inner < 0) {
          this.fail(p.error ?? 'gre: malformed');
          return;
        }
        p.tunnels |= TUNNEL_GRE;
        this.stats.tunnelled.gre++;
        if (p.tunnels !== (tunnelsBefore | TUNNEL_GRE)) this.stats.tunnelled.erspan++;
        this.network(p.next, buf, inner, end, depth + 1);
        return;
      }
      default:
        this.stats.otherTransport++;
    }
  }
}

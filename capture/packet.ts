import { formatIp, formatMac } from '../core/address.js';

/** Encapsulations a packet travelled through (bit flags in DecodedPacket.tunnels). */
export const TUNNEL_IPIP = 1;
export const TUNNEL_GRE = 2;
export const TUNNEL_ERSPAN = 4;
export const TUNNEL_VXLAN = 8;

/**
 * The decoder's per-packet state, reused for every packet (gopacket's DecodingLayerParser idea):
 * layers write offsets and small numbers here instead of allocating objects.
 */
export class DecodedPacket {
  /** Buffer the current layer reads from: the record's buffer, or a reassembled datagram. */
  buf: Buffer = Buffer.alloc(0);
  /** Next protocol as announced by the layer just decoded (EtherType or IP protocol number). */
  next = 0;
  /** 802.1Q/802.1ad VLAN ids, outermost first; `vlanCount` of them are valid. */
  readonly vlans = new Array<number>(8).fill(0);
  vlanCount = 0;
  /** Offset of the (outermost) Ethernet header in `frame`, -1 when the link has no MACs. */
  macOffset = -1;
  frame: Buffer = Buffer.alloc(0);
  tunnels = 0;
  ipVersion: 0 | 4 | 6 = 0;
  readonly src = new Uint8Array(16);
  readonly dst = new Uint8Array(16);
  ipId = 0;
  ttl = 0;
  /** True when the transport payload came out of IP fragment reassembly. */
  reassembled = false;
  /** Captured bytes ended before a length field said they would (snaplen). */
  truncated = false;
  ipProtocol = 0;
  /** Set by the IP layer when the datagram is a fragment: byte offset, MF flag and identification. */
  isFragment = false;
  fragmentOffset = 0;
  moreFragments = false;
  fragmentId = 0;
  srcPort = 0;
  dstPort = 0;
  tcpSeq = 0;
  tcpFlags = 0;
  payloadOffset = 0;
  payloadEnd = 0;
  /** Why decoding stopped early; null when it reached a transport payload or a protocol we skip. */
  error: string | null = null;

  reset(frame: Buffer): void {
    this.buf = frame;
    this.frame = frame;
    this.next = 0;
    this.vlanCount = 0;
    this.macOffset = -1;
    this.tunnels = 0;
    this.ipVersion = 0;
    this.reassembled = false;
    this.truncated = false;
    this.ipProtocol = 0;
    this.srcPort = 0;
    this.dstPort = 0;
    this.error = null;
  }

  srcIp(): string {
    return formatIp(this.ipVersion === 6 ? 6 : 4, this.src);
  }

  dstIp(): string {
    return formatIp(this.ipVersion === 6 ? 6 : 4, this.dst);
  }

  srcMac(): string | null {
    return this.macOffset < 0 ? null : formatMac(this.frame, this.macOffset + 6);
  }

  dstMac(): string | null {
    return this.macOffset < 0 ? null : formatMac(this.frame, this.macOffset);
  }

  outerVlan(): number | null {
    return this.vlanCount > 0 ? this.vlans[0] : null;
  }

  /**
   * Compact flow key of one direction, for TCP streams and SCTP messages. VLAN ids are part of it:
   * tenants behind one mirror may reuse the same addresses and ports.
   */
  directionKey(): string {
    const n = this.ipVersion === 6 ? 16 : 4;
    let s = '';
    for (let i = 0; i < this.vlanCount; i++) s += String.fromCharCode(this.vlans[i]);
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.src[i]);
    s += String.fromCharCode(this.srcPort >> 8, this.srcPort & 0xff);
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.dst[i]);
    s += String.fromCharCode(this.dstPort >> 8, this.dstPort & 0xff, this.ipProtocol);
    return s;
  }
}

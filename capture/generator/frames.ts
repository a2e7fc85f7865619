/**
 * Ethernet II (+ optional 802.1Q) / IPv4 / UDP frame construction with real checksums: tshark and our
 * own decoder must see frames a NIC could have put on the wire.
 */

/** One simulated VM: what its mirrored frames carry. */
export interface Host {
  index: number; // 1-based VM number
  name: string; // "vm1"
  mac: Uint8Array; // 02:00:00:00:00:NN (locally administered)
  macText: string;
  ip: number; // IPv4 as u32
  ipText: string;
  /** Next IPv4 identification value; shared by everything the host sends, like a real stack. */
  ipId: number;
}

export function makeHost(index: number, initialIpId: number): Host {
  const mac = new Uint8Array([0x02, 0, 0, 0, 0, index & 0xff]);
  const ip = ((10 << 24) | index) >>> 0;
  return {
    index,
    name: `vm${index}`,
    mac,
    macText: Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':'),
    ip,
    ipText: `10.0.0.${index}`,
    ipId: initialIpId & 0xffff,
  };
}

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_VLAN = 0x8100;
export const IP_HEADER = 20;
export const UDP_HEADER = 8;

/** DSCP as TOS byte: CS3 for signalling, EF for voice (what phones and PBXs mark by default). */
export const TOS_SIP = 0x60;
export const TOS_RTP = 0xb8;

/** Unfolded ones'-complement sum of big-endian 16-bit words of buf[start, end). */
export function sum16(buf: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (buf[i] << 8) | buf[i + 1];
  if (i < end) acc += buf[i] << 8;
  return acc;
}

/** Folds a sum to 16 bits and complements it. */
export function finish(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 65536);
  return ~acc & 0xffff;
}

/** UDP checksum 0 means "none" on IPv4, so a computed 0 is sent as 0xffff (RFC 768). */
function udpChecksum(acc: number): number {
  return finish(acc) || 0xffff;
}

/**
 * Lays out one UDP datagram's headers in `frame`; returns the offsets the callers patch.
 * Checksums are left zero.
 */
function layout(
  frame: Uint8Array,
  vlan: number | null,
  pcp: number,
  tos: number,
  src: Host,
  dst: Host,
  sport: number,
  dport: number,
  payloadLength: number,
): { ip: number; udp: number; payload: number } {
  frame.set(dst.mac, 0);
  frame.set(src.mac, 6);
  let o = 12;
  if (vlan !== null) {
    frame[o] = ETHERTYPE_VLAN >> 8;
    frame[o + 1] = ETHERTYPE_VLAN & 0xff;
    const tci = ((pcp & 7) << 13) | (vlan & 0xfff);
    frame[o + 2] = tci >> 8;
    frame[o + 3] = tci & 0xff;
    o += 4;
  }
  frame[o] = ETHERTYPE_IPV4 >> 8;
  frame[o + 1] = ETHERTYPE_IPV4 & 0xff;
  const ip = o + 2;
  const udpLength = UDP_HEADER + payloadLength;
  const totalLength = IP_HEADER + udpLength;
  frame[ip] = 0x45;
  frame[ip + 1] = tos;
  frame[ip + 2] = totalLength >> 8;
  frame[ip + 3] = totalLength & 0xff;
  frame[ip + 4] = 0; // identification: patched per packet
  frame[ip + 5] = 0;
  frame[ip + 6] = 0x40; // DF: VoIP stacks do path-MTU discovery and never fragment these
  frame[ip + 7] = 0;
  frame[ip + 8] = 64; // TTL
  frame[ip + 9] = 17; // UDP
  frame[ip + 10] = 0;
  frame[ip + 11] = 0;
  writeU32(frame, ip + 12, src.ip);
  writeU32(frame, ip + 16, dst.ip);
  const udp = ip + IP_HEADER;
  frame[udp] = sport >> 8;
  frame[udp + 1] = sport & 0xff;
  frame[udp + 2] = dport >> 8;
  frame[udp + 3] = dport & 0xff;
  frame[udp + 4] = udpLength >> 8;
  frame[udp + 5] = udpLength & 0xff;
  frame[udp + 6] = 0;
  frame[udp + 7] = 0;
  return { ip, udp, payload: udp + UDP_HEADER };
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Sum of the UDP pseudo-header (addresses, protocol, UDP length). */
function pseudoSum(src: Host, dst: Host, udpLength: number): number {
  return (src.ip >>> 16) + (src.ip & 0xffff) + (dst.ip >>> 16) + (dst.ip & 0xffff) + 17 + udpLength;
}

function frameOverhead(vlan: number | null): number {
  return 14 + (vlan === null ? 0 : 4) + IP_HEADER + UDP_HEADER;
}

/** Builds arbitrary UDP frames (SIP) into one reusable scratch buffer. */
export class UdpFrameBuilder {
  private scratch = new Uint8Array(2048);

  constructor(private readonly vlan: number | null) {}

  /** The returned view is only valid until the next call (PcapWriter copies it). */
  build(
    src: Host,
    dst: Host,
    sport: number,
    dport: number,
    payload: Uint8Array,
    tos: number,
    pcp: number,
  ): Uint8Array {
    const size = frameOverhead(this.vlan) + payload.length;
    if (size > this.scratch.length) this.scratch = new Uint8Array(size * 2);
    const f = this.scratch;
    const { ip, udp, payload: p } = layout(f, this.vlan, pcp, tos, src, dst, sport, dport, payload.length);
    f.set(payload, p);
    const id = src.ipId;
    src.ipId = (id + 1) & 0xffff;
    f[ip + 4] = id >> 8;
    f[ip + 5] = id & 0xff;
    const ipSum = finish(sum16(f, ip, ip + IP_HEADER));
    f[ip + 10] = ipSum >> 8;
    f[ip + 11] = ipSum & 0xff;
    const udpLength = UDP_HEADER + payload.length;
    const cs = udpChecksum(sum16(f, udp, udp + udpLength, pseudoSum(src, dst, udpLength)));
    f[udp + 6] = cs >> 8;
    f[udp + 7] = cs & 0xff;
    return f.subarray(0, size);
  }
}

/**
 * A prebuilt RTP frame for one stream. Only IP id, sequence number, timestamp and marker change per
 * packet, so both checksums are updated incrementally from sums taken once: this is what makes
 * million-packet captures cheap to write.
 */
export class RtpFrameTemplate {
  readonly frame: Uint8Array;
  private readonly ip: number;
  private readonly rtp: number;
  private readonly udp: number;
  private readonly ipBase: number;
  private readonly udpBase: number;

  constructor(
    vlan: number | null,
    readonly src: Host,
    dst: Host,
    sport: number,
    dport: number,
    payloadType: number,
    ssrc: number,
    audio: Uint8Array,
  ) {
    const rtpLength = 12 + audio.length;
    this.frame = new Uint8Array(frameOverhead(vlan) + rtpLength);
    const f = this.frame;
    const { ip, udp, payload } = layout(f, vlan, 5, TOS_RTP, src, dst, sport, dport, rtpLength);
    this.ip = ip;
    this.udp = udp;
    this.rtp = payload;
    f[payload] = 0x80; // V=2, no padding, no extension, no CSRC
    f[payload + 1] = payloadType & 0x7f;
    writeU32(f, payload + 8, ssrc);
    f.set(audio, payload + 12);
    this.ipBase = sum16(f, ip, ip + IP_HEADER);
    const udpLength = UDP_HEADER + rtpLength;
    this.udpBase = sum16(f, udp, udp + udpLength, pseudoSum(src, dst, udpLength));
  }

  /** Patches the frame for one packet and returns it. */
  fill(seq: number, timestamp: number, marker: boolean): Uint8Array {
    const f = this.frame;
    const id = this.src.ipId;
    this.src.ipId = (id + 1) & 0xffff;
    const ip = this.ip;
    f[ip + 4] = id >> 8;
    f[ip + 5] = id & 0xff;
    const ipSum = finish(this.ipBase + id);
    f[ip + 10] = ipSum >> 8;
    f[ip + 11] = ipSum & 0xff;
    const r = this.rtp;
    const m = marker ? 0x80 : 0;
    f[r + 1] = (f[r + 1] & 0x7f) | m;
    f[r + 2] = seq >> 8;
    f[r + 3] = seq & 0xff;
    writeU32(f, r + 4, timestamp);
    const cs = udpChecksum(this.udpBase + m + seq + (timestamp >>> 16) + (timestamp & 0xffff));
    f[this.udp + 6] = cs >> 8;
    f[this.udp + 7] = cs & 0xff;
    return f;
  }
}

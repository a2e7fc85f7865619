/**
 * ARP frames (RFC 826, Ethernet/IPv4) as hosts put them on the wire: requests, replies and the
 * gratuitous announcements a failover sends (`arping -U`: a broadcast request whose sender and target
 * address are the address being taken over). For tests and generated captures.
 */
import { ETHERTYPE_VLAN, type Host } from './frames.js';

export const ETHERTYPE_ARP = 0x0806;
const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);

export interface ArpFrameOptions {
  /** 1 request, 2 reply. */
  op: number;
  senderMac: Uint8Array;
  /** IPv4 as u32. */
  senderIp: number;
  /** Default: zero in a request, the Ethernet destination in a reply. */
  targetMac?: Uint8Array;
  targetIp: number;
  /** Ethernet destination: default broadcast for a request, the target MAC for a reply. */
  dstMac?: Uint8Array;
  vlan?: number | null;
}

/** One ARP frame, padded to Ethernet's 60-byte minimum as a NIC sends it. */
export function arpFrame(o: ArpFrameOptions): Uint8Array {
  const tagged = o.vlan !== undefined && o.vlan !== null;
  const header = 14 + (tagged ? 4 : 0);
  const f = new Uint8Array(Math.max(60, header + 28));
  const targetMac = o.targetMac ?? (o.op === 1 ? ZERO_MAC : (o.dstMac ?? BROADCAST));
  f.set(o.dstMac ?? (o.op === 1 ? BROADCAST : targetMac), 0);
  f.set(o.senderMac, 6);
  let p = 12;
  if (tagged) {
    put16(f, p, ETHERTYPE_VLAN);
    put16(f, p + 2, (o.vlan as number) & 0xfff);
    p += 4;
  }
  put16(f, p, ETHERTYPE_ARP);
  p += 2;
  put16(f, p, 1); // hardware: Ethernet
  put16(f, p + 2, 0x0800); // protocol: IPv4
  f[p + 4] = 6;
  f[p + 5] = 4;
  put16(f, p + 6, o.op);
  f.set(o.senderMac, p + 8);
  put32(f, p + 14, o.senderIp);
  f.set(targetMac, p + 18);
  put32(f, p + 24, o.targetIp);
  return f;
}

/** What `arping -U -I IF ADDRESS` sends from `host`: a broadcast request announcing its address. */
export function gratuitousArp(host: Host, vlan: number | null = null): Uint8Array {
  return arpFrame({ op: 1, senderMac: host.mac, senderIp: host.ip, targetIp: host.ip, vlan });
}

/** `from` asking who has `target`'s address, and `target`'s answer. */
export function arpExchange(from: Host, target: Host, vlan: number | null = null): [Uint8Array, Uint8Array] {
  return [
    arpFrame({ op: 1, senderMac: from.mac, senderIp: from.ip, targetIp: target.ip, vlan }),
    arpFrame({
      op: 2,
      senderMac: target.mac,
      senderIp: target.ip,
      targetMac: from.mac,
      targetIp: from.ip,
      vlan,
    }),
  ];
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

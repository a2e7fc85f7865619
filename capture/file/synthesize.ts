/**
 * Packets made from stored SIP messages, so that a call taken from the store can be written as a pcap
 * that Wireshark and tshark read as if captured: Ethernet (with the message's 802.1Q tag), IPv4 or
 * IPv6, then
 * - UDP, one datagram per message (checksummed);
 * - TCP (and TLS, ws, wss, written as their cleartext over TCP): a valid stream per connection, opened
 *   by a three-way handshake at its first message, each message in segments of at most 1,400 bytes
 *   with sequence and acknowledgement numbers running on, so that tshark reassembles it;
 * - SCTP, one DATA chunk per message, with its CRC32c.
 * The synthesizer owns the streams' state: one per exported file.
 */
import { parseIp } from '../../core/address.js';
import { crc32c } from '../../core/crc.js';
import type { TransportName } from '../../core/event.js';
import { finish, sum16 } from '../generator/frames.js';

export interface StoredPacketSource {
  timestampNs: bigint;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  transport: TransportName;
  vlan: number | null;
  payload: Uint8Array;
}

export interface SynthesizedFrame {
  timestampNs: bigint;
  frame: Buffer;
}

const SEGMENT = 1400;
const TCP_SYN = 0x02;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;

interface Direction {
  seq: number;
}

interface Connection {
  /** By the direction's "src>dst" key. */
  sides: Map<string, Direction>;
  /** WebSocket: the direction of the side that opened it. */
  client?: string;
}

export class FrameSynthesizer {
  private readonly connections = new Map<string, Connection>();
  private sctpTsn = 1;

  /** The frames that carry one message (the handshake first, for a connection's first message). */
  frames(m: StoredPacketSource): SynthesizedFrame[] {
    const src = parseIp(m.srcIp);
    const dst = parseIp(m.dstIp);
    if (src === null || dst === null || src.length !== dst.length)
      throw new Error(`cannot write a packet between ${m.srcIp} and ${m.dstIp}`);
    const payload = Buffer.from(m.payload);
    const out: SynthesizedFrame[] = [];
    const emit = (protocol: number, l4: Buffer, back = false) =>
      out.push({
        timestampNs: m.timestampNs,
        frame: back ? frame(dst, src, m.vlan, protocol, l4) : frame(src, dst, m.vlan, protocol, l4),
      });
    switch (m.transport) {
      case 'udp':
        emit(17, udp(src, dst, m.srcPort, m.dstPort, payload));
        break;
      case 'sctp':
        emit(132, sctp(m.srcPort, m.dstPort, this.sctpTsn++, payload));
        break;
      default: {
        const here = `${m.srcIp}|${m.srcPort}`;
        const there = `${m.dstIp}|${m.dstPort}`;
        const key = here < there ? `${here}>${there}` : `${there}>${here}`;
        let connection = this.connections.get(key);
        const forward = `${here}>${there}`;
        const backward = `${there}>${here}`;
        if (connection === undefined) {
          // The side that speaks first opened the connection.
          connection = {
            sides: new Map([
              [forward, { seq: 1000 }],
              [backward, { seq: 5000 }],
            ]),
          };
          this.connections.set(key, connection);
          const a = connection.sides.get(forward)!;
          const b = connection.sides.get(backward)!;
          emit(6, tcp(src, dst, m.srcPort, m.dstPort, a.seq, 0, TCP_SYN, Buffer.alloc(0)));
          emit(
            6,
            tcp(dst, src, m.dstPort, m.srcPort, b.seq, a.seq + 1, TCP_SYN | TCP_ACK, Buffer.alloc(0)),
            true,
          );
          a.seq++;
          b.seq++;
          emit(6, tcp(src, dst, m.srcPort, m.dstPort, a.seq, b.seq, TCP_ACK, Buffer.alloc(0)));
        }
        const mine = connection.sides.get(forward)!;
        const theirs = connection.sides.get(backward)!;
        const segments = (from: Direction, to: Direction, bytes: Buffer, back: boolean) => {
          for (let at = 0; at < bytes.length; at += SEGMENT) {
            const part = bytes.subarray(at, Math.min(bytes.length, at + SEGMENT));
            const last = at + SEGMENT >= bytes.length;
            const flags = TCP_ACK | (last ? TCP_PSH : 0);
            emit(
              6,
              back
                ? tcp(dst, src, m.dstPort, m.srcPort, from.seq, to.seq, flags, part)
                : tcp(src, dst, m.srcPort, m.dstPort, from.seq, to.seq, flags, part),
              back,
            );
            from.seq = (from.seq + part.length) >>> 0;
          }
        };
        if (m.transport === 'ws' || m.transport === 'wss') {
          // WebSocket (RFC 7118): the opener's HTTP upgrade first, then each message a text frame,
          // masked from the client as RFC 6455 requires.
          if (connection.client === undefined) {
            connection.client = forward;
            segments(mine, theirs, upgradeRequest(m.dstIp, m.dstPort), false);
            segments(theirs, mine, UPGRADE_RESPONSE, true);
          }
          segments(mine, theirs, wsFrame(payload, connection.client === forward), false);
          break;
        }
        segments(mine, theirs, payload, false);
      }
    }
    return out;
  }
}

/** Ethernet (locally administered MACs), the 802.1Q tag when given, then the IP header. */
function frame(src: Buffer, dst: Buffer, vlan: number | null, protocol: number, l4: Buffer): Buffer {
  const v6 = src.length === 16;
  const ip = v6 ? Buffer.alloc(40) : Buffer.alloc(20);
  if (v6) {
    ip[0] = 0x60;
    ip.writeUInt16BE(l4.length, 4);
    ip[6] = protocol;
    ip[7] = 64;
    src.copy(ip, 8);
    dst.copy(ip, 24);
  } else {
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip[8] = 64;
    ip[9] = protocol;
    src.copy(ip, 12);
    dst.copy(ip, 16);
    ip.writeUInt16BE(finish(sum16(ip, 0, 20, 0)), 10);
  }
  const ethernet = Buffer.alloc(vlan === null ? 14 : 18);
  ethernet.set([0x02, 0, dst[dst.length - 2]!, dst[dst.length - 1]!, 0, 1], 0);
  ethernet.set([0x02, 0, src[src.length - 2]!, src[src.length - 1]!, 0, 1], 6);
  let o = 12;
  if (vlan !== null) {
    ethernet.writeUInt16BE(0x8100, o);
    ethernet.writeUInt16BE(vlan & 0x0fff, o + 2);
    o += 4;
  }
  ethernet.writeUInt16BE(v6 ? 0x86dd : 0x0800, o);
  return Buffer.concat([ethernet, ip, l4]);
}

function udp(src: Buffer, dst: Buffer, sport: number, dport: number, payload: Buffer): Buffer {
  const seg = Buffer.alloc(8 + payload.length);
  seg.writeUInt16BE(sport, 0);
  seg.writeUInt16BE(dport, 2);
  seg.writeUInt16BE(seg.length, 4);
  payload.copy(seg, 8);
  seg.writeUInt16BE(finish(sum16(seg, 0, seg.length, pseudo(src, dst, 17, seg.length))) || 0xffff, 6);
  return seg;
}

function tcp(
  src: Buffer,
  dst: Buffer,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer,
): Buffer {
  const seg = Buffer.alloc(20 + payload.length);
  seg.writeUInt16BE(sport, 0);
  seg.writeUInt16BE(dport, 2);
  seg.writeUInt32BE(seq >>> 0, 4);
  seg.writeUInt32BE(ack >>> 0, 8);
  seg[12] = 5 << 4;
  seg[13] = flags;
  seg.writeUInt16BE(65535, 14);
  payload.copy(seg, 20);
  seg.writeUInt16BE(finish(sum16(seg, 0, seg.length, pseudo(src, dst, 6, seg.length))), 16);
  return seg;
}

function sctp(sport: number, dport: number, tsn: number, payload: Buffer): Buffer {
  const chunkLength = 16 + payload.length;
  const padded = (chunkLength + 3) & ~3;
  const packet = Buffer.alloc(12 + padded);
  packet.writeUInt16BE(sport, 0);
  packet.writeUInt16BE(dport, 2);
  packet.writeUInt32BE(1, 4); // verification tag
  packet[12] = 0; // DATA
  packet[13] = 0x03; // beginning and end of the message
  packet.writeUInt16BE(chunkLength, 14);
  packet.writeUInt32BE(tsn >>> 0, 16);
  packet.writeUInt16BE(0, 20); // stream
  packet.writeUInt16BE(tsn & 0xffff, 22); // stream sequence
  packet.writeUInt32BE(0, 24); // payload protocol: unspecified, as SIP over SCTP sends (RFC 4168)
  payload.copy(packet, 28);
  packet.writeUInt32LE(crc32c(packet), 8);
  return packet;
}

function pseudo(src: Buffer, dst: Buffer, protocol: number, length: number): number {
  return sum16(src, 0, src.length, sum16(dst, 0, dst.length, protocol + (length >>> 16) + (length & 0xffff)));
}

function upgradeRequest(ip: string, port: number): Buffer {
  const host = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
  return Buffer.from(
    `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: Y2FsbHNjb3BlIGV4cG9ydA==\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'latin1',
  );
}

const UPGRADE_RESPONSE = Buffer.from(
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Accept: 7BySXEUZGlTXdfHJ7nUXmEWcjuw=\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
  'latin1',
);

/** One unfragmented text frame; masked (with a fixed key) when the client sends it. */
function wsFrame(payload: Buffer, masked: boolean): Buffer {
  const n = payload.length;
  const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  head[0] = 0x81;
  head[1] = (masked ? 0x80 : 0) | (n < 126 ? n : n < 65536 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(n, 2);
  else if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(n), 2);
  if (!masked) return Buffer.concat([head, payload]);
  const key = [0x63, 0x73, 0x63, 0x70];
  head.set(key, 2 + lengthBytes);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

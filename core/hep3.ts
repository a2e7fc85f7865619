/**
 * HEP3 (Homer Encapsulation Protocol v3 / EEP) codec: CaptureEvent ⇄ one HEP3 frame.
 * Chunk and protocol-type tables, interop and lossy points: docs/HEP.md.
 */

import { unzipSync } from 'node:zlib';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './address.js';
import type { CaptureEvent, TransportName } from './event.js';

export interface HepEncodeOptions {
  authKey?: string;
}

export type HepDecodeResult =
  | { ok: true; event: CaptureEvent; authKey: string | null; keepAlive: boolean; unknownChunks: number }
  | { ok: false; error: string };

/** Largest frame the u16 length field can describe. */
export const HEP3_MAX_FRAME = 65535;

/** Generic chunk types (vendor 0x0000). */
export const HEP_CHUNK_IP_FAMILY = 1;
export const HEP_CHUNK_IP_PROTO = 2;
export const HEP_CHUNK_IPV4_SRC = 3;
export const HEP_CHUNK_IPV4_DST = 4;
export const HEP_CHUNK_IPV6_SRC = 5;
export const HEP_CHUNK_IPV6_DST = 6;
export const HEP_CHUNK_SRC_PORT = 7;
export const HEP_CHUNK_DST_PORT = 8;
export const HEP_CHUNK_TS_SEC = 9;
export const HEP_CHUNK_TS_USEC = 10;
export const HEP_CHUNK_PROTO_TYPE = 11;
export const HEP_CHUNK_CAPTURE_ID = 12;
export const HEP_CHUNK_KEEP_ALIVE = 13;
export const HEP_CHUNK_AUTH_KEY = 14;
export const HEP_CHUNK_PAYLOAD = 15;
export const HEP_CHUNK_PAYLOAD_COMPRESSED = 16;
export const HEP_CHUNK_CORRELATION_ID = 17;
export const HEP_CHUNK_VLAN = 18;
export const HEP_CHUNK_NODE_NAME = 19;

/**
 * callscope's own chunks: the VM ids of the two sides (UTF-8), under a vendor id of their own (0x0ca1,
 * not in the HEP vendor registry). heplify-server ignores the vendor id and switches on the type
 * alone, so the types must not collide with generic ones (1 and 2 would be read as the 1-byte IP
 * family and protocol, and the frame rejected): 0x1001 and 0x1002 are unknown to it, and skipped.
 */
export const HEP_VENDOR_CALLSCOPE = 0x0ca1;
export const HEP_CHUNK_CALLSCOPE_SRC_VM = 0x1001;
export const HEP_CHUNK_CALLSCOPE_DST_VM = 0x1002;
/** VM ids longer than this, or with control characters, from a HEP sender are ignored. */
const MAX_VM_ID_BYTES = 256;

/** Address-family values of chunk 1 (the BSD AF_INET / Linux AF_INET6 numbers). */
const HEP_AF_INET = 2;
const HEP_AF_INET6 = 10;

const CHUNK_HEADER = 6;
/** Cap on an inflated chunk-16 payload: a 64 KiB frame must not become a memory bomb. */
const MAX_INFLATED_PAYLOAD = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Encode

function callIdOf(event: CaptureEvent): string {
  return event.correlationId || event.sip?.callId || '(no Call-ID)';
}

function checkUint(event: CaptureEvent, what: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`HEP3 encode, Call-ID ${callIdOf(event)}: ${what} ${v} is not in 0..${max}`);
  }
}

/**
 * One CaptureEvent → one HEP3 frame. Throws RangeError (naming the Call-ID) when the frame would
 * exceed 65,535 bytes or a field does not fit its chunk; the timestamp keeps microseconds only.
 */
export function encodeHep3(event: CaptureEvent, options?: HepEncodeOptions): Buffer {
  const v6 = event.ipFamily === 6;
  if (event.ipFamily !== 4 && !v6) {
    throw new RangeError(`HEP3 encode, Call-ID ${callIdOf(event)}: ipFamily ${event.ipFamily} is not 4 or 6`);
  }
  const src = v6 ? parseIPv6(event.srcIp) : parseIPv4(event.srcIp);
  const dst = v6 ? parseIPv6(event.dstIp) : parseIPv4(event.dstIp);
  if (!src || !dst) {
    throw new RangeError(
      `HEP3 encode, Call-ID ${callIdOf(event)}: bad IPv${event.ipFamily} address ${src ? event.dstIp : event.srcIp}`,
    );
  }
  checkUint(event, 'IP protocol', event.ipProtocol, 255);
  checkUint(event, 'source port', event.srcPort, 65535);
  checkUint(event, 'destination port', event.dstPort, 65535);
  checkUint(event, 'protocol type', event.protoType, 255);
  checkUint(event, 'capture id', event.captureId, 0xffffffff);
  if (event.vlan !== null) checkUint(event, 'VLAN', event.vlan, 4095);
  const ns = event.timestampNs;
  if (ns < 0n || ns >= 0x1_0000_0000n * 1_000_000_000n) {
    throw new RangeError(
      `HEP3 encode, Call-ID ${callIdOf(event)}: timestamp ${ns} ns does not fit u32 seconds`,
    );
  }
  const sec = Number(ns / 1_000_000_000n);
  // HEP has no nanosecond chunk: round down to whole microseconds (documented loss).
  const usec = Number((ns % 1_000_000_000n) / 1000n);

  const auth = options?.authKey ? Buffer.from(options.authKey, 'utf8') : null;
  // Latin-1 gives back exactly the Call-ID bytes the SIP parser decoded as latin1.
  const corr = event.correlationId ? Buffer.from(event.correlationId, 'latin1') : null;
  const node = event.nodeName ? Buffer.from(event.nodeName, 'utf8') : null;
  const srcVm = event.srcVm ? Buffer.from(event.srcVm, 'utf8') : null;
  const dstVm = event.dstVm ? Buffer.from(event.dstVm, 'utf8') : null;
  const payload = event.payload;

  const addrLen = v6 ? 16 : 4;
  let total =
    6 + // "HEP3" + length
    (CHUNK_HEADER + 1) * 2 + // family, ip proto
    (CHUNK_HEADER + addrLen) * 2 +
    (CHUNK_HEADER + 2) * 2 + // ports
    (CHUNK_HEADER + 4) * 2 + // seconds, microseconds
    (CHUNK_HEADER + 1) + // proto type
    (CHUNK_HEADER + 4) + // capture id
    (CHUNK_HEADER + payload.length);
  if (auth) total += CHUNK_HEADER + auth.length;
  if (corr) total += CHUNK_HEADER + corr.length;
  if (event.vlan !== null) total += CHUNK_HEADER + 2;
  if (node) total += CHUNK_HEADER + node.length;
  if (srcVm) total += CHUNK_HEADER + srcVm.length;
  if (dstVm) total += CHUNK_HEADER + dstVm.length;
  if (total > HEP3_MAX_FRAME) {
    throw new RangeError(
      `HEP3 encode, Call-ID ${callIdOf(event)}: frame would be ${total} bytes (payload ${payload.length}), over the ${HEP3_MAX_FRAME}-byte HEP3 limit`,
    );
  }

  const out = Buffer.allocUnsafe(total);
  out.write('HEP3', 0, 'latin1');
  out.writeUInt16BE(total, 4);
  let o = 6;
  const header = (type: number, valueLen: number, vendor = 0): void => {
    out.writeUInt16BE(vendor, o);
    out.writeUInt16BE(type, o + 2);
    out.writeUInt16BE(CHUNK_HEADER + valueLen, o + 4);
    o += CHUNK_HEADER;
  };
  const u8 = (type: number, v: number): void => {
    header(type, 1);
    out[o++] = v;
  };
  const u16 = (type: number, v: number): void => {
    header(type, 2);
    out.writeUInt16BE(v, o);
    o += 2;
  };
  const u32 = (type: number, v: number): void => {
    header(type, 4);
    out.writeUInt32BE(v, o);
    o += 4;
  };
  const bytes = (type: number, v: Uint8Array): void => {
    header(type, v.length);
    out.set(v, o);
    o += v.length;
  };

  // The order of the packed `hep_generic` header the C agents share (Kamailio, Asterisk, sngrep),
  // then addresses, auth key and payload, as they send it. Receivers that read that fixed layout
  // instead of walking chunks (older sngrep did) stop at the payload, so optional chunks follow it.
  u8(HEP_CHUNK_IP_FAMILY, v6 ? HEP_AF_INET6 : HEP_AF_INET);
  u8(HEP_CHUNK_IP_PROTO, event.ipProtocol);
  u16(HEP_CHUNK_SRC_PORT, event.srcPort);
  u16(HEP_CHUNK_DST_PORT, event.dstPort);
  u32(HEP_CHUNK_TS_SEC, sec);
  u32(HEP_CHUNK_TS_USEC, usec);
  u8(HEP_CHUNK_PROTO_TYPE, event.protoType);
  u32(HEP_CHUNK_CAPTURE_ID, event.captureId);
  bytes(v6 ? HEP_CHUNK_IPV6_SRC : HEP_CHUNK_IPV4_SRC, src);
  bytes(v6 ? HEP_CHUNK_IPV6_DST : HEP_CHUNK_IPV4_DST, dst);
  if (auth) bytes(HEP_CHUNK_AUTH_KEY, auth);
  bytes(HEP_CHUNK_PAYLOAD, payload);
  if (corr) bytes(HEP_CHUNK_CORRELATION_ID, corr);
  if (event.vlan !== null) u16(HEP_CHUNK_VLAN, event.vlan);
  if (node) bytes(HEP_CHUNK_NODE_NAME, node);
  for (const [type, value] of [
    [HEP_CHUNK_CALLSCOPE_SRC_VM, srcVm],
    [HEP_CHUNK_CALLSCOPE_DST_VM, dstVm],
  ] as const) {
    if (value === null) continue;
    header(type, value.length, HEP_VENDOR_CALLSCOPE);
    out.set(value, o);
    o += value.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decode

const MAGIC = [0x48, 0x45, 0x50, 0x33]; // "HEP3"

/**
 * For stream transports (HEP over TCP): length of the first complete HEP3 frame at off, -1 need
 * more, -2 not HEP3 (the stream cannot be resynchronised).
 */
export function hep3FrameLength(buf: Buffer, off: number, end: number): number {
  end = Math.min(end, buf.length);
  const avail = end - off;
  if (off < 0 || avail < 0) return -2;
  for (let i = 0; i < 4 && i < avail; i++) if (buf[off + i] !== MAGIC[i]) return -2;
  if (avail < 6) return -1;
  const len = buf.readUInt16BE(off + 4);
  if (len < 6) return -2;
  return len <= avail ? len : -1;
}

function transportOf(ipProtocol: number): TransportName {
  // HEP cannot say ws/wss/tls: those arrive as their IP protocol (documented loss).
  if (ipProtocol === 6) return 'tcp';
  if (ipProtocol === 132) return 'sctp';
  return 'udp';
}

/** A VM id from a (possibly hostile) sender: '' when too long or carrying control characters. */
function vmIdChunk(buf: Buffer, start: number, len: number): string {
  if (len > MAX_VM_ID_BYTES) return '';
  const id = chunkString(buf, start, start + len, 'utf8');
  return /[\u0000-\u001f\u007f]/.test(id) ? '' : id;
}

/** Trailing NULs are dropped: C agents sometimes count the terminator in string chunks. */
function chunkString(buf: Buffer, start: number, end: number, enc: 'utf8' | 'latin1'): string {
  while (end > start && buf[end - 1] === 0) end--;
  return buf.toString(enc, start, end);
}

const FIXED_SIZE: Record<number, number> = {
  [HEP_CHUNK_IP_FAMILY]: 1,
  [HEP_CHUNK_IP_PROTO]: 1,
  [HEP_CHUNK_IPV4_SRC]: 4,
  [HEP_CHUNK_IPV4_DST]: 4,
  [HEP_CHUNK_IPV6_SRC]: 16,
  [HEP_CHUNK_IPV6_DST]: 16,
  [HEP_CHUNK_SRC_PORT]: 2,
  [HEP_CHUNK_DST_PORT]: 2,
  [HEP_CHUNK_TS_SEC]: 4,
  [HEP_CHUNK_TS_USEC]: 4,
  [HEP_CHUNK_PROTO_TYPE]: 1,
  [HEP_CHUNK_CAPTURE_ID]: 4,
  [HEP_CHUNK_KEEP_ALIVE]: 2,
  [HEP_CHUNK_VLAN]: 2,
};

/**
 * Decodes the HEP3 frame at off (bytes past its length field are ignored). Never throws: hostile
 * or truncated input gives { ok: false, error }. Missing chunks get defaults (ports 0, vlan null,
 * strings '', captureId 0, timestamp 0, addresses 0.0.0.0 / ::).
 */
export function decodeHep3(buf: Buffer, off = 0, end: number = buf.length): HepDecodeResult {
  if (!Number.isInteger(off) || !Number.isInteger(end) || off < 0 || end > buf.length || off > end) {
    return { ok: false, error: `bad range ${off}..${end} of a ${buf.length}-byte buffer` };
  }
  const avail = end - off;
  if (avail < 6) return { ok: false, error: `${avail} bytes is too short for a HEP3 header` };
  for (let i = 0; i < 4; i++) {
    if (buf[off + i] !== MAGIC[i]) return { ok: false, error: 'no HEP3 magic' };
  }
  const frameLen = buf.readUInt16BE(off + 4);
  if (frameLen < 6) return { ok: false, error: `frame length ${frameLen} is below 6` };
  if (frameLen > avail)
    return { ok: false, error: `frame length ${frameLen} exceeds the ${avail} bytes present` };
  const frameEnd = off + frameLen;

  let family = 0;
  let ipProtocol = 0;
  let v4Src = -1;
  let v4Dst = -1;
  let v6Src = -1;
  let v6Dst = -1;
  let srcPort = 0;
  let dstPort = 0;
  let sec = 0;
  let usec = 0;
  let protoType = 0;
  let captureId = 0;
  let keepAlive = false;
  let authKey: string | null = null;
  let payloadStart = -1;
  let payloadEnd = -1;
  let zStart = -1;
  let zEnd = -1;
  let correlationId = '';
  let vlan: number | null = null;
  let nodeName = '';
  let srcVm = '';
  let dstVm = '';
  let unknownChunks = 0;

  let p = off + 6;
  while (p < frameEnd) {
    if (frameEnd - p < CHUNK_HEADER) {
      return { ok: false, error: `truncated chunk header at frame offset ${p - off}` };
    }
    const vendor = buf.readUInt16BE(p);
    const type = buf.readUInt16BE(p + 2);
    const len = buf.readUInt16BE(p + 4);
    if (len < CHUNK_HEADER) return { ok: false, error: `chunk ${vendor}/${type} length ${len} is below 6` };
    if (p + len > frameEnd) {
      return { ok: false, error: `chunk ${vendor}/${type} length ${len} runs past the frame end` };
    }
    const v = p + CHUNK_HEADER;
    const vlen = len - CHUNK_HEADER;
    p += len;
    if (vendor === HEP_VENDOR_CALLSCOPE && type === HEP_CHUNK_CALLSCOPE_SRC_VM) {
      srcVm = vmIdChunk(buf, v, vlen);
      continue;
    }
    if (vendor === HEP_VENDOR_CALLSCOPE && type === HEP_CHUNK_CALLSCOPE_DST_VM) {
      dstVm = vmIdChunk(buf, v, vlen);
      continue;
    }
    if (vendor !== 0) {
      unknownChunks++;
      continue;
    }
    const want = FIXED_SIZE[type];
    if (want !== undefined && vlen !== want) {
      return { ok: false, error: `chunk ${type} has ${vlen} value bytes, expected ${want}` };
    }
    switch (type) {
      case HEP_CHUNK_IP_FAMILY:
        family = buf[v];
        break;
      case HEP_CHUNK_IP_PROTO:
        ipProtocol = buf[v];
        break;
      case HEP_CHUNK_IPV4_SRC:
        v4Src = v;
        break;
      case HEP_CHUNK_IPV4_DST:
        v4Dst = v;
        break;
      case HEP_CHUNK_IPV6_SRC:
        v6Src = v;
        break;
      case HEP_CHUNK_IPV6_DST:
        v6Dst = v;
        break;
      case HEP_CHUNK_SRC_PORT:
        srcPort = buf.readUInt16BE(v);
        break;
      case HEP_CHUNK_DST_PORT:
        dstPort = buf.readUInt16BE(v);
        break;
      case HEP_CHUNK_TS_SEC:
        sec = buf.readUInt32BE(v);
        break;
      case HEP_CHUNK_TS_USEC:
        usec = buf.readUInt32BE(v);
        break;
      case HEP_CHUNK_PROTO_TYPE:
        protoType = buf[v];
        break;
      case HEP_CHUNK_CAPTURE_ID:
        captureId = buf.readUInt32BE(v);
        break;
      case HEP_CHUNK_KEEP_ALIVE:
        keepAlive = true;
        break;
      case HEP_CHUNK_AUTH_KEY:
        authKey = chunkString(buf, v, v + vlen, 'utf8');
        break;
      case HEP_CHUNK_PAYLOAD:
        payloadStart = v;
        payloadEnd = v + vlen;
        break;
      case HEP_CHUNK_PAYLOAD_COMPRESSED:
        zStart = v;
        zEnd = v + vlen;
        break;
      case HEP_CHUNK_CORRELATION_ID:
        correlationId = chunkString(buf, v, v + vlen, 'latin1');
        break;
      case HEP_CHUNK_VLAN:
        vlan = buf.readUInt16BE(v);
        break;
      case HEP_CHUNK_NODE_NAME:
        nodeName = chunkString(buf, v, v + vlen, 'utf8');
        break;
      default:
        unknownChunks++;
    }
  }

  // Family: chunk 1 when present, else whichever address chunks came.
  let ipFamily: 4 | 6;
  if (family === HEP_AF_INET) ipFamily = 4;
  else if (family === HEP_AF_INET6) ipFamily = 6;
  else if (family !== 0) return { ok: false, error: `unknown IP family ${family}` };
  else ipFamily = v6Src !== -1 || v6Dst !== -1 ? 6 : 4;
  if (ipFamily === 4 ? v6Src !== -1 || v6Dst !== -1 : v4Src !== -1 || v4Dst !== -1) {
    return { ok: false, error: `IPv${ipFamily} family with IPv${ipFamily === 4 ? 6 : 4} address chunks` };
  }
  const srcIp =
    ipFamily === 4
      ? v4Src === -1
        ? '0.0.0.0'
        : formatIPv4(buf, v4Src)
      : v6Src === -1
        ? '::'
        : formatIPv6(buf, v6Src);
  const dstIp =
    ipFamily === 4
      ? v4Dst === -1
        ? '0.0.0.0'
        : formatIPv4(buf, v4Dst)
      : v6Dst === -1
        ? '::'
        : formatIPv6(buf, v6Dst);

  let payload: Buffer;
  if (payloadStart !== -1) {
    payload = Buffer.from(buf.subarray(payloadStart, payloadEnd)); // a copy: the event outlives buf
  } else if (zStart !== -1) {
    try {
      // unzip accepts both zlib- and gzip-wrapped deflate, which is what agents send in chunk 16.
      payload = unzipSync(buf.subarray(zStart, zEnd), { maxOutputLength: MAX_INFLATED_PAYLOAD });
    } catch (e) {
      return { ok: false, error: `inflate: compressed payload does not inflate: ${(e as Error).message}` };
    }
  } else {
    payload = Buffer.alloc(0);
  }

  // Out-of-range microseconds are carried into seconds rather than rejected: the payload matters more.
  const timestampNs = BigInt(sec) * 1_000_000_000n + BigInt(usec) * 1000n;
  const event: CaptureEvent = {
    timestampNs,
    ipFamily,
    ipProtocol,
    transport: transportOf(ipProtocol),
    srcIp,
    dstIp,
    srcPort,
    dstPort,
    vlan,
    protoType,
    captureId,
    nodeName,
    correlationId,
    payload,
    retransmission: false,
  };
  if (srcVm) event.srcVm = srcVm;
  if (dstVm) event.dstVm = dstVm;
  return { ok: true, event, authKey, keepAlive, unknownChunks };
}

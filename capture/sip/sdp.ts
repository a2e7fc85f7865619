/**
 * SDP (RFC 4566 / RFC 8866) reduced to what call and media correlation needs: origin, connection
 * addresses, media lines (RTP and T.38 `image udptl t38`), rtpmap/fmtp/ptime and direction. Works on the
 * body decoded once as latin1 and scanned as bytes; LF-only endings and junk lines are tolerated.
 */
import type { Sdp, SdpConnection, SdpMedia } from '../../core/sip-message.js';
import type { Warn } from './name-addr.js';
import { parseUint, parseUintAt, type Src, sub } from './uri.js';

const LF = 10;
const CR = 13;
const SP = 32;
const HT = 9;

/** Bounds on hostile bodies: work stays linear and result sizes stay small. */
export const MAX_SDP_LINES = 4096;
export const MAX_SDP_MEDIA = 64;
const MAX_FORMATS = 128;
const MAX_ATTRIBUTES = 256;

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

function direction(name: string): Direction | null {
  switch (name) {
    case 'sendrecv':
    case 'sendonly':
    case 'recvonly':
    case 'inactive':
      return name;
    default:
      return null;
  }
}

/** True when buf[s, s + lit.length) holds exactly the ASCII literal `lit`. */
function bytesAre(buf: Buffer, s: number, lit: string): boolean {
  for (let k = 0; k < lit.length; k++) if (buf[s + k] !== lit.charCodeAt(k)) return false;
  return true;
}

/** Attribute name [s,e): the names acted on come back as shared literals, others as substrings. */
function attributeName(src: Src, s: number, e: number): string {
  const buf = src.buf;
  switch (e - s) {
    case 4:
      if (bytesAre(buf, s, 'fmtp')) return 'fmtp';
      break;
    case 5:
      if (bytesAre(buf, s, 'ptime')) return 'ptime';
      break;
    case 6:
      if (bytesAre(buf, s, 'rtpmap')) return 'rtpmap';
      break;
    case 8:
      if (bytesAre(buf, s, 'sendrecv')) return 'sendrecv';
      if (bytesAre(buf, s, 'sendonly')) return 'sendonly';
      if (bytesAre(buf, s, 'recvonly')) return 'recvonly';
      if (bytesAre(buf, s, 'inactive')) return 'inactive';
      break;
  }
  return sub(src, s, e);
}

/** Splits [s,e) on runs of SP/HT (SDP uses single spaces, but senders are sloppy). */
function words(src: Src, s: number, e: number, max: number): string[] {
  const buf = src.buf;
  const out: string[] = [];
  let i = s;
  while (i < e && out.length < max) {
    while (i < e && (buf[i] === SP || buf[i] === HT)) i++;
    if (i >= e) break;
    const st = i;
    while (i < e && buf[i] !== SP && buf[i] !== HT) i++;
    out.push(sub(src, st, i));
  }
  return out;
}

/** `IN IP4 203.0.113.1/127/2` → address without the /ttl and /count suffixes. */
function parseConnection(src: Src, s: number, e: number): SdpConnection | null {
  const w = words(src, s, e, 3);
  if (w.length < 3) return null;
  const slash = w[2].indexOf('/');
  return { netType: w[0], addrType: w[1], address: slash < 0 ? w[2] : w[2].substring(0, slash) };
}

function parseMediaLine(src: Src, s: number, e: number): SdpMedia | null {
  const w = words(src, s, e, 3 + MAX_FORMATS);
  if (w.length < 3) return null;
  const portText = w[1];
  const slash = portText.indexOf('/');
  const port = parseUint(portText, 0, slash < 0 ? portText.length : slash);
  if (port < 0 || port > 65535) return null;
  let portCount = 1;
  if (slash >= 0) {
    portCount = parseUint(portText, slash + 1);
    if (portCount < 1) return null;
  }
  return newMedia(w[0], port, portCount, w[2], w.slice(3));
}

function newMedia(
  media: string,
  port: number,
  portCount: number,
  proto: string,
  formats: string[],
): SdpMedia {
  return {
    media,
    port,
    portCount,
    proto,
    formats,
    connection: null,
    rtpmap: {},
    fmtp: {},
    ptime: null,
    direction: null,
    attributes: [],
  };
}

/** `96 opus/48000/2` in [s,e) into media.rtpmap; malformed values are skipped. */
function addRtpmap(m: SdpMedia, src: Src, s: number, e: number): void {
  const buf = src.buf;
  let i = s;
  while (i < e && buf[i] !== SP) i++;
  const pt = parseUintAt(buf, s, i);
  if (pt < 0 || pt > 127) return;
  while (i < e && buf[i] === SP) i++;
  const encStart = i;
  while (i < e && buf[i] !== 47) i++;
  if (i >= e || i === encStart) return;
  const s1 = i;
  i++;
  while (i < e && buf[i] !== 47) i++;
  // A rate of 0 or junk is kept as 0 (as Wireshark does): the encoding name still tells the clock.
  const clockRate = Math.max(0, parseUintAt(buf, s1 + 1, i));
  let channels: number | null = null;
  if (i < e) {
    const c = parseUintAt(buf, i + 1, e);
    if (c > 0) channels = c;
  }
  m.rtpmap[pt] = { encoding: sub(src, encStart, s1), clockRate, channels };
}

/** `101 0-16` in [s,e) into media.fmtp (first one per format wins). */
function addFmtp(m: SdpMedia, src: Src, s: number, e: number): void {
  const buf = src.buf;
  let i = s;
  while (i < e && buf[i] !== SP) i++;
  if (i === s) return;
  const fmt = sub(src, s, i);
  while (i < e && buf[i] === SP) i++;
  if (fmt !== '__proto__' && !Object.hasOwn(m.fmtp, fmt)) m.fmtp[fmt] = sub(src, i, e);
}

function parsePtime(src: Src, s: number, e: number): number | null {
  const n = parseUintAt(src.buf, s, e);
  if (n >= 0) return n;
  if (e - s > 15) return null;
  const f = Number(sub(src, s, e)); // a few senders write "20.0"
  return Number.isFinite(f) && f > 0 ? f : null;
}

/**
 * Parses an SDP body in buf[off,end). Returns null only when no `x=` line is found at all. Problems
 * (junk lines, bad m=/c=/o= lines, limits reached) are reported through `warn`.
 */
export function parseSdp(buf: Buffer, off: number, end: number, warn?: Warn): Sdp | null {
  // One latin1 decode for the body; fields are substrings of it, scanning runs on the bytes.
  return parseSdpAt({ buf, text: buf.toString('latin1', off, end), base: off }, off, end, warn);
}

export function parseSdpAt(src: Src, off: number, end: number, warn?: Warn): Sdp | null {
  const buf = src.buf;
  const sdp: Sdp = {
    version: null,
    origin: null,
    sessionName: null,
    connection: null,
    direction: null,
    media: [],
  };
  let media: SdpMedia | null = null;
  let recognized = 0;
  let junk = false;
  let lines = 0;
  let p = off;
  while (p < end) {
    if (++lines > MAX_SDP_LINES) {
      warn?.('sdp: too many lines');
      break;
    }
    // Buffer#indexOf (memchr) finds the line end; lines come in order, so the search stays linear.
    let e = buf.indexOf(LF, p);
    if (e < 0 || e > end) e = end;
    const next = e + 1;
    while (e > p && (buf[e - 1] === CR || buf[e - 1] === SP || buf[e - 1] === HT)) e--;
    const t = buf[p];
    if (e - p < 2 || buf[p + 1] !== 0x3d || t < 0x61 || t > 0x7a) {
      if (e > p) junk = true;
      p = next;
      continue;
    }
    recognized++;
    const vs = p + 2;
    switch (t) {
      case 0x76: {
        // v=
        const v = parseUintAt(buf, vs, e);
        if (v >= 0) sdp.version = v;
        break;
      }
      case 0x6f: {
        // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
        const w = words(src, vs, e, 6);
        if (w.length === 6) {
          sdp.origin = {
            username: w[0],
            sessionId: w[1],
            sessionVersion: w[2],
            netType: w[3],
            addrType: w[4],
            address: w[5],
          };
        } else warn?.('sdp: malformed o=');
        break;
      }
      case 0x73:
        if (media === null && sdp.sessionName === null) sdp.sessionName = sub(src, vs, e);
        break;
      case 0x63: {
        const c = parseConnection(src, vs, e);
        if (c === null) warn?.('sdp: malformed c=');
        else if (media !== null) {
          if (media.connection === null) media.connection = c;
        } else if (sdp.connection === null) sdp.connection = c;
        break;
      }
      case 0x6d: {
        if (sdp.media.length >= MAX_SDP_MEDIA) {
          // Stop: attributes of ignored media must not attach to the previous one.
          warn?.('sdp: too many m= lines');
          return sdp;
        }
        media = parseMediaLine(src, vs, e);
        if (media === null) {
          warn?.('sdp: malformed m=');
          // Attributes after a bad m= belong to it, not to the session; park them in a throwaway media.
          media = newMedia('', 0, 1, '', []);
        } else sdp.media.push(media);
        break;
      }
      case 0x61: {
        let colon = vs;
        while (colon < e && buf[colon] !== 58) colon++;
        const name = attributeName(src, vs, colon);
        const dir = colon === e ? direction(name) : null;
        if (media === null) {
          if (dir !== null) sdp.direction = dir;
          break;
        }
        if (media.attributes.length < MAX_ATTRIBUTES) {
          media.attributes.push([name, colon === e ? null : sub(src, colon + 1, e)]);
        }
        if (dir !== null) media.direction = dir;
        else if (colon < e) {
          if (name === 'rtpmap') addRtpmap(media, src, colon + 1, e);
          else if (name === 'fmtp') addFmtp(media, src, colon + 1, e);
          else if (name === 'ptime') media.ptime = parsePtime(src, colon + 1, e);
        }
        break;
      }
      default:
        break;
    }
    p = next;
  }
  if (junk) warn?.('sdp: junk lines ignored');
  return recognized > 0 ? sdp : null;
}

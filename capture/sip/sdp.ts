/**
 * SDP (RFC 4566 / RFC 8866) reduced to what call and media correlation needs: origin, connection
 * addresses, media lines (RTP and T.38 `image udptl t38`), rtpmap/fmtp/ptime and direction. Works on the
 * body decoded once as latin1; LF-only endings and junk lines are tolerated.
 */
import type { Sdp, SdpConnection, SdpMedia } from './message.js';
import type { Warn } from './name-addr.js';
import { parseUint } from './uri.js';

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

/** Splits on runs of SP/HT (SDP uses single spaces, but senders are sloppy). */
function words(s: string, max: number): string[] {
  const out: string[] = [];
  let i = 0;
  const n = s.length;
  while (i < n && out.length < max) {
    while (i < n && (s.charCodeAt(i) === SP || s.charCodeAt(i) === HT)) i++;
    if (i >= n) break;
    const st = i;
    while (i < n && s.charCodeAt(i) !== SP && s.charCodeAt(i) !== HT) i++;
    out.push(s.substring(st, i));
  }
  return out;
}

/** `IN IP4 203.0.113.1/127/2` → address without the /ttl and /count suffixes. */
function parseConnection(v: string): SdpConnection | null {
  const w = words(v, 3);
  if (w.length < 3) return null;
  const slash = w[2].indexOf('/');
  return { netType: w[0], addrType: w[1], address: slash < 0 ? w[2] : w[2].substring(0, slash) };
}

function parseMediaLine(v: string): SdpMedia | null {
  const w = words(v, 3 + MAX_FORMATS);
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

function newMedia(media: string, port: number, portCount: number, proto: string, formats: string[]): SdpMedia {
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

/** `96 opus/48000/2` into media.rtpmap; malformed values are skipped. */
function addRtpmap(m: SdpMedia, v: string): void {
  const sp = v.indexOf(' ');
  if (sp <= 0) return;
  const pt = parseUint(v, 0, sp);
  if (pt < 0 || pt > 127) return;
  let i = sp;
  while (i < v.length && v.charCodeAt(i) === SP) i++;
  const s1 = v.indexOf('/', i);
  if (s1 <= i) return;
  const s2 = v.indexOf('/', s1 + 1);
  const clockRate = parseUint(v, s1 + 1, s2 < 0 ? v.length : s2);
  if (clockRate <= 0) return;
  let channels: number | null = null;
  if (s2 >= 0) {
    const c = parseUint(v, s2 + 1);
    if (c > 0) channels = c;
  }
  m.rtpmap[pt] = { encoding: v.substring(i, s1), clockRate, channels };
}

function parsePtime(v: string): number | null {
  const n = parseUint(v);
  if (n >= 0) return n;
  const f = Number(v); // a few senders write "20.0"
  return Number.isFinite(f) && f > 0 && v.length < 16 ? f : null;
}

/**
 * Parses an SDP body in buf[off,end). Returns null only when no `x=` line is found at all. Problems
 * (junk lines, bad m=/c=/o= lines, limits reached) are reported through `warn`.
 */
export function parseSdp(buf: Buffer, off: number, end: number, warn?: Warn): Sdp | null {
  // One latin1 decode for the body; lines and fields are substrings of it.
  return parseSdpText(buf.toString('latin1', off, end), warn);
}

/** parseSdp on an already decoded (latin1) body. */
export function parseSdpText(text: string, warn?: Warn): Sdp | null {
  const sdp: Sdp = { version: null, origin: null, sessionName: null, connection: null, direction: null, media: [] };
  let media: SdpMedia | null = null;
  let recognized = 0;
  let junk = false;
  let lines = 0;
  let p = 0;
  const end = text.length;
  while (p < end) {
    if (++lines > MAX_SDP_LINES) {
      warn?.('sdp: too many lines');
      break;
    }
    let e = text.indexOf('\n', p);
    if (e < 0) e = end;
    const next = e + 1;
    while (e > p) {
      const c = text.charCodeAt(e - 1);
      if (c !== CR && c !== SP && c !== HT) break;
      e--;
    }
    const t = text.charCodeAt(p);
    if (e - p < 2 || text.charCodeAt(p + 1) !== 0x3d || t < 0x61 || t > 0x7a) {
      if (e > p) junk = true;
      p = next;
      continue;
    }
    recognized++;
    const vs = p + 2;
    switch (t) {
      case 0x76: {
        // v=
        const v = parseUint(text, vs, e);
        if (v >= 0) sdp.version = v;
        break;
      }
      case 0x6f: {
        // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
        const w = words(text.substring(vs, e), 6);
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
        if (media === null && sdp.sessionName === null) sdp.sessionName = text.substring(vs, e);
        break;
      case 0x63: {
        const c = parseConnection(text.substring(vs, e));
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
        media = parseMediaLine(text.substring(vs, e));
        if (media === null) {
          warn?.('sdp: malformed m=');
          // Attributes after a bad m= belong to it, not to the session; park them in a throwaway media.
          media = newMedia('', 0, 1, '', []);
        } else sdp.media.push(media);
        break;
      }
      case 0x61: {
        let colon = text.indexOf(':', vs);
        if (colon > e) colon = -1;
        const name = text.substring(vs, colon < 0 ? e : colon);
        const value = colon < 0 ? null : text.substring(colon + 1, e);
        const dir = value === null ? direction(name) : null;
        if (media === null) {
          if (dir !== null) sdp.direction = dir;
          break;
        }
        if (media.attributes.length < MAX_ATTRIBUTES) media.attributes.push([name, value]);
        if (dir !== null) media.direction = dir;
        else if (value !== null) {
          if (name === 'rtpmap') addRtpmap(media, value);
          else if (name === 'fmtp') {
            const sp = value.indexOf(' ');
            const fmt = sp < 0 ? value : value.substring(0, sp);
            if (fmt.length > 0 && fmt !== '__proto__' && !Object.hasOwn(media.fmtp, fmt)) {
              media.fmtp[fmt] = sp < 0 ? '' : value.substring(sp + 1).trim();
            }
          } else if (name === 'ptime') media.ptime = parsePtime(value);
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

/**
 * SIP/SIPS/TEL URI parsing (RFC 3261 §19.1, RFC 3966) plus the helpers shared by the header parsers
 * (parameters, quoted strings, comma lists). Scanning runs on bytes (typed-array reads are several times
 * faster than charCodeAt on sliced strings); strings are cut from the latin1 decoding of the same bytes,
 * so one char is one byte and nothing is lost. Nothing here throws.
 */
import type { SipUri } from '../../core/sip-message.js';

const SP = 32;
const HT = 9;
const CR = 13;
const LF = 10;
const DQUOTE = 34;
const BACKSLASH = 92;

/** Bytes and their latin1 decoding: text.charCodeAt(i - base) === buf[i] for the range in use. */
export interface Src {
  readonly buf: Buffer;
  readonly text: string;
  readonly base: number;
}

/** A Src over a standalone string (tests, folded header values, callers holding strings). */
export function srcOf(s: string): Src {
  return { buf: Buffer.from(s, 'latin1'), text: s, base: 0 };
}

/** The latin1 string of bytes [s,e). */
export function sub(src: Src, s: number, e: number): string {
  return src.text.substring(s - src.base, e - src.base);
}

export function isWs(c: number): boolean {
  // Most bytes are above SP, so one comparison usually decides.
  return c <= SP && (c === SP || c === HT || c === CR || c === LF);
}

export function skipWs(buf: Buffer, i: number, end: number): number {
  while (i < end && isWs(buf[i])) i++;
  return i;
}

export function trimEnd(buf: Buffer, start: number, end: number): number {
  while (end > start && isWs(buf[end - 1])) end--;
  return end;
}

/** Index just past the closing quote of the quoted-string at buf[i] === '"', or -1 if unterminated. */
export function quotedEnd(buf: Buffer, i: number, end: number): number {
  for (let j = i + 1; j < end; j++) {
    const c = buf[j];
    if (c === BACKSLASH) j++;
    else if (c === DQUOTE) return j + 1;
  }
  return -1;
}

/** Content of the quoted-string [i, qEnd) with quoted-pairs resolved. */
export function unquote(src: Src, i: number, qEnd: number): string {
  const buf = src.buf;
  let out = '';
  let last = i + 1;
  for (let j = i + 1; j < qEnd - 1; j++) {
    if (buf[j] === BACKSLASH && j + 1 < qEnd - 1) {
      out += sub(src, last, j);
      last = j + 1;
      j++;
    }
  }
  return last === i + 1 ? sub(src, i + 1, qEnd - 1) : out + sub(src, last, qEnd - 1);
}

/** Returns the value unquoted when it is a complete quoted-string, else unchanged. */
export function unquoteValue(v: string): string {
  if (v.length < 2 || v.charCodeAt(0) !== DQUOTE) return v;
  const src = srcOf(v);
  return quotedEnd(src.buf, 0, v.length) === v.length ? unquote(src, 0, v.length) : v;
}

/** Bytes that matter to splitList: '"', '<', '>' and ','. */
const LIST_SPECIAL = new Uint8Array(256);
for (const c of [DQUOTE, 60, 62, 44]) LIST_SPECIAL[c] = 1;

/** Most elements a list is split into. */
export const MAX_LIST_RANGES = 256;

/**
 * Splits buf[start,end) at commas outside quoted strings and <...> (RFC 3261 §7.3.1: commas inside those
 * are data) into `out` as flattened [start, end) pairs, trimmed; empty elements are dropped (RFC 4475
 * badinv01). Returns the number of elements (at most `max` and what `out` holds). `out` is the caller's
 * scratch (a parser reuses one), so splitting allocates nothing.
 */
export function splitListAt(
  buf: Buffer,
  start: number,
  end: number,
  out: Int32Array,
  max = MAX_LIST_RANGES,
): number {
  const limit = Math.min(max, out.length >> 1);
  let n = 0;
  let elStart = start;
  let angle = false;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (LIST_SPECIAL[c] === 0) continue;
    if (c === DQUOTE) {
      const q = quotedEnd(buf, i, end);
      if (q < 0) break;
      i = q - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (!angle) {
      const a = skipWs(buf, elStart, i);
      const b = trimEnd(buf, a, i);
      if (b > a) {
        if (n >= limit) return n;
        out[2 * n] = a;
        out[2 * n + 1] = b;
        n++;
      }
      elStart = i + 1;
    }
  }
  // The last element runs to the end (an unterminated quote or <, too).
  const a = skipWs(buf, elStart, end);
  const b = trimEnd(buf, a, end);
  if (b > a && n < limit) {
    out[2 * n] = a;
    out[2 * n + 1] = b;
    n++;
  }
  return n;
}

/** splitListAt returning a new array of [start, end) pairs. */
export function splitList(buf: Buffer, start: number, end: number, max = MAX_LIST_RANGES): number[] {
  const ranges = listRangesFor(max);
  const n = splitListAt(buf, start, end, ranges, max);
  return Array.from(ranges.subarray(0, 2 * n));
}

/** Scratch for splitListAt with room for `max` elements (at most MAX_LIST_RANGES). */
export function listRangesFor(max = MAX_LIST_RANGES): Int32Array {
  return new Int32Array(2 * Math.max(0, Math.min(max, MAX_LIST_RANGES)));
}

/**
 * Latin1 string of [s,e) with ASCII letters lower-cased (names are case-insensitive). Bytes ≥ 0x80 are
 * left alone, which String#toLowerCase would not do.
 */
export function lowerSub(src: Src, s: number, e: number): string {
  const buf = src.buf;
  let upper = false;
  let high = false;
  for (let i = s; i < e; i++) {
    const c = buf[i];
    if (c >= 65 && c <= 90) upper = true;
    else if (c >= 0x80) high = true;
  }
  if (!upper) return sub(src, s, e);
  if (!high) return sub(src, s, e).toLowerCase();
  let out = '';
  for (let i = s; i < e; i++) {
    const c = buf[i];
    out += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c);
  }
  return out;
}

const MAX_PARAMS = 64;

// Parameter names seen in nearly every message. They are recognised on bytes and stored with named
// property accesses, which V8 keys far faster than computed ones (and the name string is a shared literal).
const P_OTHER = 0;
const P_TAG = 1;
const P_BRANCH = 2;
const P_RPORT = 3;
const P_RECEIVED = 4;
const P_TRANSPORT = 5;
const P_LR = 6;
const P_USER = 7;
const P_MADDR = 8;
const P_TTL = 9;
const P_EXPIRES = 10;
const P_Q = 11;

/** True when buf[s, s + lit.length) is `lit` ignoring ASCII case (lit: lower-case letters). */
function isName(buf: Buffer, s: number, lit: string): boolean {
  for (let k = 0; k < lit.length; k++) if ((buf[s + k] | 32) !== lit.charCodeAt(k)) return false;
  return true;
}

/** Which common parameter the name buf[s, s+n) is (P_OTHER when none). */
function commonParam(buf: Buffer, s: number, n: number): number {
  switch (buf[s] | 32) {
    case 0x62: // b
      return n === 6 && isName(buf, s, 'branch') ? P_BRANCH : P_OTHER;
    case 0x65: // e
      return n === 7 && isName(buf, s, 'expires') ? P_EXPIRES : P_OTHER;
    case 0x6c: // l
      return n === 2 && isName(buf, s, 'lr') ? P_LR : P_OTHER;
    case 0x6d: // m
      return n === 5 && isName(buf, s, 'maddr') ? P_MADDR : P_OTHER;
    case 0x71: // q
      return n === 1 ? P_Q : P_OTHER;
    case 0x72: // r
      if (n === 5) return isName(buf, s, 'rport') ? P_RPORT : P_OTHER;
      return n === 8 && isName(buf, s, 'received') ? P_RECEIVED : P_OTHER;
    case 0x74: // t
      if (n === 3) return isName(buf, s, 'tag') ? P_TAG : isName(buf, s, 'ttl') ? P_TTL : P_OTHER;
      return n === 9 && isName(buf, s, 'transport') ? P_TRANSPORT : P_OTHER;
    case 0x75: // u
      return n === 4 && isName(buf, s, 'user') ? P_USER : P_OTHER;
    default:
      return P_OTHER;
  }
}

const PC_WS = 1;
const PC_SEMI = 2;
const PC_EQ = 4;
const PC_QUESTION = 8;
/** Byte classes for parameter scanning. */
const PARAM_CLASS = new Uint8Array(256);
for (const c of [SP, HT, CR, LF]) PARAM_CLASS[c] = PC_WS;
PARAM_CLASS[59] = PC_SEMI;
PARAM_CLASS[61] = PC_EQ;
PARAM_CLASS[63] = PC_QUESTION;

/**
 * Parses `;name[=value]` parameters from i until `end` (or '?' when `stopAtQuestion`, for URI headers).
 * Names are lower-cased; values keep their bytes, quotes included. The first of duplicate names wins.
 * Returns the index where parsing stopped.
 */
export function parseParams(
  src: Src,
  i: number,
  end: number,
  out: Record<string, string>,
  stopAtQuestion = false,
): number {
  const buf = src.buf;
  // Byte classes that end a name, a value, or junk; '?' too when the URI headers follow.
  const q = stopAtQuestion ? PC_QUESTION : 0;
  const nameStop = PC_WS | PC_SEMI | PC_EQ | q;
  const valueStop = PC_WS | PC_SEMI | q;
  const junkStop = PC_SEMI | q;
  let count = 0;
  while (i < end) {
    i = skipWs(buf, i, end);
    if (i >= end) break;
    const c = buf[i];
    if (stopAtQuestion && c === 63) break;
    if (c !== 59) {
      // Junk between parameters: skip to the next ';' so one bad byte does not hide the rest.
      while (i < end && (PARAM_CLASS[buf[i]] & junkStop) === 0) i++;
      continue;
    }
    i = skipWs(buf, i + 1, end);
    const nStart = i;
    while (i < end && (PARAM_CLASS[buf[i]] & nameStop) === 0) i++;
    const nEnd = i;
    i = skipWs(buf, i, end);
    let vStart = i;
    let vEnd = i;
    if (i < end && buf[i] === 61) {
      i = skipWs(buf, i + 1, end);
      vStart = i;
      if (i < end && buf[i] === DQUOTE) {
        const qe = quotedEnd(buf, i, end);
        i = qe < 0 ? end : qe;
      } else {
        while (i < end && (PARAM_CLASS[buf[i]] & valueStop) === 0) i++;
      }
      vEnd = i;
    }
    if (nEnd > nStart && ++count <= MAX_PARAMS) {
      // The first of duplicate names wins. Values are strings, so a non-string hit is inherited (e.g.
      // "constructor") and may be shadowed.
      switch (commonParam(buf, nStart, nEnd - nStart)) {
        case P_TAG:
          if (typeof out.tag !== 'string') out.tag = paramValue(src, vStart, vEnd);
          break;
        case P_BRANCH:
          if (typeof out.branch !== 'string') out.branch = paramValue(src, vStart, vEnd);
          break;
        case P_RPORT:
          if (typeof out.rport !== 'string') out.rport = paramValue(src, vStart, vEnd);
          break;
        case P_RECEIVED:
          if (typeof out.received !== 'string') out.received = paramValue(src, vStart, vEnd);
          break;
        case P_TRANSPORT:
          if (typeof out.transport !== 'string') out.transport = paramValue(src, vStart, vEnd);
          break;
        case P_LR:
          if (typeof out.lr !== 'string') out.lr = paramValue(src, vStart, vEnd);
          break;
        case P_USER:
          if (typeof out.user !== 'string') out.user = paramValue(src, vStart, vEnd);
          break;
        case P_MADDR:
          if (typeof out.maddr !== 'string') out.maddr = paramValue(src, vStart, vEnd);
          break;
        case P_TTL:
          if (typeof out.ttl !== 'string') out.ttl = paramValue(src, vStart, vEnd);
          break;
        case P_EXPIRES:
          if (typeof out.expires !== 'string') out.expires = paramValue(src, vStart, vEnd);
          break;
        case P_Q:
          if (typeof out.q !== 'string') out.q = paramValue(src, vStart, vEnd);
          break;
        default: {
          const name = lowerSub(src, nStart, nEnd);
          // A "__proto__" key would hit the object literal's prototype setter; drop it.
          if (typeof out[name] !== 'string' && name !== '__proto__')
            out[name] = paramValue(src, vStart, vEnd);
        }
      }
    }
  }
  return i;
}

function paramValue(src: Src, s: number, e: number): string {
  return e > s ? sub(src, s, e) : '';
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function hexVal(c: number): number {
  return c <= 57 ? c - 48 : (c | 32) - 87;
}

/** Resolves valid %HH escapes byte-wise (latin1); invalid ones stay literal (RFC 4475 esc02). */
export function percentDecode(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let last = 0;
  for (let i = 0; i + 2 < s.length; i++) {
    if (s.charCodeAt(i) === 37 && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) {
      const byte = hexVal(s.charCodeAt(i + 1)) * 16 + hexVal(s.charCodeAt(i + 2));
      out += s.substring(last, i) + String.fromCharCode(byte);
      i += 2;
      last = i + 1;
    }
  }
  return out + s.substring(last);
}

/** Decimal digits only in buf[i,end) (≤ 15 digits, so the value is exact); -1 when invalid. */
export function parseUintAt(buf: Buffer, i: number, end: number): number {
  if (end <= i || end - i > 15) return -1;
  let v = 0;
  for (; i < end; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

/** parseUintAt for a string. */
export function parseUint(s: string, i = 0, end = s.length): number {
  if (end <= i || end - i > 15) return -1;
  let v = 0;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

const HOST_CHAR = 1;
const IPV6_CHAR = 2;
/** Byte classes for host names (alphanum - . and '_', which is illegal but common in lab and container
 * names) and IPv6 text (hex digits : .). */
const HOST_CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alnum = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
  if (alnum || c === 45 || c === 46 || c === 95) HOST_CLASS[c] |= HOST_CHAR;
  if (isHex(c) || c === 58 || c === 46) HOST_CLASS[c] |= IPV6_CHAR;
}

export interface HostPort {
  host: string;
  port: number | null;
}

function portAt(buf: Buffer, i: number, end: number): number {
  const p = end - i <= 5 ? parseUintAt(buf, i, end) : -1;
  return p <= 65535 ? p : -1;
}

function setHostPort(out: HostPort, host: string, port: number | null): true {
  out.host = host;
  out.port = port;
  return true;
}

/**
 * Parses host[:port] in [i,end). IPv6 references keep their brackets. Some devices send IPv6 without
 * brackets (seen in real captures: `sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060`): with nine groups the last
 * is taken as the port, otherwise the whole text is the address; such hosts are returned bracketed so
 * every IPv6 host has one spelling. The result goes to `out`'s host and port (callers pass the URI or Via
 * they are building, so nothing is allocated for it); false, and `out` untouched, when invalid.
 */
export function hostPortAt(src: Src, i: number, end: number, out: HostPort): boolean {
  const buf = src.buf;
  if (i >= end) return false;
  if (buf[i] === 91) {
    let close = i + 1;
    while (close < end && buf[close] !== 93) {
      const c = buf[close];
      // Zone ids (RFC 6874 "%25eth0") may follow the address.
      if (HOST_CLASS[c] === 0 && c !== 37) return false;
      close++;
    }
    if (close >= end || close === i + 1) return false;
    const host = sub(src, i, close + 1);
    if (close + 1 === end) return setHostPort(out, host, null);
    if (buf[close + 1] !== 58) return false;
    const port = portAt(buf, close + 2, end);
    return port >= 0 && setHostPort(out, host, port);
  }
  let colons = 0;
  let firstColon = -1;
  let lastColon = -1;
  let allIpv6 = true;
  let doubleColon = false;
  for (let j = i; j < end; j++) {
    const c = buf[j];
    const cls = HOST_CLASS[c];
    if (c === 58) {
      colons++;
      if (firstColon < 0) firstColon = j;
      else if (lastColon === j - 1) doubleColon = true;
      lastColon = j;
    } else if ((cls & HOST_CHAR) === 0) return false;
    else if ((cls & IPV6_CHAR) === 0) allIpv6 = false;
  }
  if (colons === 0) return setHostPort(out, sub(src, i, end), null);
  if (colons === 1) {
    if (firstColon === i) return false;
    const port = portAt(buf, firstColon + 1, end);
    return port >= 0 && setHostPort(out, sub(src, i, firstColon), port);
  }
  // Unbracketed IPv6 only when it is unambiguous: a "::" or all eight groups (plus maybe a port).
  if (!allIpv6 || (!doubleColon && colons < 7) || colons > 8) return false;
  if (colons === 8 && !doubleColon) {
    const port = portAt(buf, lastColon + 1, end);
    return port >= 0 && setHostPort(out, `[${sub(src, i, lastColon)}]`, port);
  }
  return setHostPort(out, `[${sub(src, i, end)}]`, null);
}

/** hostPortAt returning a new object, or null when invalid. */
export function parseHostPort(src: Src, i: number, end: number): HostPort | null {
  const out: HostPort = { host: '', port: null };
  return hostPortAt(src, i, end, out) ? out : null;
}

const U_BAD = 1;
const U_AT = 2;
const U_HOST_END = 3;
const U_BRACKET = 4;
/**
 * Byte classes for URIs: never inside one (whitespace, controls, <> and DEL: RFC 4475 lwsruri, ltgtruri),
 * '@', the end of the host (';' '?') and '['. Only the first two matter to the validity scan, which runs
 * after the scheme, so the others are read only where the host is delimited.
 */
const URI_CLASS = new Uint8Array(256);
for (let c = 0; c <= 32; c++) URI_CLASS[c] = U_BAD;
URI_CLASS[60] = U_BAD;
URI_CLASS[62] = U_BAD;
URI_CLASS[127] = U_BAD;
URI_CLASS[64] = U_AT;
URI_CLASS[59] = U_HOST_END;
URI_CLASS[63] = U_HOST_END;
URI_CLASS[91] = U_BRACKET;

function isAlpha(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

function schemeOf(src: Src, s: number, e: number): string {
  const buf = src.buf;
  // The common schemes come back as constants (no allocation, shared by every message).
  if (e - s === 3) {
    const a = buf[s] | 32;
    const b = buf[s + 1] | 32;
    const c = buf[s + 2] | 32;
    if (a === 0x73 && b === 0x69 && c === 0x70) return 'sip';
    if (a === 0x74 && b === 0x65 && c === 0x6c) return 'tel';
  } else if (
    e - s === 4 &&
    (buf[s] | 32) === 0x73 &&
    (buf[s + 1] | 32) === 0x69 &&
    (buf[s + 2] | 32) === 0x70
  ) {
    if ((buf[s + 3] | 32) === 0x73) return 'sips';
  }
  return lowerSub(src, s, e);
}

/**
 * Parses a URI in [start,end) (surrounding whitespace ignored). sip/sips: user (escapes resolved; may
 * contain ';' user parameters), host, port, params, headers. tel: the number goes to `user`, host is ''.
 * Other schemes (urn:, http:...) keep only scheme and raw. Returns null when the text is not a URI.
 */
export function parseUriAt(src: Src, start: number, end: number): SipUri | null {
  const buf = src.buf;
  start = skipWs(buf, start, end);
  end = trimEnd(buf, start, end);
  if (end - start < 2 || !isAlpha(buf[start])) return null;
  let i = start + 1;
  while (i < end) {
    const c = buf[i];
    if (!(isAlpha(c) || (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46)) break;
    i++;
  }
  if (i >= end || buf[i] !== 58) return null;
  const schemeEnd = i;
  i++;
  // One pass: reject whitespace and <> (never inside a URI: RFC 4475 lwsruri, ltgtruri) and find '@'
  // (it cannot appear unescaped after the userinfo, so the first one ends it).
  let at = -1;
  for (let j = i; j < end; j++) {
    const cls = URI_CLASS[buf[j]];
    if (cls === U_BAD) return null;
    if (cls === U_AT && at < 0) at = j;
  }
  const scheme = schemeOf(src, start, schemeEnd);
  const raw = sub(src, start, end);
  const params: Record<string, string> = {};
  if (scheme === 'sip' || scheme === 'sips') {
    let user: string | null = null;
    let hostStart = i;
    if (at >= 0) {
      let userEnd = at;
      let pct = false;
      // user ":" password — the password is dropped (kept in raw only).
      for (let j = i; j < at; j++) {
        const c = buf[j];
        if (c === 58) {
          userEnd = j;
          break;
        }
        if (c === 37) pct = true;
      }
      user = sub(src, i, userEnd);
      if (pct) user = percentDecode(user);
      hostStart = at + 1;
    }
    let hostEnd = hostStart;
    while (hostEnd < end) {
      const cls = URI_CLASS[buf[hostEnd]];
      if (cls === U_HOST_END) break;
      if (cls === U_BRACKET) {
        while (hostEnd < end && buf[hostEnd] !== 93) hostEnd++;
        if (hostEnd >= end) return null;
      }
      hostEnd++;
    }
    const uri: SipUri = { scheme, user, host: '', port: null, params, raw };
    if (!hostPortAt(src, hostStart, hostEnd, uri)) return null;
    let p = parseParams(src, hostEnd, end, params, true);
    if (p < end && buf[p] === 63) {
      p++;
      const headers: Record<string, string> = {};
      let n = 0;
      while (p < end && n++ < MAX_PARAMS) {
        let amp = p;
        let eq = -1;
        while (amp < end && buf[amp] !== 38) {
          if (buf[amp] === 61 && eq < 0) eq = amp;
          amp++;
        }
        const name = sub(src, p, eq < 0 ? amp : eq);
        if (name.length > 0 && name !== '__proto__' && !Object.hasOwn(headers, name)) {
          headers[name] = eq < 0 ? '' : sub(src, eq + 1, amp);
        }
        p = amp + 1;
      }
      uri.headers = headers;
    }
    return uri;
  }
  if (scheme === 'tel') {
    let numEnd = i;
    while (numEnd < end && buf[numEnd] !== 59) numEnd++;
    if (numEnd === i) return null;
    parseParams(src, numEnd, end, params);
    return { scheme, user: percentDecode(sub(src, i, numEnd)), host: '', port: null, params, raw };
  }
  return { scheme, user: null, host: '', port: null, params, raw };
}

/** parseUriAt for a string (offsets are string indexes). */
export function parseUri(s: string, start = 0, end = s.length): SipUri | null {
  if (start < 0 || end > s.length || start >= end) return null;
  return parseUriAt(srcOf(s), start, end);
}

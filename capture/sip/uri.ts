/**
 * SIP/SIPS/TEL URI parsing (RFC 3261 §19.1, RFC 3966) plus the helpers shared by the header parsers
 * (parameters, quoted strings, comma lists). Scanning runs on bytes (typed-array reads are several times
 * faster than charCodeAt on sliced strings); strings are cut from the latin1 decoding of the same bytes,
 * so one char is one byte and nothing is lost. Nothing here throws.
 */
import type { SipUri } from './message.js';

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
  return c === SP || c === HT || c === CR || c === LF;
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

/**
 * Splits buf[start,end) at commas outside quoted strings and <...> (RFC 3261 §7.3.1: commas inside those
 * are data). Returns flattened [start, end) pairs, trimmed; empty elements are dropped (RFC 4475 badinv01).
 */
export function splitList(buf: Buffer, start: number, end: number, max = 256): number[] {
  const out: number[] = [];
  let elStart = start;
  let angle = false;
  for (let i = start; i <= end; i++) {
    const c = i < end ? buf[i] : 44;
    if (c === DQUOTE) {
      const q = quotedEnd(buf, i, end);
      i = q < 0 ? end - 1 : q - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && (!angle || i === end)) {
      const a = skipWs(buf, elStart, i);
      const b = trimEnd(buf, a, i);
      if (b > a) {
        if (out.length >= max * 2) break;
        out.push(a, b);
      }
      elStart = i + 1;
    }
  }
  return out;
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

/** Parameter names seen in nearly every message, as literals: V8 keys objects faster with them. */
const COMMON_PARAMS = [
  'tag',
  'branch',
  'rport',
  'received',
  'transport',
  'lr',
  'user',
  'maddr',
  'ttl',
  'expires',
  'q',
];
const COMMON_BY_LENGTH: string[][] = [];
for (const n of COMMON_PARAMS) {
  COMMON_BY_LENGTH[n.length] ??= [];
  COMMON_BY_LENGTH[n.length].push(n);
}

/** Lower-cased parameter name of [s,e), a shared literal when it is a common one. */
function paramName(src: Src, s: number, e: number): string {
  const list = COMMON_BY_LENGTH[e - s];
  if (list !== undefined) {
    const buf = src.buf;
    for (const n of list) {
      let k = 0;
      while (k < n.length && (buf[s + k] | 32) === n.charCodeAt(k)) k++;
      if (k === n.length) return n;
    }
  }
  return lowerSub(src, s, e);
}

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
  let count = 0;
  while (i < end) {
    i = skipWs(buf, i, end);
    if (i >= end) break;
    const c = buf[i];
    if (stopAtQuestion && c === 63) break;
    if (c !== 59) {
      // Junk between parameters: skip to the next ';' so one bad byte does not hide the rest.
      while (i < end && buf[i] !== 59 && !(stopAtQuestion && buf[i] === 63)) i++;
      continue;
    }
    i = skipWs(buf, i + 1, end);
    const nStart = i;
    while (i < end) {
      const d = buf[i];
      if (d === 61 || d === 59 || isWs(d) || (stopAtQuestion && d === 63)) break;
      i++;
    }
    const nEnd = i;
    i = skipWs(buf, i, end);
    let vStart = i;
    let vEnd = i;
    if (i < end && buf[i] === 61) {
      i = skipWs(buf, i + 1, end);
      vStart = i;
      if (i < end && buf[i] === DQUOTE) {
        const q = quotedEnd(buf, i, end);
        i = q < 0 ? end : q;
      } else {
        while (i < end) {
          const d = buf[i];
          if (d === 59 || isWs(d) || (stopAtQuestion && d === 63)) break;
          i++;
        }
      }
      vEnd = i;
    }
    if (nEnd > nStart && ++count <= MAX_PARAMS) {
      const name = paramName(src, nStart, nEnd);
      // Values are strings, so a non-string hit is inherited (e.g. "constructor") and may be shadowed.
      // A "__proto__" key would hit the object literal's prototype setter; drop it.
      const cur = out[name];
      if ((cur === undefined || typeof cur !== 'string') && name !== '__proto__') {
        out[name] = vEnd > vStart ? sub(src, vStart, vEnd) : '';
      }
    }
  }
  return i;
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

/**
 * Parses host[:port] in [i,end). IPv6 references keep their brackets. Some devices send IPv6 without
 * brackets (seen in real captures: `sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060`): with nine groups the last
 * is taken as the port, otherwise the whole text is the address; such hosts are returned bracketed so
 * every IPv6 host has one spelling.
 */
export function parseHostPort(src: Src, i: number, end: number): HostPort | null {
  const buf = src.buf;
  if (i >= end) return null;
  if (buf[i] === 91) {
    let close = i + 1;
    while (close < end && buf[close] !== 93) {
      const c = buf[close];
      // Zone ids (RFC 6874 "%25eth0") may follow the address.
      if (HOST_CLASS[c] === 0 && c !== 37) return null;
      close++;
    }
    if (close >= end || close === i + 1) return null;
    const host = sub(src, i, close + 1);
    if (close + 1 === end) return { host, port: null };
    if (buf[close + 1] !== 58) return null;
    const port = portAt(buf, close + 2, end);
    return port < 0 ? null : { host, port };
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
    } else if ((cls & HOST_CHAR) === 0) return null;
    else if ((cls & IPV6_CHAR) === 0) allIpv6 = false;
  }
  if (colons === 0) return { host: sub(src, i, end), port: null };
  if (colons === 1) {
    if (firstColon === i) return null;
    const port = portAt(buf, firstColon + 1, end);
    return port < 0 ? null : { host: sub(src, i, firstColon), port };
  }
  // Unbracketed IPv6 only when it is unambiguous: a "::" or all eight groups (plus maybe a port).
  if (!allIpv6 || (!doubleColon && colons < 7) || colons > 8) return null;
  if (colons === 8 && !doubleColon) {
    const port = portAt(buf, lastColon + 1, end);
    return port < 0 ? null : { host: `[${sub(src, i, lastColon)}]`, port };
  }
  return { host: `[${sub(src, i, end)}]`, port: null };
}

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
    const c = buf[j];
    if (c <= 32 || c === 60 || c === 62 || c === 127) return null;
    if (c === 64 && at < 0) at = j;
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
      const c = buf[hostEnd];
      if (c === 59 || c === 63) break;
      if (c === 91) {
        while (hostEnd < end && buf[hostEnd] !== 93) hostEnd++;
        if (hostEnd >= end) return null;
      }
      hostEnd++;
    }
    const hp = parseHostPort(src, hostStart, hostEnd);
    if (hp === null) return null;
    let p = parseParams(src, hostEnd, end, params, true);
    const uri: SipUri = { scheme, user, host: hp.host, port: hp.port, params, raw };
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

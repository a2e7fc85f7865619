/**
 * SIP/SIPS/TEL URI parsing (RFC 3261 §19.1, RFC 3966) plus the small string helpers shared by the
 * header parsers (parameters, quoted strings, comma lists). Inputs are latin1 strings decoded from the
 * packet, so one char is one byte; nothing here throws.
 */
import type { SipUri } from './message.js';

const SP = 32;
const HT = 9;
const DQUOTE = 34;
const BACKSLASH = 92;

export function isWs(c: number): boolean {
  return c === SP || c === HT || c === 13 || c === 10;
}

export function skipWs(s: string, i: number, end: number): number {
  while (i < end && isWs(s.charCodeAt(i))) i++;
  return i;
}

export function trimEndIdx(s: string, start: number, end: number): number {
  while (end > start && isWs(s.charCodeAt(end - 1))) end--;
  return end;
}

/** Index just past the closing quote of the quoted-string starting at s[i] === '"', or -1 if unterminated. */
export function quotedEnd(s: string, i: number, end: number): number {
  for (let j = i + 1; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === DQUOTE) return j + 1;
  }
  return -1;
}

/** Content of a quoted-string with quoted-pairs resolved; s[i] is the opening quote, qEnd from quotedEnd. */
export function unquote(s: string, i: number, qEnd: number): string {
  const inner = s.substring(i + 1, qEnd - 1);
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let j = 0; j < inner.length; j++) {
    const c = inner.charCodeAt(j);
    if (c === BACKSLASH && j + 1 < inner.length) j++;
    out += inner[j];
  }
  return out;
}

/** Returns the value unquoted when it is a complete quoted-string, else unchanged. */
export function unquoteValue(v: string): string {
  if (v.length >= 2 && v.charCodeAt(0) === DQUOTE && quotedEnd(v, 0, v.length) === v.length) {
    return unquote(v, 0, v.length);
  }
  return v;
}

/**
 * Splits s[start,end) at commas that are outside quoted strings and <...> (RFC 3261 §7.3.1: commas inside
 * those are data). Returns flattened [start, end) pairs, trimmed, empty elements dropped (RFC 4475 badinv01).
 */
export function splitList(s: string, start: number, end: number, max = 256): number[] {
  const out: number[] = [];
  let elStart = start;
  let angle = false;
  for (let i = start; i <= end; i++) {
    const c = i < end ? s.charCodeAt(i) : 44;
    if (c === DQUOTE) {
      const q = quotedEnd(s, i, end);
      if (q < 0) i = end - 1;
      else i = q - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && (!angle || i === end)) {
      const a = skipWs(s, elStart, i);
      const b = trimEndIdx(s, a, i);
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
 * Parses `;name[=value]` parameters from s[i] until `end` or a stop char ('?' for URIs, ',' never since
 * lists are split first). Names are lower-cased (case-insensitive); values keep their bytes, quotes
 * included. Returns the index where parsing stopped.
 */
export function parseParams(
  s: string,
  i: number,
  end: number,
  out: Record<string, string>,
  stopAtQuestion = false,
): number {
  let count = 0;
  while (i < end) {
    i = skipWs(s, i, end);
    if (i >= end) break;
    const c = s.charCodeAt(i);
    if (stopAtQuestion && c === 63) break;
    if (c !== 59) {
      // Junk between parameters: skip to the next ';' so one bad byte does not hide the rest.
      while (i < end && s.charCodeAt(i) !== 59 && !(stopAtQuestion && s.charCodeAt(i) === 63)) i++;
      continue;
    }
    i = skipWs(s, i + 1, end);
    const nStart = i;
    while (i < end) {
      const d = s.charCodeAt(i);
      if (d === 61 || d === 59 || isWs(d) || (stopAtQuestion && d === 63)) break;
      i++;
    }
    const nEnd = i;
    i = skipWs(s, i, end);
    let value = '';
    if (i < end && s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1, end);
      const vStart = i;
      if (i < end && s.charCodeAt(i) === DQUOTE) {
        const q = quotedEnd(s, i, end);
        i = q < 0 ? end : q;
      } else {
        while (i < end) {
          const d = s.charCodeAt(i);
          if (d === 59 || isWs(d) || (stopAtQuestion && d === 63)) break;
          i++;
        }
      }
      value = s.substring(vStart, i);
    }
    if (nEnd > nStart && ++count <= 64) {
      const name = lowerAscii(s.substring(nStart, nEnd));
      // A "__proto__" key would be swallowed by the object literal's setter; drop it.
      if (name !== '__proto__' && !Object.hasOwn(out, name)) out[name] = value;
    }
  }
  return i;
}

/** toLowerCase only when needed (most SIP names are already lower case). */
export function lowerAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
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
      out +=
        s.substring(last, i) +
        String.fromCharCode(hexVal(s.charCodeAt(i + 1)) * 16 + hexVal(s.charCodeAt(i + 2)));
      i += 2;
      last = i + 1;
    }
  }
  return out + s.substring(last);
}

/** Parses a decimal port (1..5 digits, ≤ 65535); -1 when invalid. */
function parsePort(s: string, i: number, end: number): number {
  if (end - i < 1 || end - i > 5) return -1;
  let v = 0;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v <= 65535 ? v : -1;
}

function isHostChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 // '_' is not legal in hostnames but common in lab/container names
  );
}

function isIpv6Char(c: number): boolean {
  return isHex(c) || c === 58 || c === 46;
}

export interface HostPort {
  host: string;
  port: number | null;
}

/**
 * Parses host[:port] in s[i,end). IPv6 references keep their brackets. Some devices send IPv6 without
 * brackets (seen in real captures: `sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060`): with nine groups the last
 * is taken as the port, otherwise the whole text is the address; such hosts are returned bracketed so
 * every IPv6 host has one spelling.
 */
export function parseHostPort(s: string, i: number, end: number): HostPort | null {
  if (i >= end) return null;
  if (s.charCodeAt(i) === 91) {
    const close = s.indexOf(']', i);
    if (close < 0 || close >= end || close === i + 1) return null;
    for (let j = i + 1; j < close; j++) {
      const c = s.charCodeAt(j);
      // Zone ids (RFC 6874 "%25eth0") may follow the address.
      if (!isIpv6Char(c) && c !== 37 && !isHostChar(c)) return null;
    }
    const host = s.substring(i, close + 1);
    if (close + 1 === end) return { host, port: null };
    if (s.charCodeAt(close + 1) !== 58) return null;
    const port = parsePort(s, close + 2, end);
    return port < 0 ? null : { host, port };
  }
  let colons = 0;
  let firstColon = -1;
  let lastColon = -1;
  let allIpv6 = true;
  for (let j = i; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c === 58) {
      colons++;
      if (firstColon < 0) firstColon = j;
      lastColon = j;
    } else if (!isHostChar(c)) return null;
    if (!isIpv6Char(c)) allIpv6 = false;
  }
  if (colons === 0) return { host: s.substring(i, end), port: null };
  if (colons === 1) {
    if (firstColon === i) return null;
    const port = parsePort(s, firstColon + 1, end);
    return port < 0 ? null : { host: s.substring(i, firstColon), port };
  }
  if (!allIpv6) return null;
  const text = s.substring(i, end);
  if (colons === 8 && text.indexOf('::') < 0) {
    const port = parsePort(s, lastColon + 1, end);
    if (port < 0) return null;
    return { host: `[${s.substring(i, lastColon)}]`, port };
  }
  return { host: `[${text}]`, port: null };
}

function isSchemeChar(c: number, first: boolean): boolean {
  const alpha = (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
  if (first) return alpha;
  return alpha || (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46;
}

/**
 * Parses a URI in s[start,end) (surrounding whitespace ignored). sip/sips: user (escapes resolved; may
 * contain ';' user parameters), host, port, params, headers. tel: the number goes to `user`, host is ''.
 * Other schemes (urn:, http:...) keep only scheme and raw. Returns null when the text is not a URI.
 */
export function parseUri(s: string, start = 0, end = s.length): SipUri | null {
  start = skipWs(s, start, end);
  end = trimEndIdx(s, start, end);
  if (end - start < 2) return null;
  let i = start;
  if (!isSchemeChar(s.charCodeAt(i), true)) return null;
  i++;
  while (i < end && isSchemeChar(s.charCodeAt(i), false)) i++;
  if (i >= end || s.charCodeAt(i) !== 58) return null;
  const scheme = lowerAscii(s.substring(start, i));
  i++;
  for (let j = i; j < end; j++) {
    const c = s.charCodeAt(j);
    // Whitespace and angle brackets never appear inside a URI (RFC 4475 lwsruri, ltgtruri).
    if (c <= 32 || c === 60 || c === 62 || c === 127) return null;
  }
  const raw = s.substring(start, end);
  const params: Record<string, string> = {};
  if (scheme === 'sip' || scheme === 'sips') {
    // '@' cannot appear unescaped after the userinfo, so the first one ends it.
    const at = s.indexOf('@', i);
    let user: string | null = null;
    let hostStart = i;
    if (at >= 0 && at < end) {
      let userEnd = at;
      // user ":" password — the password is dropped (kept in raw only).
      for (let j = i; j < at; j++) {
        if (s.charCodeAt(j) === 58) {
          userEnd = j;
          break;
        }
      }
      user = percentDecode(s.substring(i, userEnd));
      hostStart = at + 1;
    }
    let hostEnd = hostStart;
    while (hostEnd < end) {
      const c = s.charCodeAt(hostEnd);
      if (c === 59 || c === 63) break;
      if (c === 91) {
        const close = s.indexOf(']', hostEnd);
        if (close < 0 || close >= end) return null;
        hostEnd = close + 1;
        continue;
      }
      hostEnd++;
    }
    const hp = parseHostPort(s, hostStart, hostEnd);
    if (!hp) return null;
    let p = parseParams(s, hostEnd, end, params, true);
    const uri: SipUri = { scheme, user, host: hp.host, port: hp.port, params, raw };
    if (p < end && s.charCodeAt(p) === 63) {
      p++;
      const headers: Record<string, string> = {};
      let n = 0;
      while (p < end && n++ < 64) {
        let amp = s.indexOf('&', p);
        if (amp < 0 || amp > end) amp = end;
        const eq = s.indexOf('=', p);
        const name = eq >= 0 && eq < amp ? s.substring(p, eq) : s.substring(p, amp);
        const value = eq >= 0 && eq < amp ? s.substring(eq + 1, amp) : '';
        if (name.length > 0 && name !== '__proto__') headers[name] = value;
        p = amp + 1;
      }
      uri.headers = headers;
    }
    return uri;
  }
  if (scheme === 'tel') {
    let numEnd = i;
    while (numEnd < end && s.charCodeAt(numEnd) !== 59) numEnd++;
    if (numEnd === i) return null;
    parseParams(s, numEnd, end, params);
    return { scheme, user: percentDecode(s.substring(i, numEnd)), host: '', port: null, params, raw };
  }
  return { scheme, user: null, host: '', port: null, params, raw };
}

/** Decimal digits only in s[i,end) (≤ 15 digits, so the result is exact); -1 when invalid. */
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

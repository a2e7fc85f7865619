/** Via header values (RFC 3261 §20.42, §18.2.1 received; RFC 3581 rport; RFC 5118 IPv6 sent-by). */
import type { SipVia } from './message.js';
import type { Warn } from './name-addr.js';
import { isWs, parseHostPort, parseParams, parseUint, skipWs, splitList } from './uri.js';

function isTokenCode(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 45 ||
    c === 46 ||
    c === 33 ||
    c === 37 ||
    c === 42 ||
    c === 95 ||
    c === 43 ||
    c === 96 ||
    c === 39 ||
    c === 126
  );
}

function tokenEnd(s: string, i: number, end: number): number {
  while (i < end && isTokenCode(s.charCodeAt(i))) i++;
  return i;
}

function upperAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) return s.toUpperCase();
  }
  return s;
}

/**
 * Parses one via-parm in s[start,end): `SIP / 2.0 / UDP host[:port] ;params`. LWS around '/' is allowed
 * (RFC 4475 wsinv). Returns null when the sent-protocol or sent-by is unusable.
 */
export function parseViaValue(s: string, start: number, end: number): SipVia | null {
  let i = skipWs(s, start, end);
  const nStart = i;
  i = tokenEnd(s, i, end);
  const name = s.substring(nStart, i);
  i = skipWs(s, i, end);
  if (name.length === 0 || s.charCodeAt(i) !== 47) return null;
  i = skipWs(s, i + 1, end);
  const vStart = i;
  i = tokenEnd(s, i, end);
  const version = s.substring(vStart, i);
  i = skipWs(s, i, end);
  if (version.length === 0 || s.charCodeAt(i) !== 47) return null;
  i = skipWs(s, i + 1, end);
  const tStart = i;
  i = tokenEnd(s, i, end);
  if (i === tStart || i >= end || !isWs(s.charCodeAt(i))) return null;
  const transport = upperAscii(s.substring(tStart, i));
  i = skipWs(s, i, end);
  const hStart = i;
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c === 59 || isWs(c) || c === 40) break;
    i++;
  }
  const hp = parseHostPort(s, hStart, i);
  if (!hp) return null;
  const params: Record<string, string> = {};
  parseParams(s, i, end, params);
  const branch = params.branch;
  const received = params.received;
  const rportText = params.rport;
  let rport: number | null = null;
  if (rportText !== undefined) {
    // Present without a (valid) value means "please fill in" (RFC 3581), reported as 0.
    const n = parseUint(rportText);
    rport = n >= 0 && n <= 65535 ? n : 0;
  }
  return {
    protocol: `${upperAscii(name)}/${version}`,
    transport,
    host: hp.host,
    port: hp.port,
    branch: branch === undefined ? null : branch,
    received: received === undefined ? null : received,
    rport,
    params,
    raw: s.substring(nStart, end),
  };
}

/** Parses a Via header value (possibly a comma list), appending each via-parm to `out`. */
export function parseVia(s: string, out: SipVia[], warn?: Warn, max = 64): void {
  const ranges = splitList(s, 0, s.length, max);
  for (let k = 0; k < ranges.length; k += 2) {
    const v = parseViaValue(s, ranges[k], ranges[k + 1]);
    if (v) out.push(v);
    else warn?.('malformed Via');
  }
}

/** Via header values (RFC 3261 §20.42, §18.2.1 received; RFC 3581 rport; RFC 5118 IPv6 sent-by). */

import type { SipVia } from '../../core/sip-message.js';
import { TOKEN_CHARS as TOKEN_TABLE } from './detect.js';
import type { Warn } from './name-addr.js';
import {
  hostPortAt,
  isWs,
  listRangesFor,
  parseParams,
  parseUint,
  type Src,
  skipWs,
  splitListAt,
  srcOf,
  sub,
  trimEnd,
} from './uri.js';

/** Module-local alias: keeps loaders that proxy imported bindings out of the byte loop. */
const TOKEN_CHARS = TOKEN_TABLE;

/** Bytes ending the sent-by: ';' (parameters), whitespace, '(' (a comment). */
const SENT_BY_END = new Uint8Array(256);
for (const c of [59, 32, 9, 13, 10, 40]) SENT_BY_END[c] = 1;

/** Upper-cased transport; the usual ones come back as constants. */
function transportOf(src: Src, s: number, e: number): string {
  const buf = src.buf;
  if (e - s === 3) {
    const a = buf[s] & 0xdf;
    const b = buf[s + 1] & 0xdf;
    const c = buf[s + 2] & 0xdf;
    if (a === 0x55 && b === 0x44 && c === 0x50) return 'UDP';
    if (a === 0x54 && b === 0x43 && c === 0x50) return 'TCP';
    if (a === 0x54 && b === 0x4c && c === 0x53) return 'TLS';
    if (a === 0x57 && b === 0x53 && c === 0x53) return 'WSS';
  } else if (e - s === 2 && (buf[s] & 0xdf) === 0x57 && (buf[s + 1] & 0xdf) === 0x53) return 'WS';
  return sub(src, s, e).toUpperCase();
}

function tokenEnd(buf: Buffer, i: number, end: number): number {
  while (i < end && TOKEN_CHARS[buf[i]] === 1) i++;
  return i;
}

function isSip20(buf: Buffer, n: number, ne: number, v: number, ve: number): boolean {
  return (
    ne - n === 3 &&
    (buf[n] & 0xdf) === 0x53 &&
    (buf[n + 1] & 0xdf) === 0x49 &&
    (buf[n + 2] & 0xdf) === 0x50 &&
    ve - v === 3 &&
    buf[v] === 0x32 &&
    buf[v + 1] === 0x2e &&
    buf[v + 2] === 0x30
  );
}

/**
 * Parses one via-parm in [start,end): `SIP / 2.0 / UDP host[:port] ;params`. LWS around '/' is allowed
 * (RFC 4475 wsinv). `params` holds every parameter (branch, received, rport included). Returns null when the
 * sent-protocol or sent-by is unusable.
 */
export function parseViaAt(src: Src, start: number, end: number): SipVia | null {
  const buf = src.buf;
  let i = skipWs(buf, start, end);
  const nStart = i;
  i = tokenEnd(buf, i, end);
  const nEnd = i;
  i = skipWs(buf, i, end);
  if (nEnd === nStart || i >= end || buf[i] !== 47) return null;
  i = skipWs(buf, i + 1, end);
  const vStart = i;
  i = tokenEnd(buf, i, end);
  const vEnd = i;
  i = skipWs(buf, i, end);
  if (vEnd === vStart || i >= end || buf[i] !== 47) return null;
  i = skipWs(buf, i + 1, end);
  const tStart = i;
  i = tokenEnd(buf, i, end);
  if (i === tStart || i >= end || !isWs(buf[i])) return null;
  const transport = transportOf(src, tStart, i);
  i = skipWs(buf, i, end);
  const hStart = i;
  while (i < end && SENT_BY_END[buf[i]] === 0) i++;
  const params: Record<string, string> = {};
  const via: SipVia = {
    protocol: 'SIP/2.0',
    transport,
    host: '',
    port: null,
    branch: null,
    received: null,
    rport: null,
    params,
    raw: sub(src, nStart, end),
  };
  // The sent-by is written straight into the result.
  if (!hostPortAt(src, hStart, i, via)) return null;
  parseParams(src, i, end, params);
  const branch = params.branch;
  if (branch !== undefined) via.branch = branch;
  const received = params.received;
  if (received !== undefined) via.received = received;
  const rportText = params.rport;
  if (rportText !== undefined) {
    // Present without a (valid) value means "please fill in" (RFC 3581), reported as 0.
    const n = parseUint(rportText);
    via.rport = n >= 0 && n <= 65535 ? n : 0;
  }
  if (!isSip20(buf, nStart, nEnd, vStart, vEnd))
    via.protocol = `${sub(src, nStart, nEnd).toUpperCase()}/${sub(src, vStart, vEnd)}`;
  return via;
}

/**
 * Parses a Via header value (possibly a comma list) in [start,end), appending each via-parm to `out`.
 * `ranges` is the list-splitting scratch (see splitListAt). `noComma`: the caller knows the value holds
 * no ',' at all, so it is one element and the list scan is skipped (same result).
 */
export function parseViaListAt(
  src: Src,
  start: number,
  end: number,
  out: SipVia[],
  ranges: Int32Array,
  warn?: Warn,
  max = 64,
  noComma = false,
): void {
  if (noComma) {
    const a = skipWs(src.buf, start, end);
    const b = trimEnd(src.buf, a, end);
    if (b > a && out.length < max) {
      const v = parseViaAt(src, a, b);
      if (v !== null) out.push(v);
      else warn?.('malformed Via');
    }
    return;
  }
  const n = splitListAt(src.buf, start, end, ranges, max - out.length);
  // parseViaAt does not split lists, so `ranges` stays valid through the loop.
  for (let k = 0; k < 2 * n; k += 2) {
    const v = parseViaAt(src, ranges[k], ranges[k + 1]);
    if (v !== null) out.push(v);
    else warn?.('malformed Via');
  }
}

/** parseViaListAt for a string. */
export function parseVia(s: string, out: SipVia[], warn?: Warn, max = 64): void {
  parseViaListAt(srcOf(s), 0, s.length, out, listRangesFor(max), warn, max);
}

/**
 * MIME multipart bodies (RFC 2046 §5.1) as SIP uses them (RFC 5621): SDP next to ISUP, PIDF or
 * resource lists. Parts are views into the packet; nested multiparts are flattened into their leaves.
 */
import type { SipBodyPart } from '../../core/sip-message.js';
import type { Warn } from './name-addr.js';
import { lowerSub, parseParams, type Src, skipWs, srcOf, trimEnd, unquoteValue } from './uri.js';

const CR = 13;
const LF = 10;

export const MAX_BODY_PARTS = 64;
const MAX_DEPTH = 4;
const MAX_PART_HEADERS = 64;

/** Media type of a Content-Type value in [s,e): lower-cased, without parameters ("" when empty). */
export function mediaTypeAt(src: Src, s: number, e: number): string {
  const buf = src.buf;
  let semi = s;
  while (semi < e && buf[semi] !== 59) semi++;
  const st = skipWs(buf, s, semi);
  return lowerSub(src, st, trimEnd(buf, st, semi));
}

/** mediaTypeAt for a string. */
export function mediaType(contentType: string): string {
  return mediaTypeAt(srcOf(contentType), 0, contentType.length);
}

/** The boundary parameter of a multipart Content-Type, quoted or not; null when absent or invalid. */
export function multipartBoundary(contentType: string): string | null {
  const semi = contentType.indexOf(';');
  if (semi < 0) return null;
  const params: Record<string, string> = {};
  parseParams(srcOf(contentType), semi, contentType.length, params);
  const raw = params.boundary;
  if (raw === undefined) return null;
  const b = unquoteValue(raw);
  // RFC 2046: 1..70 characters; an unterminated quote is not a boundary.
  return b.length > 0 && b.length <= 70 && b.charCodeAt(0) !== 34 ? b : null;
}

/** Finds `--boundary` at a line start in buf[from,end); returns its index or -1. */
function findDelimiter(buf: Buffer, from: number, end: number, delim: Buffer, bodyStart: number): number {
  const n = delim.length;
  const first = delim[0];
  for (let i = from; i + n <= end; i++) {
    if (buf[i] !== first) continue;
    if (i !== bodyStart && buf[i - 1] !== LF) continue;
    let k = 1;
    while (k < n && buf[i + k] === delim[k]) k++;
    if (k < n) continue;
    // A longer boundary sharing this prefix is not a match.
    const c = i + n < end ? buf[i + n] : LF;
    if (c === 0x2d || c === CR || c === LF || c === 0x20 || c === 0x09) return i;
  }
  return -1;
}

/** Content-Type of a part, from its header block buf[start,end). */
function partContentType(buf: Buffer, start: number, end: number): string | null {
  let p = start;
  let count = 0;
  while (p < end && count++ < MAX_PART_HEADERS) {
    let e = p;
    while (e < end && buf[e] !== LF) e++;
    let colon = p;
    while (colon < e && buf[colon] !== 58) colon++;
    const nameEnd = trimEnd(buf, p, colon);
    const n = nameEnd - p;
    const isCt =
      colon < e &&
      ((n === 1 && (buf[p] | 32) === 0x63) ||
        (n === 12 && buf.toString('latin1', p, nameEnd).toLowerCase() === 'content-type'));
    if (isCt) return buf.toString('latin1', colon + 1, e).trim();
    p = e + 1;
  }
  return null;
}

/**
 * Splits a multipart body buf[off,end) with `boundary`, appending leaf parts to `out`. Part bodies exclude
 * the CRLF that belongs to the next delimiter. A missing close delimiter keeps what was found (warned).
 */
export function parseMultipart(
  buf: Buffer,
  off: number,
  end: number,
  boundary: string,
  out: SipBodyPart[],
  warn?: Warn,
  depth = 0,
): void {
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  let d = findDelimiter(buf, off, end, delim, off);
  if (d < 0) {
    warn?.('multipart: no boundary found');
    return;
  }
  for (;;) {
    let p = d + delim.length;
    // Close delimiter "--boundary--" ends the body; the epilogue is ignored.
    if (p + 1 < end && buf[p] === 0x2d && buf[p + 1] === 0x2d) return;
    while (p < end && buf[p] !== LF) p++; // transport padding up to the line end
    p++;
    if (p >= end) {
      warn?.('multipart: missing close delimiter');
      return;
    }
    const next = findDelimiter(buf, p, end, delim, off);
    let partEnd = next < 0 ? end : next;
    if (next >= 0) {
      // The line break before a delimiter is part of the delimiter.
      if (partEnd > p && buf[partEnd - 1] === LF) partEnd--;
      if (partEnd > p && buf[partEnd - 1] === CR) partEnd--;
    }
    addPart(buf, p, partEnd, out, warn, depth);
    if (out.length >= MAX_BODY_PARTS) {
      warn?.('multipart: too many parts');
      return;
    }
    if (next < 0) {
      warn?.('multipart: missing close delimiter');
      return;
    }
    d = next;
  }
}

/** One part: headers, an empty line, content. A part with no headers starts with the empty line. */
function addPart(
  buf: Buffer,
  start: number,
  end: number,
  out: SipBodyPart[],
  warn: Warn | undefined,
  depth: number,
) {
  let hdrEnd = start;
  let bodyStart = -1;
  while (hdrEnd < end) {
    if (buf[hdrEnd] === LF) {
      bodyStart = hdrEnd + 1;
      break;
    }
    if (buf[hdrEnd] === CR && hdrEnd + 1 < end && buf[hdrEnd + 1] === LF) {
      bodyStart = hdrEnd + 2;
      break;
    }
    while (hdrEnd < end && buf[hdrEnd] !== LF) hdrEnd++;
    hdrEnd++;
  }
  if (bodyStart < 0) {
    warn?.('multipart: part without header/body separator');
    bodyStart = Math.min(hdrEnd, end);
  }
  const ct = partContentType(buf, start, Math.min(hdrEnd, end));
  const type = ct === null ? null : mediaType(ct);
  if (ct !== null && type?.startsWith('multipart/') && depth + 1 < MAX_DEPTH) {
    const b = multipartBoundary(ct);
    if (b !== null) {
      parseMultipart(buf, bodyStart, end, b, out, warn, depth + 1);
      return;
    }
  }
  out.push({ contentType: type === '' ? null : type, body: buf.subarray(bodyStart, end) });
}

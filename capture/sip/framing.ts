/**
 * Message framing on stream transports (TCP, TLS after decryption): RFC 3261 §18.3 says the header
 * section ends at the first empty line and Content-Length gives the body size. WebSocket and datagram
 * transports carry whole messages and need none of this.
 */
import { firstLineEnd, LOWER, looksLikeSip, MAX_START_LINE, TOKEN_CHARS, validRange } from './detect.js';

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;

/** A header section longer than this is treated as garbage so a hostile peer cannot make us buffer forever. */
export const MAX_STREAM_HEADER_BYTES = 256 * 1024;
/** Largest Content-Length accepted on a stream; SIP bodies are small, and waiting for 4 GB is a DoS. */
export const MAX_STREAM_BODY_BYTES = 1024 * 1024;

/** Skips CRLF keep-alives (RFC 5626 §3.5.1 "\r\n\r\n" ping, "\r\n" pong; RFC 3261 §7.5 stray CRLFs). */
export function skipKeepalive(buf: Buffer, off: number, end: number): number {
  if (!validRange(buf, off, end)) return off;
  while (off < end && (buf[off] === CR || buf[off] === LF)) off++;
  return off;
}

const CONTENT_LENGTH = 'content-length';

/** True when the header line at p names Content-Length (long or compact `l`), any case; returns value start. */
function contentLengthValueStart(buf: Buffer, p: number, lineEnd: number): number {
  let i = p;
  const first = LOWER[buf[i]];
  if (first === 0x6c && i + 1 < lineEnd && (buf[i + 1] === 0x3a || buf[i + 1] === SP || buf[i + 1] === HT)) {
    i++;
  } else if (first === 0x63 && lineEnd - p > CONTENT_LENGTH.length) {
    for (let k = 0; k < CONTENT_LENGTH.length; k++) {
      if (LOWER[buf[i + k]] !== CONTENT_LENGTH.charCodeAt(k)) return -1;
    }
    i += CONTENT_LENGTH.length;
  } else return -1;
  while (i < lineEnd && (buf[i] === SP || buf[i] === HT)) i++;
  return i < lineEnd && buf[i] === 0x3a ? i + 1 : -1;
}

/** Decimal value in buf[p,lineEnd) with surrounding whitespace; -1 when not a plain number. */
function parseLength(buf: Buffer, p: number, lineEnd: number): number {
  while (p < lineEnd && (buf[p] === SP || buf[p] === HT)) p++;
  let e = lineEnd;
  while (e > p && (buf[e - 1] === SP || buf[e - 1] === HT || buf[e - 1] === CR)) e--;
  if (e === p || e - p > 9) return -1;
  let v = 0;
  for (; p < e; p++) {
    const c = buf[p];
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v;
}

/**
 * Length of the first complete SIP message at `off` (leading CRLF keep-alives included in the count,
 * the parser skips them): > 0 complete; -1 need more bytes; -2 not SIP or unrecoverable (bad or
 * conflicting Content-Length, oversized headers or body): the caller should resynchronise.
 * Content-Length absent means an empty body (on a stream it is mandatory, RFC 3261 §20.14).
 */
export function sipMessageLength(buf: Buffer, off: number, end: number): number {
  const total = sipMessageTotalLength(buf, off, end);
  return total > 0 && end - off < total ? -1 : total;
}

/**
 * Like sipMessageLength, but as soon as the header section is complete it returns the message's
 * total length even while the body is still arriving, so a stream reader can wait for that many
 * bytes without scanning the headers again: > 0 total length; -1 the header section is not complete;
 * -2 not SIP or unrecoverable.
 */
export function sipMessageTotalLength(buf: Buffer, off: number, end: number): number {
  if (!validRange(buf, off, end)) return -2;
  const p0 = skipKeepalive(buf, off, end);
  if (p0 >= end) return -1;
  const lineEnd = firstLineEnd(buf, p0, end);
  if (lineEnd < 0) {
    if (end - p0 >= MAX_START_LINE) return -2;
    // Partial start line: keep waiting only while it can still become one.
    if (TOKEN_CHARS[buf[p0]] !== 1) return -2;
    for (let i = p0; i < end; i++) {
      const b = buf[i];
      if ((b < SP && b !== HT && b !== CR) || b === 0x7f) return -2;
    }
    return -1;
  }
  if (!looksLikeSip(buf, p0, lineEnd)) return -2;
  let p = lineEnd;
  let contentLength = -1;
  const hdrLimit = p0 + MAX_STREAM_HEADER_BYTES;
  for (;;) {
    if (p >= end) return end >= hdrLimit ? -2 : -1;
    if (p >= hdrLimit) return -2;
    const b = buf[p];
    if (b === LF) {
      p++;
      break;
    }
    if (b === CR) {
      if (p + 1 >= end) return -1;
      if (buf[p + 1] === LF) {
        p += 2;
        break;
      }
    }
    let e = p;
    const lim = Math.min(end, hdrLimit);
    while (e < lim && buf[e] !== LF) e++;
    if (e >= lim) return end >= hdrLimit ? -2 : -1;
    const v = contentLengthValueStart(buf, p, e);
    if (v >= 0) {
      const n = parseLength(buf, v, e);
      if (n < 0 || n > MAX_STREAM_BODY_BYTES) return -2;
      // Differing duplicates (RFC 4475 mcl01) leave the body length ambiguous: refuse rather than guess.
      if (contentLength >= 0 && contentLength !== n) return -2;
      contentLength = n;
    }
    p = e + 1;
  }
  return p - off + Math.max(contentLength, 0);
}

/**
 * SIP detection by content (any port, any transport) and the byte-level helpers the SIP parser shares.
 * Detection only looks at the first line, so it is cheap enough to run on every UDP/TCP payload.
 */

/** Longest start line we accept; real Request-URIs are far shorter, and a bound keeps detection O(1). */
export const MAX_START_LINE = 8192;
/** No real method is this long; the bound lets junk fail fast. */
const MAX_METHOD = 128;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;

/** RFC 3261 token characters: alphanum and - . ! % * _ + ` ' ~ */
export const TOKEN_CHARS = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) TOKEN_CHARS[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN_CHARS[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN_CHARS[c] = 1;
for (const ch of "-.!%*_+`'~") TOKEN_CHARS[ch.charCodeAt(0)] = 1;

/** ASCII lower-casing table (other bytes map to themselves). */
export const LOWER = new Uint8Array(256);
for (let c = 0; c < 256; c++) LOWER[c] = c >= 0x41 && c <= 0x5a ? c + 32 : c;

/** True when [off, end) is a usable range of the Buffer (callers pass offsets from packet decoders). */
export function validRange(buf: Buffer, off: number, end: number): boolean {
  return (
    Buffer.isBuffer(buf) &&
    Number.isInteger(off) &&
    Number.isInteger(end) &&
    off >= 0 &&
    end <= buf.length &&
    off <= end
  );
}

/** True when buf[p..] starts with "SIP/2.0" (the literal is case-insensitive in the ABNF). */
function isSipVersionAt(buf: Buffer, p: number, end: number): boolean {
  return (
    p + 7 <= end &&
    LOWER[buf[p]] === 0x73 &&
    LOWER[buf[p + 1]] === 0x69 &&
    LOWER[buf[p + 2]] === 0x70 &&
    buf[p + 3] === 0x2f &&
    buf[p + 4] === 0x32 &&
    buf[p + 5] === 0x2e &&
    buf[p + 6] === 0x30
  );
}

/** Index just past the line's LF, or -1 when no LF is found before `lim`. */
function lineEnd(buf: Buffer, p: number, lim: number): number {
  for (; p < lim; p++) if (buf[p] === LF) return p + 1;
  return -1;
}

/**
 * True for a SIP request line (`METHOD SP scheme:... SP SIP/2.0 CRLF`) or status line
 * (`SIP/2.0 SP 3DIGIT [SP reason] CRLF`). Bare LF is accepted; extra spaces between elements are
 * tolerated because the parser tolerates them too (RFC 4475 lwsstart/trws).
 */
export function looksLikeSip(buf: Buffer, off: number, end: number): boolean {
  if (!validRange(buf, off, end) || end - off < 12) return false;
  const lim = Math.min(end, off + MAX_START_LINE);
  let p = off;
  if (isSipVersionAt(buf, p, lim) && p + 7 < lim && buf[p + 7] === SP) {
    p += 7;
    while (p < lim && buf[p] === SP) p++;
    if (p + 3 > lim) return false;
    const d0 = buf[p];
    if (d0 < 0x31 || d0 > 0x36 || !isDigit(buf[p + 1]) || !isDigit(buf[p + 2])) return false;
    p += 3;
    const c = p < lim ? buf[p] : -1;
    if (c !== SP && c !== CR && c !== LF) return false;
    // Reason phrases may carry UTF-8 but never control characters other than HT.
    for (; p < lim; p++) {
      const b = buf[p];
      if (b === LF) return true;
      if (b === CR) return p + 1 < lim && buf[p + 1] === LF;
      if ((b < SP && b !== HT) || b === 0x7f) return false;
    }
    return false;
  }
  // Method: token characters (RFC 4475 intmeth uses 42).
  const mStart = p;
  while (p < lim && TOKEN_CHARS[buf[p]] === 1) p++;
  if (p === mStart || p - mStart > MAX_METHOD || p >= lim || buf[p] !== SP) return false;
  while (p < lim && buf[p] === SP) p++;
  // Request-URI: a scheme (ALPHA *(ALPHA / DIGIT / + / - / .)) then ':' then visible characters.
  if (p >= lim || !isAlpha(buf[p])) return false;
  p++;
  while (
    p < lim &&
    (isAlpha(buf[p]) || isDigit(buf[p]) || buf[p] === 0x2b || buf[p] === 0x2d || buf[p] === 0x2e)
  )
    p++;
  if (p >= lim || buf[p] !== 0x3a) return false;
  p++;
  const uriRest = p;
  while (p < lim && buf[p] > SP && buf[p] !== 0x7f) p++;
  if (p === uriRest || p >= lim || buf[p] !== SP) return false;
  while (p < lim && buf[p] === SP) p++;
  if (!isSipVersionAt(buf, p, lim)) return false;
  p += 7;
  while (p < lim && buf[p] === SP) p++;
  if (p >= lim) return false;
  if (buf[p] === LF) return true;
  return buf[p] === CR && p + 1 < lim && buf[p + 1] === LF;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Exposed for framing: index just past the first line's LF, or -1. */
export function firstLineEnd(buf: Buffer, off: number, end: number): number {
  return lineEnd(buf, off, Math.min(end, off + MAX_START_LINE));
}

/** True when buf[off] starts a HEP3 frame ("HEP3"); the caller has checked 4 bytes are there. */
export function isHep3(buf: Buffer, off: number): boolean {
  return buf[off] === 0x48 && buf[off + 1] === 0x45 && buf[off + 2] === 0x50 && buf[off + 3] === 0x33;
}

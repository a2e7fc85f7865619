/**
 * name-addr / addr-spec values (RFC 3261 §20.10, §25.1) as used by From, To, Contact, Refer-To and
 * P-Asserted-Identity. Lenient: malformed values still yield a result (uri null) plus a warning.
 */
import type { SipNameAddr } from '../../core/sip-message.js';
import {
  listRangesFor,
  parseParams,
  parseUriAt,
  quotedEnd,
  type Src,
  skipWs,
  splitListAt,
  srcOf,
  sub,
  trimEnd,
  unquote,
} from './uri.js';

export type Warn = (warning: string) => void;

/**
 * Parses one name-addr or addr-spec in [start,end). `params` holds every header parameter (tag included);
 * `tag` is a shortcut. In addr-spec form (no <>) every ';' starts a header parameter, as §20.10 requires.
 * A lone `*` (Contact: * in REGISTER) gives uri null, raw '*'.
 */
export function parseNameAddrAt(src: Src, start: number, end: number, warn?: Warn): SipNameAddr {
  const buf = src.buf;
  start = skipWs(buf, start, end);
  end = trimEnd(buf, start, end);
  const raw = sub(src, start, end);
  const params: Record<string, string> = {};
  const result: SipNameAddr = { displayName: null, uri: null, tag: null, params, raw };
  if (end - start === 1 && buf[start] === 42) return result;
  let i = start;
  let displayName: string | null = null;
  if (i < end && buf[i] === 34) {
    const q = quotedEnd(buf, i, end);
    if (q < 0) {
      // RFC 4475 quotbal: recover the URI if a '<' follows, so the tag is not lost.
      warn?.('unterminated quoted string');
      let lt = i + 1;
      while (lt < end && buf[lt] !== 60) lt++;
      if (lt >= end) return result;
      displayName = sub(src, i + 1, trimEnd(buf, i + 1, lt));
      i = lt;
    } else {
      displayName = unquote(src, i, q);
      i = skipWs(buf, q, end);
    }
  }
  let lt = -1;
  if (i < end && buf[i] === 60) lt = i;
  else if (displayName === null) {
    // Token display names (RFC 4475 lwsdisp: `caller<sip:...>`, baddn: `Bell, Alexander <sip:...>`).
    for (let j = i; j < end; j++) {
      const c = buf[j];
      if (c === 60) {
        lt = j;
        break;
      }
      if (c === 59) break; // a ';' before any '<' means addr-spec form
    }
    if (lt > i) {
      const dEnd = trimEnd(buf, i, lt);
      if (dEnd > i) displayName = sub(src, i, dEnd);
    }
  }
  result.displayName = displayName;
  if (lt >= 0) {
    let gt = lt + 1;
    while (gt < end && buf[gt] !== 62) gt++;
    if (gt >= end) warn?.('missing > in name-addr');
    const uStart = skipWs(buf, lt + 1, gt);
    const uEnd = trimEnd(buf, uStart, gt);
    // RFC 4475 badaspec: spaces inside <> are invalid; ignoring them is the liberal reading.
    if (uStart !== lt + 1 || uEnd !== gt) warn?.('whitespace inside <>');
    result.uri = parseUriAt(src, uStart, uEnd);
    if (gt < end) parseParams(src, gt + 1, end, params);
  } else {
    if (displayName !== null) {
      warn?.('missing <uri> after display name');
      return result;
    }
    let semi = i;
    while (semi < end && buf[semi] !== 59) semi++;
    result.uri = parseUriAt(src, i, semi);
    parseParams(src, semi, end, params);
  }
  if (result.uri === null) warn?.('unparsable uri in name-addr');
  const tag = params.tag;
  result.tag = tag === undefined ? null : tag;
  return result;
}

/**
 * Parses a comma-separated list (Contact, P-Asserted-Identity) in [start,end), appending to `out`.
 * `ranges` is the list-splitting scratch (see splitListAt).
 */
export function parseNameAddrListAt(
  src: Src,
  start: number,
  end: number,
  out: SipNameAddr[],
  ranges: Int32Array,
  warn?: Warn,
  max = 64,
): void {
  const n = splitListAt(src.buf, start, end, ranges, max - out.length);
  // parseNameAddrAt does not split lists, so `ranges` stays valid through the loop.
  for (let k = 0; k < 2 * n; k += 2) out.push(parseNameAddrAt(src, ranges[k], ranges[k + 1], warn));
}

/** parseNameAddrAt for a string. */
export function parseNameAddr(s: string, warn?: Warn): SipNameAddr {
  return parseNameAddrAt(srcOf(s), 0, s.length, warn);
}

/** parseNameAddrListAt for a string. */
export function parseNameAddrList(s: string, out: SipNameAddr[], warn?: Warn, max = 64): void {
  parseNameAddrListAt(srcOf(s), 0, s.length, out, listRangesFor(max), warn, max);
}

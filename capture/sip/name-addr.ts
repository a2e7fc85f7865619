/**
 * name-addr / addr-spec values (RFC 3261 §20.10, §25.1) as used by From, To, Contact, Refer-To and
 * P-Asserted-Identity. Lenient: malformed values still yield a result (uri null) plus a warning.
 */
import type { SipNameAddr } from './message.js';
import { parseParams, parseUri, quotedEnd, skipWs, splitList, trimEndIdx, unquote } from './uri.js';

export type Warn = (warning: string) => void;

/**
 * Parses one name-addr or addr-spec in s[start,end). `params` holds every header parameter (tag
 * included); `tag` is a shortcut. In addr-spec form (no <>) every ';' starts a header parameter, as
 * §20.10 requires.
 */
export function parseNameAddr(s: string, start = 0, end = s.length, warn?: Warn): SipNameAddr {
  start = skipWs(s, start, end);
  end = trimEndIdx(s, start, end);
  const raw = s.substring(start, end);
  const params: Record<string, string> = {};
  const result: SipNameAddr = { displayName: null, uri: null, tag: null, params, raw };
  if (end - start === 1 && s.charCodeAt(start) === 42) return result; // Contact: *
  let i = start;
  let displayName: string | null = null;
  if (i < end && s.charCodeAt(i) === 34) {
    const q = quotedEnd(s, i, end);
    if (q < 0) {
      // RFC 4475 quotbal: recover the URI if a '<' follows, so the tag is not lost.
      warn?.('unterminated quoted string');
      const lt = s.indexOf('<', i);
      if (lt < 0 || lt >= end) return result;
      displayName = s.substring(i + 1, trimEndIdx(s, i + 1, lt));
      i = lt;
    } else {
      displayName = unquote(s, i, q);
      i = skipWs(s, q, end);
    }
  }
  let lt = -1;
  if (i < end && s.charCodeAt(i) === 60) lt = i;
  else if (displayName === null) {
    // Token display names (RFC 4475 lwsdisp: `caller<sip:...>`, baddn: `Bell, Alexander <sip:...>`).
    for (let j = i; j < end; j++) {
      const c = s.charCodeAt(j);
      if (c === 60) {
        lt = j;
        break;
      }
      if (c === 59) break; // a ';' before any '<' means addr-spec form
    }
    if (lt > i) {
      const dEnd = trimEndIdx(s, i, lt);
      if (dEnd > i) displayName = s.substring(i, dEnd);
    }
  }
  result.displayName = displayName;
  if (lt >= 0) {
    let gt = s.indexOf('>', lt + 1);
    if (gt < 0 || gt >= end) {
      warn?.('missing > in name-addr');
      gt = end;
    }
    const uStart = skipWs(s, lt + 1, gt);
    const uEnd = trimEndIdx(s, uStart, gt);
    // RFC 4475 badaspec: spaces inside <> are invalid; ignoring them is the liberal reading.
    if (uStart !== lt + 1 || uEnd !== gt) warn?.('whitespace inside <>');
    result.uri = parseUri(s, uStart, uEnd);
    if (gt < end) parseParams(s, gt + 1, end, params);
  } else {
    if (displayName !== null) {
      warn?.('missing <uri> after display name');
      return result;
    }
    let semi = i;
    while (semi < end && s.charCodeAt(semi) !== 59) semi++;
    result.uri = parseUri(s, i, semi);
    parseParams(s, semi, end, params);
  }
  if (result.uri === null) warn?.('unparsable uri in name-addr');
  const tag = params.tag;
  result.tag = tag === undefined ? null : tag;
  return result;
}

/** Parses a comma-separated list (Contact, P-Asserted-Identity), appending to `out`. */
export function parseNameAddrList(s: string, out: SipNameAddr[], warn?: Warn, max = 64): void {
  const ranges = splitList(s, 0, s.length, max);
  for (let k = 0; k < ranges.length; k += 2) out.push(parseNameAddr(s, ranges[k], ranges[k + 1], warn));
}

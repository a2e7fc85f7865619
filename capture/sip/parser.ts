/**
 * RFC 3261 SIP message parser working on a Buffer range: the start line and headers are scanned as bytes,
 * only header values (and the pieces derived from them) become strings, decoded as latin1 so every byte
 * survives. The body stays a view. Hostile input never throws: the result is either an error (no usable
 * start line) or a message plus warnings, and work is bounded (header count, line length, list sizes).
 */
import { LOWER, TOKEN_CHARS, validRange } from './detect.js';
import type { SipBodyPart, SipCSeq, SipMessage, SipParseResult, SipReason, SipUri } from './message.js';
import { mediaTypeAt, multipartBoundary, parseMultipart } from './multipart.js';
import { parseNameAddrAt, parseNameAddrListAt } from './name-addr.js';
import { parseSdp } from './sdp.js';
import {
  parseParams,
  parseUint,
  parseUintAt,
  parseUriAt,
  type Src,
  skipWs,
  splitList,
  srcOf,
  sub,
  trimEnd,
  unquoteValue,
} from './uri.js';
import { parseViaListAt } from './via.js';

export interface SipParseOptions {
  /** TCP/TLS/SCTP stream framing: a missing Content-Length means an empty body (RFC 3261 §18.3). */
  transportIsStream?: boolean;
}

/** Headers kept per message; the rest are skipped with a warning. */
export const MAX_HEADERS = 500;
/** One header line (after unfolding) longer than this is skipped with a warning. */
export const MAX_HEADER_LINE = 64 * 1024;
/** Header bytes examined at most; beyond it the message is treated as cut (datagrams never get close). */
export const MAX_HEADER_SECTION = 1024 * 1024;
const MAX_LIST_ITEMS = 64;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;

const EMPTY = Buffer.alloc(0);

// Header ids for the fields the model extracts.
const H_OTHER = 0;
const H_VIA = 1;
const H_FROM = 2;
const H_TO = 3;
const H_CALL_ID = 4;
const H_CSEQ = 5;
const H_CONTACT = 6;
const H_MAX_FORWARDS = 7;
const H_CONTENT_TYPE = 8;
const H_CONTENT_LENGTH = 9;
const H_REASON = 10;
const H_USER_AGENT = 11;
const H_SERVER = 12;
const H_PAI = 13;
/** X-CID .. X-Leg-Call-ID: id - H_CORR is the priority (lower wins). */
const H_CORR = 20;

interface HeaderDef {
  /** Canonical spelling, or null to keep the sender's (unknown-to-RFC headers such as X-CID). */
  canonical: string | null;
  lower: string;
  id: number;
}

const COMPACT: Record<string, string> = {
  i: 'Call-ID',
  f: 'From',
  t: 'To',
  v: 'Via',
  m: 'Contact',
  l: 'Content-Length',
  c: 'Content-Type',
  k: 'Supported',
  s: 'Subject',
  e: 'Content-Encoding',
  o: 'Event',
  u: 'Allow-Events',
  r: 'Refer-To',
  b: 'Referred-By',
  x: 'Session-Expires',
  a: 'Accept-Contact',
  j: 'Reject-Contact',
  d: 'Request-Disposition',
  y: 'Identity',
  n: 'Identity-Info',
};

const SPECIAL: Record<string, number> = {
  Via: H_VIA,
  From: H_FROM,
  To: H_TO,
  'Call-ID': H_CALL_ID,
  CSeq: H_CSEQ,
  Contact: H_CONTACT,
  'Max-Forwards': H_MAX_FORWARDS,
  'Content-Type': H_CONTENT_TYPE,
  'Content-Length': H_CONTENT_LENGTH,
  Reason: H_REASON,
  'User-Agent': H_USER_AGENT,
  Server: H_SERVER,
  'P-Asserted-Identity': H_PAI,
};

/** Registered names whose canonical spelling we restore (RFC 3261 §20 and common extensions). */
const KNOWN = [
  ...Object.values(COMPACT),
  ...Object.keys(SPECIAL),
  'Accept',
  'Accept-Encoding',
  'Accept-Language',
  'Alert-Info',
  'Allow',
  'Authentication-Info',
  'Authorization',
  'Call-Info',
  'Content-Disposition',
  'Content-Language',
  'Date',
  'Error-Info',
  'Expires',
  'In-Reply-To',
  'Min-Expires',
  'MIME-Version',
  'Organization',
  'Priority',
  'Proxy-Authenticate',
  'Proxy-Authorization',
  'Proxy-Require',
  'Record-Route',
  'Reply-To',
  'Require',
  'Retry-After',
  'Route',
  'Timestamp',
  'Unsupported',
  'Warning',
  'WWW-Authenticate',
  'P-Preferred-Identity',
  'P-Charging-Vector',
  'P-Access-Network-Info',
  'P-Called-Party-ID',
  'Privacy',
  'RAck',
  'RSeq',
  'Min-SE',
  'Replaces',
  'Path',
  'Service-Route',
  'Diversion',
  'History-Info',
  'Remote-Party-ID',
  'Subscription-State',
  'SIP-ETag',
  'SIP-If-Match',
];

/** Correlation headers of B2BUA legs, in priority order. */
const CORRELATION = ['X-CID', 'X-Call-ID', 'X-Correlation-ID', 'X-Orig-Call-ID', 'X-Leg-Call-ID'];

function nameHash(lower: string): number {
  let h = 0;
  for (let i = 0; i < lower.length; i++) h = (Math.imul(h, 31) + lower.charCodeAt(i)) | 0;
  return h;
}

const HEADER_DEFS: HeaderDef[] = [];
/** name hash → indexes into HEADER_DEFS (collisions are resolved by comparing bytes). */
const HEADER_TABLE = new Map<number, number[]>();
function addDef(def: HeaderDef): void {
  if (HEADER_DEFS.some((d) => d.lower === def.lower)) return;
  const h = nameHash(def.lower);
  HEADER_DEFS.push(def);
  const list = HEADER_TABLE.get(h);
  if (list === undefined) HEADER_TABLE.set(h, [HEADER_DEFS.length - 1]);
  else list.push(HEADER_DEFS.length - 1);
}
for (const name of KNOWN)
  addDef({ canonical: name, lower: name.toLowerCase(), id: SPECIAL[name] ?? H_OTHER });
for (const [c, name] of Object.entries(COMPACT))
  addDef({ canonical: name, lower: c, id: SPECIAL[name] ?? H_OTHER });
CORRELATION.forEach((name, k) => {
  addDef({ canonical: null, lower: name.toLowerCase(), id: H_CORR + k });
});

/** Looks the header name buf[s,e) up case-insensitively without allocating; HEADER_DEFS index or -1. */
function lookupHeader(buf: Buffer, s: number, e: number, h: number): number {
  const list = HEADER_TABLE.get(h);
  if (list === undefined) return -1;
  for (const idx of list) {
    const lower = HEADER_DEFS[idx].lower;
    if (lower.length !== e - s) continue;
    let k = 0;
    while (k < lower.length && LOWER[buf[s + k]] === lower.charCodeAt(k)) k++;
    if (k === lower.length) return idx;
  }
  return -1;
}

/** Collects warnings once each (hostile input can repeat the same fault thousands of times). */
class Warnings {
  readonly list: string[] = [];
  readonly add = (w: string): void => {
    if (this.list.length < 32 && !this.list.includes(w)) this.list.push(w);
  };
}

function parseCSeq(src: Src, s: number, e: number, warn: (w: string) => void): SipCSeq | null {
  const buf = src.buf;
  const st = skipWs(buf, s, e);
  let i = st;
  while (i < e && buf[i] >= 0x30 && buf[i] <= 0x39) i++;
  const seq = parseUintAt(buf, st, i);
  const mStart = skipWs(buf, i, e);
  const mEnd = trimEnd(buf, mStart, e);
  // RFC 4475 scalar02/scalarlg: a sequence number beyond 32 bits is invalid.
  if (seq < 0 || seq > 0xffffffff || mStart === i || mEnd === mStart) {
    warn('invalid CSeq');
    return null;
  }
  return { seq, method: sub(src, mStart, mEnd) };
}

function parseReasonValue(src: Src, start: number, end: number): SipReason {
  const buf = src.buf;
  let i = start;
  while (i < end && buf[i] !== 59) i++;
  const params: Record<string, string> = {};
  parseParams(src, i, end, params);
  const cause = params.cause === undefined ? -1 : parseUint(params.cause);
  return {
    protocol: sub(src, start, trimEnd(buf, start, i)),
    cause: cause >= 0 ? cause : null,
    text: params.text === undefined ? null : unquoteValue(params.text),
  };
}

/** Unsigned decimal in [s,e) with surrounding whitespace; -1 when invalid. */
function uintField(buf: Buffer, s: number, e: number): number {
  const st = skipWs(buf, s, e);
  return parseUintAt(buf, st, trimEnd(buf, st, e));
}

function isSipVersion(buf: Buffer, s: number, e: number): boolean {
  return (
    e - s === 7 &&
    LOWER[buf[s]] === 0x73 &&
    LOWER[buf[s + 1]] === 0x69 &&
    LOWER[buf[s + 2]] === 0x70 &&
    buf[s + 3] === 0x2f &&
    buf[s + 4] === 0x32 &&
    buf[s + 5] === 0x2e &&
    buf[s + 6] === 0x30
  );
}

/** "SIP/" 1*DIGIT "." 1*DIGIT — another version is parsed but flagged (RFC 4475 badvers). */
function isAnySipVersion(buf: Buffer, s: number, e: number): boolean {
  if (e - s < 7 || LOWER[buf[s]] !== 0x73 || LOWER[buf[s + 1]] !== 0x69 || LOWER[buf[s + 2]] !== 0x70)
    return false;
  if (buf[s + 3] !== 0x2f) return false;
  let dot = false;
  let digits = 0;
  for (let i = s + 4; i < e; i++) {
    const c = buf[i];
    if (c === 0x2e && !dot && digits > 0) {
      dot = true;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) digits++;
    else return false;
  }
  return dot && digits > 0;
}

/** Start line as offsets: request → method [a,b), Request-URI [c,d); response → reason phrase [c,d). */
interface StartLine {
  statusCode: number; // 0 for requests
  a: number;
  b: number;
  c: number;
  d: number;
}

/** Validates the start line buf[s,e) (CR/LF excluded) on bytes; returns an error string when it is not SIP. */
function scanStartLine(buf: Buffer, s: number, e: number, warn: (w: string) => void): StartLine | string {
  // Trailing SP is invalid (RFC 4475 trws) but harmless.
  let le = e;
  while (le > s && (buf[le - 1] === SP || buf[le - 1] === HT)) le--;
  if (le - s < 8) return 'invalid start line';
  let sp1 = s;
  while (sp1 < le && buf[sp1] !== SP && buf[sp1] !== HT) sp1++;
  if (sp1 >= le) return 'invalid start line';
  if (isAnySipVersion(buf, s, sp1)) {
    if (!isSipVersion(buf, s, sp1)) warn('unsupported SIP version');
    let p = sp1;
    while (p < le && buf[p] === SP) p++;
    const cs = p;
    while (p < le && buf[p] >= 0x30 && buf[p] <= 0x39) p++;
    // RFC 4475 bigcode: the code is exactly three digits (100-699).
    if (p - cs !== 3 || buf[cs] < 0x31 || buf[cs] > 0x36) return 'invalid status code';
    if (p < le && buf[p] !== SP && buf[p] !== HT) return 'invalid status code';
    const statusCode = (buf[cs] - 0x30) * 100 + (buf[cs + 1] - 0x30) * 10 + (buf[cs + 2] - 0x30);
    // The reason phrase loses only trailing whitespace (RFC 4475 noreason: `SIP/2.0 100 `).
    return { statusCode, a: 0, b: 0, c: p < le ? p + 1 : le, d: le };
  }
  for (let i = s; i < sp1; i++) if (TOKEN_CHARS[buf[i]] !== 1) return 'invalid method';
  let vs = le;
  while (vs > sp1 && buf[vs - 1] !== SP && buf[vs - 1] !== HT) vs--;
  if (!isAnySipVersion(buf, vs, le)) return 'invalid request line';
  if (!isSipVersion(buf, vs, le)) warn('unsupported SIP version');
  let us = sp1 + 1;
  let ue = vs - 1;
  // RFC 4475 lwsstart: extra spaces between elements are tolerated.
  if (buf[us] === SP || buf[us] === HT || buf[ue - 1] === SP || buf[ue - 1] === HT || le !== e) {
    warn('extra whitespace in request line');
  }
  while (us < ue && (buf[us] === SP || buf[us] === HT)) us++;
  while (ue > us && (buf[ue - 1] === SP || buf[ue - 1] === HT)) ue--;
  if (ue <= us) return 'invalid request line';
  return { statusCode: 0, a: s, b: sp1, c: us, d: ue };
}

/** Request-URI from text[s,e); RFC 4475 ltgtruri (<> around it) is parsed anyway, with a warning. */
function requestUriOf(src: Src, s: number, e: number, warn: (w: string) => void): SipUri | null {
  const buf = src.buf;
  let uri = parseUriAt(src, s, e);
  const angle = buf[s] === 60;
  if (uri === null && angle && buf[e - 1] === 62) uri = parseUriAt(src, s + 1, e - 1);
  if (uri === null || angle) warn('invalid Request-URI');
  else if (uri.headers !== undefined) warn('headers in Request-URI'); // RFC 4475 escruri
  return uri;
}

/**
 * Parses one SIP message in buf[off,end). Datagram semantics by default: the body runs to the end of the
 * datagram when Content-Length is absent; with a Content-Length larger than the bytes present, the
 * headers are still parsed and the body is what is present ("content-length mismatch" warning).
 */
export function parseSipMessage(
  buf: Buffer,
  off: number,
  end: number,
  options?: SipParseOptions,
): SipParseResult {
  if (!validRange(buf, off, end)) return { ok: false, error: 'invalid buffer range' };
  try {
    return parseUnchecked(buf, off, end, options?.transportIsStream === true);
  } catch (err) {
    // Not expected (the fuzz tests look for this text); keeps one bad packet from stopping a capture.
    return { ok: false, error: `internal error: ${(err as Error)?.message ?? String(err)}` };
  }
}

/** Per header: name start/end, value start/end (buffer offsets), HEADER_DEFS index or -1, folded flag. */
const REC = 6;
/** Reused between calls (parsing is synchronous and not re-entrant), so the first pass allocates nothing. */
const records = new Int32Array(MAX_HEADERS * REC);

function parseUnchecked(buf: Buffer, off: number, end: number, stream: boolean): SipParseResult {
  const warnings = new Warnings();
  const warn = warnings.add;
  let p = off;
  // RFC 3261 §7.5: CRLFs before the start line are ignored (stream keep-alives).
  while (p < end && (buf[p] === CR || buf[p] === LF)) p++;
  if (p >= end) return { ok: false, error: 'empty message' };
  const base = p;
  let lineEnd = p;
  const startLim = Math.min(end, p + MAX_HEADER_LINE);
  while (lineEnd < startLim && buf[lineEnd] !== LF) lineEnd++;
  if (lineEnd >= startLim && lineEnd < end) return { ok: false, error: 'start line too long' };
  let se = lineEnd;
  if (se > p && buf[se - 1] === CR) se--;
  // Validate on bytes first, so non-SIP input costs no string decoding.
  const start = scanStartLine(buf, p, se, warn);
  if (typeof start === 'string') return { ok: false, error: start };
  p = lineEnd + 1;

  // Pass 1 over bytes: find header lines and the end of the header section.
  let bodyStart = -1;
  let count = 0;
  let textEnd = se; // only bytes up to the last kept header are decoded
  const sectionLimit = Math.min(end, base + MAX_HEADER_SECTION);
  while (p < sectionLimit) {
    const b0 = buf[p];
    if (b0 === LF) {
      bodyStart = p + 1;
      break;
    }
    if (b0 === CR && p + 1 < end && buf[p + 1] === LF) {
      bodyStart = p + 2;
      break;
    }
    const lineStart = p;
    // Header name: token characters, hashed lower-case on the fly for the table lookup.
    let h = 0;
    while (p < end && TOKEN_CHARS[buf[p]] === 1) {
      h = (Math.imul(h, 31) + LOWER[buf[p]]) | 0;
      p++;
    }
    const nameEnd = p;
    while (p < end && (buf[p] === SP || buf[p] === HT)) p++;
    const valid = nameEnd > lineStart && p < end && buf[p] === COLON;
    if (valid) p++;
    while (p < end && (buf[p] === SP || buf[p] === HT)) p++;
    const valueStart = p;
    while (p < end && buf[p] !== LF) p++;
    let valueEnd = p;
    p++;
    // Continuation lines (RFC 3261 §7.3.1 folding) start with SP or HT.
    let folded = 0;
    while (p < end && (buf[p] === SP || buf[p] === HT)) {
      folded = 1;
      while (p < end && buf[p] !== LF) p++;
      p++;
    }
    if (!valid) {
      warn('malformed header line');
      continue;
    }
    const logicalEnd = Math.min(p, end);
    if (logicalEnd - lineStart > MAX_HEADER_LINE) {
      warn('header line too long');
      continue;
    }
    if (count >= MAX_HEADERS) {
      warn('too many headers');
      continue;
    }
    if (folded === 0) {
      while (
        valueEnd > valueStart &&
        (buf[valueEnd - 1] === CR || buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HT)
      )
        valueEnd--;
    } else valueEnd = logicalEnd;
    const r = count * REC;
    records[r] = lineStart;
    records[r + 1] = nameEnd;
    records[r + 2] = valueStart;
    records[r + 3] = valueEnd;
    records[r + 4] = lookupHeader(buf, lineStart, nameEnd, h);
    records[r + 5] = folded;
    count++;
    textEnd = valueEnd;
  }
  if (bodyStart < 0 && p < end) warn('header section too long');
  // One latin1 decode for the header section; every header string is a substring of it.
  const text = buf.toString('latin1', base, textEnd);
  const main: Src = { buf, text, base };
  const isRequest = start.statusCode === 0;

  const msg: SipMessage = {
    isRequest,
    method: isRequest ? text.substring(start.a - base, start.b - base) : null,
    requestUri: isRequest ? requestUriOf(main, start.c, start.d, warn) : null,
    statusCode: isRequest ? null : start.statusCode,
    reasonPhrase: isRequest ? null : text.substring(start.c - base, start.d - base),
    headers: [],
    callId: null,
    from: null,
    to: null,
    via: [],
    cseq: null,
    contact: [],
    maxForwards: null,
    contentType: null,
    contentLength: null,
    reason: null,
    userAgent: null,
    server: null,
    pAssertedIdentity: [],
    correlationCallId: null,
    body: EMPTY,
    bodyParts: [],
    sdp: null,
    warnings: warnings.list,
  };
  let contentTypeRaw: string | null = null;
  let corrPriority = CORRELATION.length;
  let clSeen = false;

  // Pass 2: strings and typed fields. Sub-parsers scan the bytes and cut strings from `text`.
  for (let k = 0; k < count; k++) {
    const r = k * REC;
    const defIdx = records[r + 4];
    let vs = records[r + 2];
    let ve = records[r + 3];
    let src = main;
    let value: string;
    if (records[r + 5] === 0) value = text.substring(vs - base, ve - base);
    else {
      // Folded: the unfolded value no longer matches the packet bytes, so it gets its own Src.
      value = unfold(main, vs, ve);
      src = srcOf(value);
      vs = 0;
      ve = value.length;
    }
    const def = defIdx >= 0 ? HEADER_DEFS[defIdx] : null;
    const name =
      def === null || def.canonical === null
        ? text.substring(records[r] - base, records[r + 1] - base)
        : def.canonical;
    msg.headers.push([name, value]);
    if (def === null) continue;
    switch (def.id) {
      case H_OTHER:
        break;
      case H_VIA:
        parseViaListAt(src, vs, ve, msg.via, warn, MAX_LIST_ITEMS);
        break;
      case H_FROM:
        if (msg.from === null) msg.from = parseNameAddrAt(src, vs, ve, warn);
        else warn('multiple From headers');
        break;
      case H_TO:
        if (msg.to === null) msg.to = parseNameAddrAt(src, vs, ve, warn);
        else warn('multiple To headers');
        break;
      case H_CALL_ID:
        if (msg.callId === null) msg.callId = value;
        else warn('multiple Call-ID headers');
        break;
      case H_CSEQ:
        if (msg.cseq === null) msg.cseq = parseCSeq(src, vs, ve, warn);
        else warn('multiple CSeq headers');
        break;
      case H_CONTACT:
        parseNameAddrListAt(src, vs, ve, msg.contact, warn, MAX_LIST_ITEMS);
        break;
      case H_MAX_FORWARDS: {
        const n = uintField(src.buf, vs, ve);
        // RFC 4475 scalar02: 0..255.
        if (n >= 0 && n <= 255) msg.maxForwards = n;
        else warn('invalid Max-Forwards');
        break;
      }
      case H_CONTENT_TYPE:
        if (contentTypeRaw === null) {
          contentTypeRaw = value;
          msg.contentType = mediaTypeAt(src, vs, ve) || null;
        }
        break;
      case H_CONTENT_LENGTH: {
        if (clSeen) {
          // RFC 4475 mcl01; the first value is kept.
          warn('multiple Content-Length headers');
          break;
        }
        clSeen = true;
        const n = uintField(src.buf, vs, ve);
        if (n < 0 || n > 0x7fffffff)
          warn('invalid content-length'); // RFC 4475 ncl, scalar02
        else msg.contentLength = n;
        break;
      }
      case H_REASON: {
        const ranges = splitList(src.buf, vs, ve, 8);
        for (let j = 0; j < ranges.length; j += 2) {
          const rv = parseReasonValue(src, ranges[j], ranges[j + 1]);
          // Several protocols may be listed (RFC 3326); the Q.850 cause is what a NOC reports.
          if (msg.reason === null || (!isQ850(msg.reason.protocol) && isQ850(rv.protocol))) msg.reason = rv;
        }
        break;
      }
      case H_USER_AGENT:
        if (msg.userAgent === null) msg.userAgent = value;
        break;
      case H_SERVER:
        if (msg.server === null) msg.server = value;
        break;
      case H_PAI:
        parseNameAddrListAt(src, vs, ve, msg.pAssertedIdentity, warn, MAX_LIST_ITEMS);
        break;
      default: {
        const prio = def.id - H_CORR;
        if (prio < corrPriority && value.length > 0) {
          corrPriority = prio;
          msg.correlationCallId = value;
        }
      }
    }
  }

  if (bodyStart < 0) {
    // Datagram cut inside the header section (or a stream message without the empty line).
    warn('missing end of headers');
    bodyStart = end;
  }
  const available = end - bodyStart;
  const cl = msg.contentLength;
  let bodyEnd = end;
  if (cl !== null) {
    if (cl <= available) {
      bodyEnd = bodyStart + cl;
      // On a datagram, bytes past Content-Length are discarded (§18.3, RFC 4475 dblreq); CRLF padding
      // is common and not worth a warning. On a stream they are the next message.
      if (!stream && cl < available && !onlyLineBreaks(buf, bodyEnd, end)) warn('content-length mismatch');
    } else warn('content-length mismatch'); // RFC 4475 clerr: body shorter than announced
  } else if (stream && available > 0) {
    // RFC 3261 §20.14: Content-Length is mandatory on streams; without it the body is empty.
    warn('missing content-length');
    bodyEnd = bodyStart;
  }
  if (bodyEnd > bodyStart) msg.body = buf.subarray(bodyStart, bodyEnd);

  if (msg.isRequest && msg.cseq !== null && msg.method !== null && msg.cseq.method !== msg.method) {
    warn('cseq method mismatch'); // RFC 4475 mismatch01/mismatch02
  }
  if (msg.callId === null) warn('missing Call-ID');
  if (msg.cseq === null) warn('missing CSeq');
  if (msg.from === null) warn('missing From');
  if (msg.to === null) warn('missing To');
  if (msg.via.length === 0) warn('missing Via');

  if (bodyEnd > bodyStart) decodeBody(buf, bodyStart, bodyEnd, msg, contentTypeRaw, warn);
  return { ok: true, message: msg };
}

function isQ850(protocol: string): boolean {
  return protocol.length === 5 && protocol.toUpperCase() === 'Q.850';
}

function onlyLineBreaks(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] !== CR && buf[i] !== LF) return false;
  return true;
}

/** Joins a folded header value text[s,e): each line break plus surrounding whitespace becomes one SP. */
function unfold(src: Src, s: number, e: number): string {
  const buf = src.buf;
  let out = '';
  let p = s;
  while (p < e) {
    let le = p;
    while (le < e && buf[le] !== LF) le++;
    const ve = trimEnd(buf, p, le);
    if (ve > p) out = out.length === 0 ? sub(src, p, ve) : `${out} ${sub(src, p, ve)}`;
    p = le + 1;
    while (p < e && (buf[p] === SP || buf[p] === HT)) p++;
  }
  return out;
}

function decodeBody(
  buf: Buffer,
  s: number,
  e: number,
  msg: SipMessage,
  contentTypeRaw: string | null,
  warn: (w: string) => void,
): void {
  const type = msg.contentType;
  const parts: SipBodyPart[] = msg.bodyParts;
  if (type !== null && contentTypeRaw !== null && type.startsWith('multipart/')) {
    const boundary = multipartBoundary(contentTypeRaw);
    if (boundary === null) warn('multipart without boundary');
    else parseMultipart(buf, s, e, boundary, parts, warn);
    if (parts.length === 0) parts.push({ contentType: type, body: msg.body });
  } else parts.push({ contentType: type, body: msg.body });
  for (const part of parts) {
    const pt = part.contentType;
    // Some senders omit Content-Type; an SDP body still starts with "v=".
    const sdpLike =
      pt === 'application/sdp' ||
      (pt === null && part.body.length > 2 && part.body[0] === 0x76 && part.body[1] === 0x3d);
    if (sdpLike) {
      msg.sdp = parseSdp(part.body, 0, part.body.length, warn);
      if (msg.sdp !== null) return;
    }
  }
}

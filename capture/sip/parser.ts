/**
 * RFC 3261 SIP message parser working on a Buffer range: the start line and headers are scanned as bytes,
 * only header values (and the pieces derived from them) become strings, decoded as latin1 so every byte
 * survives. The body stays a view. Hostile input never throws: the result is either an error (no usable
 * start line) or a message plus warnings, and work is bounded (header count, line length, list sizes).
 *
 * Only what call analysis needs is decoded up front; the rest (Request-URI, the header list, Contact,
 * P-Asserted-Identity, body parts, SDP) is decoded from the same bytes on first read (ParsedSipMessage).
 * Scratch state (header records, start-line offsets, list ranges, the warnings target) belongs to the
 * SipParser a caller creates and is reused from one message to the next; the messages a parser returns
 * use its scratch again for their lazy decoding.
 */

import type {
  Sdp,
  SipBodyPart,
  SipCSeq,
  SipMessage,
  SipNameAddr,
  SipParseResult,
  SipReason,
  SipUri,
  SipVia,
} from '../../core/sip-message.js';
import { LOWER as LOWER_TABLE, TOKEN_CHARS as TOKEN_TABLE, validRange } from './detect.js';
import * as headerTable from './headers.js';
import { mediaTypeAt, multipartBoundary, parseMultipart } from './multipart.js';
import { parseNameAddrAt, parseNameAddrListAt } from './name-addr.js';
import { parseSdp } from './sdp.js';
import {
  listRangesFor,
  parseParams,
  parseUint,
  parseUintAt,
  parseUriAt,
  type Src,
  skipWs,
  splitListAt,
  srcOf,
  sub,
  trimEnd,
  unquoteValue,
} from './uri.js';
import { parseViaListAt } from './via.js';

// Module-local aliases: some loaders (vitest's module runner) turn every use of an imported binding into a
// property read, which would cost a lookup per byte in the scanning loops (and per header for the header
// table).
const LOWER = LOWER_TABLE;
const TOKEN_CHARS = TOKEN_TABLE;
const {
  CORRELATION,
  DEF_ID,
  H_CALL_ID,
  H_CONTACT,
  H_CONTENT_LENGTH,
  H_CONTENT_TYPE,
  H_CORR,
  H_CSEQ,
  H_FROM,
  H_MAX_FORWARDS,
  H_OTHER,
  H_PAI,
  H_REASON,
  H_SERVER,
  H_TO,
  H_USER_AGENT,
  H_VIA,
  HEADER_DEFS,
  lookupHeader,
} = headerTable;

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

/** Per header: name start/end, value start/end (buffer offsets), HEADER_DEFS index or -1, folded flag. */
const REC = 6;
/** Warnings kept per message. */
const MAX_WARNINGS = 32;

/**
 * What a SipParser reuses from one message to the next, so that scanning allocates nothing. Parsing and
 * the lazy decoding of the parser's messages are synchronous and never nested, so one scratch serves them
 * all; each result below is valid only until the next scan.
 */
class ParserScratch {
  /** scanHeaders' header records, REC numbers per header. */
  readonly records = new Int32Array(MAX_HEADERS * REC);
  /** scanHeaders' first body byte (-1 when the empty line is missing). */
  bodyStart = -1;
  /** scanHeaders' end of the last kept value (-1 when none). */
  textEnd = -1;
  /**
   * scanStartLine's result as offsets: request → status 0, method [startA, startB), Request-URI
   * [startC, startD); response → status code, reason phrase [startC, startD).
   */
  startStatus = 0;
  startA = 0;
  startB = 0;
  startC = 0;
  startD = 0;
  /** splitListAt's ranges for list headers (Via, Contact, P-Asserted-Identity, Reason). */
  readonly listRanges = listRangesFor();
  /** The warnings list `warn` appends to: the message being decoded. */
  warnings: string[] = [];
  /**
   * Records a warning once (hostile input can repeat the same fault thousands of times). One closure per
   * parser, handed to the sub-parsers, instead of one per message.
   */
  readonly warn = (w: string): void => {
    const list = this.warnings;
    if (list.length < MAX_WARNINGS && !list.includes(w)) list.push(w);
  };
}

function setStart(st: ParserScratch, status: number, a: number, b: number, c: number, d: number): null {
  st.startStatus = status;
  st.startA = a;
  st.startB = b;
  st.startC = c;
  st.startD = d;
  return null;
}

/**
 * Validates the start line buf[s,e) (CR/LF excluded) on bytes; returns an error string when it is not SIP,
 * else null with the offsets in st.start*.
 */
function scanStartLine(st: ParserScratch, buf: Buffer, s: number, e: number): string | null {
  const warn = st.warn;
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
    return setStart(st, statusCode, 0, 0, p < le ? p + 1 : le, le);
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
  return setStart(st, 0, s, sp1, us, ue);
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
 * Parses SIP messages. The caller creates one and keeps it for as many messages as it likes (an extractor,
 * a listener, a row encoder each own one); it holds the scratch space scanning reuses. The messages it
 * returns decode their lazy members with that scratch too, whenever they are read: parsing is synchronous,
 * so a parser never has two decodes in flight.
 */
export class SipParser {
  readonly #scratch = new ParserScratch();

  /**
   * Parses one SIP message in buf[off,end). Datagram semantics by default: the body runs to the end of the
   * datagram when Content-Length is absent; with a Content-Length larger than the bytes present, the
   * headers are still parsed and the body is what is present ("content-length mismatch" warning).
   *
   * What call analysis reads is decoded here; `requestUri`, `headers`, `contact`, `pAssertedIdentity`,
   * `bodyParts` and `sdp` are decoded from `buf` when first read (then cached), so **buf[off,end) must stay
   * unchanged while the message is used** — the same contract as for `body`, which is a view. Callers that
   * keep messages past a packet pass a buffer they own (the extractor copies the payload first). Warnings
   * of those parts join `message.warnings` when they are decoded.
   */
  parse(buf: Buffer, off: number, end: number, options?: SipParseOptions): SipParseResult {
    if (!validRange(buf, off, end)) return { ok: false, error: 'invalid buffer range' };
    try {
      return parseUnchecked(this.#scratch, buf, off, end, options?.transportIsStream === true);
    } catch (err) {
      // Not expected (the fuzz tests look for this text); keeps one bad packet from stopping a capture.
      return { ok: false, error: internalError(err) };
    }
  }
}

function internalError(err: unknown): string {
  return `internal error: ${(err as Error)?.message ?? String(err)}`;
}

/**
 * Pass 1 over the header section bytes from `p` (just past the start line) to `end`, examining at most
 * up to `limit`: fills `st.records` and returns the number of kept headers. Depends only on the bytes, so
 * lazy decoding runs it again (report = false: its warnings were given at parse time).
 */
function scanHeaders(
  st: ParserScratch,
  buf: Buffer,
  p: number,
  end: number,
  limit: number,
  report: boolean,
): number {
  const records = st.records;
  const warn = st.warn;
  let bodyStart = -1;
  let textEnd = -1;
  let count = 0;
  while (p < limit) {
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
    // Header name: token characters.
    while (p < end && TOKEN_CHARS[buf[p]] === 1) p++;
    const nameEnd = p;
    while (p < end && (buf[p] === SP || buf[p] === HT)) p++;
    const valid = nameEnd > lineStart && p < end && buf[p] === COLON;
    if (valid) p++;
    while (p < end && (buf[p] === SP || buf[p] === HT)) p++;
    const valueStart = p;
    p = lineFeed(buf, p, end);
    let valueEnd = p;
    p++;
    // Continuation lines (RFC 3261 §7.3.1 folding) start with SP or HT.
    let folded = 0;
    while (p < end && (buf[p] === SP || buf[p] === HT)) {
      folded = 1;
      p = lineFeed(buf, p, end) + 1;
    }
    if (!valid) {
      if (report) warn('malformed header line');
      continue;
    }
    const logicalEnd = Math.min(p, end);
    if (logicalEnd - lineStart > MAX_HEADER_LINE) {
      if (report) warn('header line too long');
      continue;
    }
    if (count >= MAX_HEADERS) {
      if (report) warn('too many headers');
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
    records[r + 4] = lookupHeader(buf, lineStart, nameEnd);
    records[r + 5] = folded;
    count++;
    textEnd = valueEnd;
  }
  if (report && bodyStart < 0 && p < end) warn('header section too long');
  st.bodyStart = bodyStart;
  st.textEnd = textEnd;
  return count;
}

/** Model field id of record k's header (H_OTHER for unknown names) in a message's copy of the records. */
function recordId(recs: number[], k: number): number {
  const defIdx = recs[k * REC + 4];
  return defIdx < 0 ? H_OTHER : DEF_ID[defIdx];
}

/** Header value of record k as a string: a substring of the header text, or the unfolded value. */
function recordValue(main: Src, recs: number[], k: number): string {
  const r = k * REC;
  return recs[r + 5] === 0 ? sub(main, recs[r + 2], recs[r + 3]) : unfold(main, recs[r + 2], recs[r + 3]);
}

/** Canonical (or, for names we do not know, the sender's) name of record k. */
function recordName(main: Src, recs: number[], k: number): string {
  const r = k * REC;
  const defIdx = recs[r + 4];
  const canonical = defIdx < 0 ? null : HEADER_DEFS[defIdx].canonical;
  return canonical === null ? sub(main, recs[r], recs[r + 1]) : canonical;
}

/**
 * The message returned by SipParser.parse. Plain fields are decoded eagerly; the members most consumers
 * never read are getters that decode from the message's bytes on first read and cache the result (they can
 * be assigned, which replaces the cached value). Lazy decoding never throws: an unexpected failure gives
 * an empty result and an "internal error" warning.
 */
class ParsedSipMessage implements SipMessage {
  isRequest: boolean;
  method: string | null;
  statusCode: number | null;
  reasonPhrase: string | null;
  callId: string | null = null;
  from: SipNameAddr | null = null;
  to: SipNameAddr | null = null;
  via: SipVia[] = [];
  cseq: SipCSeq | null = null;
  maxForwards: number | null = null;
  contentType: string | null = null;
  contentLength: number | null = null;
  reason: SipReason | null = null;
  userAgent: string | null = null;
  server: string | null = null;
  correlationCallId: string | null = null;
  body: Buffer = EMPTY;
  warnings: string[];

  /** The parser's scratch, for lazy decoding. */
  readonly #scratch: ParserScratch;
  /** Header section bytes and their latin1 decoding (from the start line to the last kept value). */
  readonly #main: Src;
  /** First byte after the start line, end of the message, and the header scan limit. */
  readonly #headersAt: number;
  readonly #end: number;
  readonly #limit: number;
  /** Request-URI bytes [#uriStart, #uriEnd) (requests only). */
  readonly #uriStart: number;
  readonly #uriEnd: number;
  // Lazily decoded members; undefined until first read.
  #requestUri: SipUri | null | undefined = undefined;
  #headers: Array<[string, string]> | undefined = undefined;
  #contact: SipNameAddr[] | undefined = undefined;
  #pAssertedIdentity: SipNameAddr[] | undefined = undefined;
  #bodyParts: SipBodyPart[] | undefined = undefined;
  #sdp: Sdp | null | undefined = undefined;
  /** Copy of the header records, made on the first lazy read that needs them. */
  #records: number[] | undefined = undefined;

  /** Takes the start line from scanStartLine's results and the warnings list from the scratch. */
  constructor(st: ParserScratch, main: Src, headersAt: number, end: number, limit: number) {
    const isRequest = st.startStatus === 0;
    const text = main.text;
    const base = main.base;
    this.isRequest = isRequest;
    this.method = isRequest ? text.substring(st.startA - base, st.startB - base) : null;
    this.statusCode = isRequest ? null : st.startStatus;
    this.reasonPhrase = isRequest ? null : text.substring(st.startC - base, st.startD - base);
    this.warnings = st.warnings;
    this.#scratch = st;
    this.#main = main;
    this.#headersAt = headersAt;
    this.#end = end;
    this.#limit = limit;
    this.#uriStart = st.startC;
    this.#uriEnd = st.startD;
  }

  /** The parser's warn, now appending to this message's warnings. */
  #warn(): (w: string) => void {
    const st = this.#scratch;
    st.warnings = this.warnings;
    return st.warn;
  }

  get requestUri(): SipUri | null {
    if (this.#requestUri === undefined) {
      let uri: SipUri | null = null;
      if (this.isRequest) {
        const warn = this.#warn();
        try {
          uri = requestUriOf(this.#main, this.#uriStart, this.#uriEnd, warn);
        } catch (err) {
          warn(internalError(err));
        }
      }
      this.#requestUri = uri;
    }
    return this.#requestUri;
  }
  set requestUri(value: SipUri | null) {
    this.#requestUri = value;
  }

  /** Every header in order, [canonical name, unfolded value]. */
  get headers(): Array<[string, string]> {
    if (this.#headers === undefined) {
      const out: Array<[string, string]> = [];
      try {
        const main = this.#main;
        const recs = this.#recs();
        for (let k = 0; k < recs.length / REC; k++)
          out.push([recordName(main, recs, k), recordValue(main, recs, k)]);
      } catch (err) {
        this.#warn()(internalError(err));
      }
      this.#headers = out;
    }
    return this.#headers;
  }
  set headers(value: Array<[string, string]>) {
    this.#headers = value;
  }

  get contact(): SipNameAddr[] {
    if (this.#contact === undefined) this.#contact = this.#nameAddrs(H_CONTACT);
    return this.#contact;
  }
  set contact(value: SipNameAddr[]) {
    this.#contact = value;
  }

  get pAssertedIdentity(): SipNameAddr[] {
    if (this.#pAssertedIdentity === undefined) this.#pAssertedIdentity = this.#nameAddrs(H_PAI);
    return this.#pAssertedIdentity;
  }
  set pAssertedIdentity(value: SipNameAddr[]) {
    this.#pAssertedIdentity = value;
  }

  get bodyParts(): SipBodyPart[] {
    if (this.#bodyParts === undefined) this.#decodeBody();
    return this.#bodyParts as SipBodyPart[];
  }
  set bodyParts(value: SipBodyPart[]) {
    this.#bodyParts = value;
  }

  get sdp(): Sdp | null {
    if (this.#sdp === undefined) this.#decodeBody();
    return this.#sdp as Sdp | null;
  }
  set sdp(value: Sdp | null) {
    this.#sdp = value;
  }

  /** Everything, lazy members included, as the plain object JSON.stringify used to see. */
  toJSON(): SipMessage {
    return {
      isRequest: this.isRequest,
      method: this.method,
      requestUri: this.requestUri,
      statusCode: this.statusCode,
      reasonPhrase: this.reasonPhrase,
      headers: this.headers,
      callId: this.callId,
      from: this.from,
      to: this.to,
      via: this.via,
      cseq: this.cseq,
      contact: this.contact,
      maxForwards: this.maxForwards,
      contentType: this.contentType,
      contentLength: this.contentLength,
      reason: this.reason,
      userAgent: this.userAgent,
      server: this.server,
      pAssertedIdentity: this.pAssertedIdentity,
      correlationCallId: this.correlationCallId,
      body: this.body,
      bodyParts: this.bodyParts,
      sdp: this.sdp,
      warnings: this.warnings,
    };
  }

  /**
   * The header records of this message: the section is scanned again on the first lazy read that needs
   * them (the scratch records belong to whichever message the parser scanned last) and kept as a copy.
   */
  #recs(): number[] {
    let recs = this.#records;
    if (recs === undefined) {
      const st = this.#scratch;
      const count = scanHeaders(st, this.#main.buf, this.#headersAt, this.#end, this.#limit, false);
      const records = st.records;
      recs = [];
      for (let i = 0; i < count * REC; i++) recs.push(records[i]);
      this.#records = recs;
    }
    return recs;
  }

  /** Every name-addr of the headers with model id `id` (Contact, P-Asserted-Identity), in order. */
  #nameAddrs(id: number): SipNameAddr[] {
    const out: SipNameAddr[] = [];
    const warn = this.#warn();
    const ranges = this.#scratch.listRanges;
    try {
      const main = this.#main;
      const recs = this.#recs();
      for (let k = 0; k < recs.length / REC; k++) {
        if (recordId(recs, k) !== id) continue;
        const r = k * REC;
        if (recs[r + 5] === 0) {
          parseNameAddrListAt(main, recs[r + 2], recs[r + 3], out, ranges, warn, MAX_LIST_ITEMS);
        } else {
          const value = unfold(main, recs[r + 2], recs[r + 3]);
          parseNameAddrListAt(srcOf(value), 0, value.length, out, ranges, warn, MAX_LIST_ITEMS);
        }
      }
    } catch (err) {
      warn(internalError(err));
    }
    return out;
  }

  /** The first Content-Type value as sent (parameters included), for the multipart boundary. */
  #contentTypeValue(): string | null {
    const recs = this.#recs();
    for (let k = 0; k < recs.length / REC; k++) {
      if (recordId(recs, k) === H_CONTENT_TYPE) return recordValue(this.#main, recs, k);
    }
    return null;
  }

  /** Splits the body into parts and parses the first SDP part (both are decoded together). */
  #decodeBody(): void {
    const parts: SipBodyPart[] = [];
    let sdp: Sdp | null = null;
    const body = this.body;
    if (body.length > 0) {
      const warn = this.#warn();
      try {
        const type = this.contentType;
        if (type?.startsWith('multipart/')) {
          const raw = this.#contentTypeValue();
          const boundary = raw === null ? null : multipartBoundary(raw);
          if (boundary === null) warn('multipart without boundary');
          else parseMultipart(body, 0, body.length, boundary, parts, warn);
          if (parts.length === 0) parts.push({ contentType: type, body });
        } else parts.push({ contentType: type, body });
        for (const part of parts) {
          const pt = part.contentType;
          // Some senders omit Content-Type; an SDP body still starts with "v=".
          const sdpLike =
            pt === 'application/sdp' ||
            (pt === null && part.body.length > 2 && part.body[0] === 0x76 && part.body[1] === 0x3d);
          if (sdpLike) {
            sdp = parseSdp(part.body, 0, part.body.length, warn);
            if (sdp !== null) break;
          }
        }
      } catch (err) {
        warn(internalError(err));
      }
    }
    if (this.#bodyParts === undefined) this.#bodyParts = parts;
    if (this.#sdp === undefined) this.#sdp = sdp;
  }
}

/**
 * Index of the first LF in buf[p,end), or `end`. Buffer#indexOf (memchr) beats a byte loop from a few
 * bytes on; it searches to the end of `buf`, which parseUnchecked makes the end of the message.
 */
function lineFeed(buf: Buffer, p: number, end: number): number {
  const i = buf.indexOf(LF, p);
  return i < 0 || i > end ? end : i;
}

function parseUnchecked(
  st: ParserScratch,
  whole: Buffer,
  off: number,
  end: number,
  stream: boolean,
): SipParseResult {
  // A view ending with the message keeps every search inside it (same memory, same offsets).
  const buf = end === whole.length ? whole : whole.subarray(0, end);
  st.warnings = [];
  let p = off;
  // RFC 3261 §7.5: CRLFs before the start line are ignored (stream keep-alives).
  while (p < end && (buf[p] === CR || buf[p] === LF)) p++;
  if (p >= end) return { ok: false, error: 'empty message' };
  const base = p;
  const startLim = Math.min(end, p + MAX_HEADER_LINE);
  const lineEnd = lineFeed(buf, p, startLim);
  if (lineEnd >= startLim && lineEnd < end) return { ok: false, error: 'start line too long' };
  let se = lineEnd;
  if (se > p && buf[se - 1] === CR) se--;
  // Validate on bytes first, so non-SIP input costs no string decoding.
  const startError = scanStartLine(st, buf, p, se);
  if (startError !== null) return { ok: false, error: startError };
  const headersAt = lineEnd + 1;

  // Pass 1 over bytes: find header lines and the end of the header section.
  const limit = Math.min(end, base + MAX_HEADER_SECTION);
  const count = scanHeaders(st, buf, headersAt, end, limit, true);
  const sectionEnd = st.bodyStart;
  // One latin1 decode for the header section (up to the last kept header); every header string is a
  // substring of it.
  const text = buf.toString('latin1', base, count > 0 ? st.textEnd : se);
  const main: Src = { buf, text, base };
  const msg = new ParsedSipMessage(st, main, headersAt, end, limit);
  decodeFields(st, msg, main, count);
  finish(st.warn, msg, buf, sectionEnd, end, stream);
  return { ok: true, message: msg };
}

/**
 * Pass 2: the eagerly decoded fields, from the header records. Sub-parsers scan the bytes and cut strings
 * from `main.text`; headers decoded lazily (Contact, P-Asserted-Identity) and those the model does not
 * extract are skipped. (Separate from parseUnchecked: smaller functions get optimised sooner.)
 */
function decodeFields(st: ParserScratch, msg: ParsedSipMessage, main: Src, count: number): void {
  const buf = main.buf;
  const records = st.records;
  const ranges = st.listRanges;
  const warn = st.warn;
  let ctSeen = false;
  let corrPriority = CORRELATION.length;
  let clSeen = false;
  // First ',' at or after the current Via value (-1: none up to the end; -2: not searched yet). Via values
  // come in increasing order, so the searches together read each byte at most once.
  let comma = -2;

  for (let k = 0; k < count; k++) {
    const r = k * REC;
    const defIdx = records[r + 4];
    if (defIdx < 0) continue;
    const id = DEF_ID[defIdx];
    if (id === H_OTHER || id === H_CONTACT || id === H_PAI) continue;
    let vs = records[r + 2];
    let ve = records[r + 3];
    let src = main;
    if (records[r + 5] !== 0) {
      // Folded: the unfolded value no longer matches the packet bytes, so it gets its own Src.
      const value = unfold(main, vs, ve);
      src = srcOf(value);
      vs = 0;
      ve = value.length;
    }
    switch (id) {
      case H_VIA: {
        let noComma = false;
        if (src === main) {
          if (comma !== -1 && comma < vs) comma = buf.indexOf(0x2c, vs);
          noComma = comma < 0 || comma >= ve;
        }
        parseViaListAt(src, vs, ve, msg.via, ranges, warn, MAX_LIST_ITEMS, noComma);
        break;
      }
      case H_FROM:
        if (msg.from === null) msg.from = parseNameAddrAt(src, vs, ve, warn);
        else warn('multiple From headers');
        break;
      case H_TO:
        if (msg.to === null) msg.to = parseNameAddrAt(src, vs, ve, warn);
        else warn('multiple To headers');
        break;
      case H_CALL_ID:
        if (msg.callId === null) msg.callId = sub(src, vs, ve);
        else warn('multiple Call-ID headers');
        break;
      case H_CSEQ:
        if (msg.cseq === null) msg.cseq = parseCSeq(src, vs, ve, warn);
        else warn('multiple CSeq headers');
        break;
      case H_MAX_FORWARDS: {
        const n = uintField(src.buf, vs, ve);
        // RFC 4475 scalar02: 0..255.
        if (n >= 0 && n <= 255) msg.maxForwards = n;
        else warn('invalid Max-Forwards');
        break;
      }
      case H_CONTENT_TYPE:
        if (!ctSeen) {
          ctSeen = true;
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
        const n = splitListAt(src.buf, vs, ve, ranges, 8);
        for (let j = 0; j < 2 * n; j += 2) {
          const rv = parseReasonValue(src, ranges[j], ranges[j + 1]);
          // Several protocols may be listed (RFC 3326); the Q.850 cause is what a NOC reports.
          if (msg.reason === null || (!isQ850(msg.reason.protocol) && isQ850(rv.protocol))) msg.reason = rv;
        }
        break;
      }
      case H_USER_AGENT:
        if (msg.userAgent === null) msg.userAgent = sub(src, vs, ve);
        break;
      case H_SERVER:
        if (msg.server === null) msg.server = sub(src, vs, ve);
        break;
      default: {
        const prio = id - H_CORR;
        if (prio < corrPriority && ve > vs) {
          corrPriority = prio;
          msg.correlationCallId = sub(src, vs, ve);
        }
      }
    }
  }
}

/** Body bounds from Content-Length and the transport, and the checks over the decoded fields. */
function finish(
  warn: (w: string) => void,
  msg: ParsedSipMessage,
  buf: Buffer,
  sectionEnd: number,
  end: number,
  stream: boolean,
): void {
  let bodyStart = sectionEnd;
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

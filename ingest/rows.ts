/**
 * CaptureEvents → TabSeparated rows of the store's tables, byte-exact.
 *
 * Values never reach SQL text: they travel as TSV data, escaped as ClickHouse's TabSeparated reader
 * expects (\\ \t \n \r \0 \b \f and ' as two-byte escapes, every other byte raw). SIP text was decoded
 * as latin1 by the parser, so it is written back as latin1 and the stored bytes are the captured
 * bytes, invalid UTF-8 included. Column order follows the specs in schema/tables.ts.
 */
import * as crypto from 'node:crypto';
import type { AnalyzeSummary } from '../capture/analyze.js';
import type { MediaStats } from '../capture/rtp/media.js';
import { SipParser } from '../capture/sip/parser.js';
import {
  type CaptureEvent,
  HEP_PROTO_RTCP_JSON,
  HEP_PROTO_RTP_QOS_JSON,
  HEP_PROTO_SIP,
} from '../core/event.js';
import { finite, isObject, parseJsonObject } from '../core/json.js';
import type { MediaIntervalFigures, MediaStreamReport, RtcpFigures } from '../core/media-report.js';
import { mediaReportFromJson } from '../core/media-report.js';
import type { SipMessage } from '../core/sip-message.js';
import type { VmInventoryEntry } from '../core/vm.js';
import type { EventTableName } from './schema/tables.js';

export { mediaReportFromJson } from '../core/media-report.js';
export type { VmInventoryEntry } from '../core/vm.js';

// ---------------------------------------------------------------------------------------------------
// TabSeparated encoding

/** Bytes that TabSeparated escapes, and the letter after the backslash. */
const ESCAPES = new Uint8Array(256);
ESCAPES[0x5c] = 0x5c; // \\
ESCAPES[0x09] = 0x74; // \t
ESCAPES[0x0a] = 0x6e; // \n
ESCAPES[0x0d] = 0x72; // \r
ESCAPES[0x00] = 0x30; // \0
ESCAPES[0x08] = 0x62; // \b
ESCAPES[0x0c] = 0x66; // \f
ESCAPES[0x27] = 0x27; // \'

/** DateTime64(9) holds 1900-01-01 .. 2262-04-11; capture times outside are clamped into it. */
const MAX_TIME_NS = 9_214_646_400_000_000_000n; // 2262-01-01
const NS_PER_SECOND = 1_000_000_000n;

/**
 * A growing buffer of TabSeparated rows. Field methods write a tab before every field but the first of
 * a row; `endRow` writes the newline. The caller owns the bytes `take()` returns.
 */
export class TsvBuffer {
  private buf: Buffer;
  private pos = 0;
  private rowStart = true;
  /** Complete rows in the buffer. */
  rows = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const needed = this.pos + extra;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  private separator(): void {
    if (this.rowStart) {
      this.rowStart = false;
      return;
    }
    this.ensure(1);
    this.buf[this.pos++] = 0x09;
  }

  /** Escapes buf[start, pos) in place: most values have nothing to escape, so the scan is the cost. */
  private escapeWritten(start: number): void {
    let specials = 0;
    const end = this.pos;
    const scan = this.buf;
    for (let i = start; i < end; i++) if (ESCAPES[scan[i]!] !== 0) specials++;
    if (specials === 0) return;
    this.ensure(specials);
    const b = this.buf;
    // Expand from the end backwards so that nothing is overwritten before it is read.
    let w = end + specials - 1;
    for (let r = end - 1; r >= start; r--) {
      const c = b[r]!;
      const e = ESCAPES[c]!;
      if (e === 0) {
        b[w--] = c;
      } else {
        b[w--] = e;
        b[w--] = 0x5c;
      }
    }
    this.pos = end + specials;
  }

  /**
   * Escaped text without a field separator (inside arrays and maps, or a whole field). Characters are
   * written one by one (each at most two bytes once escaped): cheaper than a native write per field
   * for the short values rows are made of. Unicode text with non-ASCII characters takes the encoder.
   */
  private text(value: string, encoding: 'latin1' | 'utf8'): void {
    const n = value.length;
    this.ensure(2 * n);
    const b = this.buf;
    let w = this.pos;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c > 0x7f && encoding === 'utf8') {
        this.utf8Text(value, i, w);
        return;
      }
      const e = ESCAPES[c & 0xff]!;
      if (e === 0) {
        b[w++] = c;
      } else {
        b[w++] = 0x5c;
        b[w++] = e;
      }
    }
    this.pos = w;
  }

  /** The rest of `value` from character `from`, UTF-8 encoded at byte `at`, then escaped. */
  private utf8Text(value: string, from: number, at: number): void {
    this.pos = at;
    const rest = value.slice(from);
    const max = Buffer.byteLength(rest, 'utf8');
    this.ensure(max);
    this.pos += this.buf.write(rest, at, max, 'utf8');
    this.escapeWritten(at);
  }

  /** Text known to need no escaping (numbers, times, our own punctuation). */
  private ascii(text: string): void {
    const n = text.length;
    this.ensure(n);
    const b = this.buf;
    let w = this.pos;
    for (let i = 0; i < n; i++) b[w++] = text.charCodeAt(i);
    this.pos = w;
  }

  /** A string whose characters are bytes (what the SIP parser produced). */
  latin1(value: string): this {
    this.separator();
    this.text(value, 'latin1');
    return this;
  }

  /** A string of Unicode text (configuration, file names, RTCP CNAME). */
  utf8(value: string): this {
    this.separator();
    this.text(value, 'utf8');
    return this;
  }

  bytes(value: Uint8Array): this {
    this.separator();
    this.ensure(value.length);
    const start = this.pos;
    this.buf.set(value, start);
    this.pos += value.length;
    this.escapeWritten(start);
    return this;
  }

  /** An unsigned integer, clamped to [0, max] (a hostile or corrupt figure must not fail a batch). */
  uint(value: number, max = Number.MAX_SAFE_INTEGER): this {
    this.separator();
    const n = Number.isFinite(value) ? Math.min(Math.max(Math.trunc(value), 0), max) : 0;
    this.ascii(String(n));
    return this;
  }

  /** UInt64 from a bigint (event ids). */
  bigUint(value: bigint): this {
    this.separator();
    this.ascii(BigInt.asUintN(64, value).toString());
    return this;
  }

  int(value: number): this {
    this.separator();
    const n = Number.isFinite(value)
      ? Math.min(Math.max(Math.trunc(value), Number.MIN_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
      : 0;
    this.ascii(String(n));
    return this;
  }

  /** Float64: JavaScript's shortest round-trip text, which ClickHouse reads back to the same double. */
  float(value: number): this {
    this.separator();
    this.ascii(floatText(value));
    return this;
  }

  bool(value: boolean): this {
    this.separator();
    this.ascii(value ? 'true' : 'false');
    return this;
  }

  null(): this {
    this.separator();
    this.ascii('\\N');
    return this;
  }

  nullableUint(value: number | null, max: number): this {
    return value === null || !Number.isFinite(value) || value < 0 || value > max
      ? this.null()
      : this.uint(value, max);
  }

  nullableFloat(value: number | null): this {
    return value === null ? this.null() : this.float(value);
  }

  /** DateTime64(9, 'UTC') from nanoseconds since the epoch, as `YYYY-MM-DD hh:mm:ss.nnnnnnnnn`. */
  time(ns: bigint): this {
    this.separator();
    this.ascii(utcText(ns));
    return this;
  }

  /** DateTime64(3, 'UTC') from milliseconds since the epoch. */
  timeMs(ms: number): this {
    return this.time(BigInt(Math.trunc(Number.isFinite(ms) ? ms : 0)) * 1_000_000n);
  }

  uintArray(values: readonly number[], max: number): this {
    this.separator();
    this.ascii(
      `[${values.map((v) => (Number.isFinite(v) ? Math.min(Math.max(Math.trunc(v), 0), max) : 0)).join(',')}]`,
    );
    return this;
  }

  stringArray(values: readonly string[], encoding: 'latin1' | 'utf8'): this {
    this.separator();
    this.ascii('[');
    values.forEach((v, i) => {
      this.ascii(i === 0 ? "'" : ",'");
      this.text(v, encoding);
      this.ascii("'");
    });
    this.ascii(']');
    return this;
  }

  /** Map(String, Float64). */
  floatMap(entries: ReadonlyArray<[string, number]>): this {
    this.separator();
    this.ascii('{');
    entries.forEach(([k, v], i) => {
      this.ascii(i === 0 ? "'" : ",'");
      this.text(k, 'utf8');
      this.ascii(`':${floatText(v)}`);
    });
    this.ascii('}');
    return this;
  }

  endRow(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0x0a;
    this.rowStart = true;
    this.rows++;
  }

  /** The rows written so far; the caller owns them, and the TsvBuffer starts empty on a new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.min(this.buf.length, 64 * 1024));
    this.pos = 0;
    this.rows = 0;
    this.rowStart = true;
    return out;
  }
}

function floatText(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Number.POSITIVE_INFINITY) return 'inf';
  if (value === Number.NEGATIVE_INFINITY) return '-inf';
  return String(value);
}

/** `YYYY-MM-DD hh:mm:ss` of the last second formatted, and its start: consecutive events share it. */
let cachedSecondNs = -NS_PER_SECOND;
let cachedSecondText = '';

function utcText(ns: bigint): string {
  const clamped = ns < 0n ? 0n : ns > MAX_TIME_NS ? MAX_TIME_NS : ns;
  let fraction = clamped - cachedSecondNs;
  if (fraction < 0n || fraction >= NS_PER_SECOND) {
    const seconds = clamped / NS_PER_SECOND;
    const iso = new Date(Number(seconds) * 1000).toISOString(); // 2026-01-01T00:00:00.000Z
    cachedSecondText = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    cachedSecondNs = seconds * NS_PER_SECOND;
    fraction = clamped - cachedSecondNs;
  }
  return `${cachedSecondText}.${String(Number(fraction)).padStart(9, '0')}`;
}

// ---------------------------------------------------------------------------------------------------
// Event ids

/** Reused for every event id's input; payloads too large for it are hashed where they lie. */
let idScratch = Buffer.allocUnsafe(16 * 1024);

const oneShotHash = (crypto as { hash?: typeof crypto.hash }).hash;

/** Writes `text` length-prefixed at `at` (so that ("ab", "c") and ("a", "bc") differ); returns the end. */
function putText(text: string, at: number): number {
  const max = 3 * text.length;
  if (at + 4 + max > idScratch.length) {
    const grown = Buffer.allocUnsafe(Math.max(2 * idScratch.length, at + 4 + max));
    idScratch.copy(grown, 0, 0, at);
    idScratch = grown;
  }
  const n = idScratch.write(text, at + 4, max, 'utf8');
  idScratch.writeUInt32BE(n, at);
  return at + 4 + n;
}

/**
 * Stable 64-bit id of an event: the first 8 bytes of SHA-256 over capture id, node, protocol type,
 * capture time (ns), addresses, ports, VLAN and payload. The same event sent again (a retried batch,
 * a Kafka redelivery, the same file ingested again) gets the same id, so the store keeps it once.
 */
export function eventId(event: CaptureEvent): bigint {
  const h = idScratch;
  h.writeUInt8(1, 0); // layout version of this hash input
  h.writeUInt8(event.ipFamily & 0xff, 1);
  h.writeUInt8(event.ipProtocol & 0xff, 2);
  h.writeUInt16BE(event.protoType & 0xffff, 3);
  h.writeUInt32BE(event.captureId >>> 0, 5);
  h.writeBigInt64BE(BigInt.asIntN(64, event.timestampNs), 9);
  h.writeUInt16BE(event.srcPort & 0xffff, 17);
  h.writeUInt16BE(event.dstPort & 0xffff, 19);
  h.writeInt32BE(event.vlan === null ? -1 : event.vlan | 0, 21);
  h.writeUInt32BE(event.payload.length >>> 0, 25);
  let end = putText(event.nodeName, 29);
  end = putText(event.transport, end);
  end = putText(event.srcIp, end);
  end = putText(event.dstIp, end);
  const payload = event.payload;
  if (oneShotHash === undefined || end + payload.length > idScratch.length) {
    return crypto
      .createHash('sha256')
      .update(idScratch.subarray(0, end))
      .update(payload)
      .digest()
      .readBigUInt64BE(0);
  }
  // crypto.hash (Node >= 20.12) skips the Hash object, a good share of the cost for short inputs.
  idScratch.set(payload, end);
  return oneShotHash('sha256', idScratch.subarray(0, end + payload.length), 'buffer').readBigUInt64BE(0);
}

// ---------------------------------------------------------------------------------------------------
// Rows per table

export interface RowContext {
  /** Capture run the rows belong to ('' for live streams); see capture_runs. */
  runId: string;
  /** Parses SIP that arrives as payload only. */
  parser: SipParser;
}

export type EventRowSinks = Record<EventTableName, TsvBuffer>;

export interface EncodedEvent {
  eventId: bigint;
  /** Rows appended (0 when the event was skipped). */
  rows: number;
  /** Why nothing was stored, e.g. `unparsable SIP` or `protocol type 100`. */
  skipped?: string;
}

/** Appends the rows of one event to the table buffers. Never throws for bad event content. */
export function encodeEvent(event: CaptureEvent, sinks: EventRowSinks, context: RowContext): EncodedEvent {
  const id = eventId(event);
  if (event.protoType === HEP_PROTO_SIP) {
    const sip = event.sip ?? parseSip(event, context.parser);
    if (sip === null) return { eventId: id, rows: 0, skipped: 'unparsable SIP' };
    sipRow(event, sip, id, context, sinks.sip_messages);
    return { eventId: id, rows: 1 };
  }
  if (event.protoType === HEP_PROTO_RTP_QOS_JSON) {
    const report = event.media ?? mediaReportFromJson(event.payload);
    if (report === null) return { eventId: id, rows: 0, skipped: 'unrecognised RTP report JSON' };
    mediaRow(event, report, id, context, sinks.media_reports);
    if (report.rtcp === null) return { eventId: id, rows: 1 };
    rtcpRowFromReport(event, report, report.rtcp, id, context, sinks.rtcp_reports);
    return { eventId: id, rows: 2 };
  }
  if (event.protoType === HEP_PROTO_RTCP_JSON) {
    rtcpRowFromHep(event, id, context, sinks.rtcp_reports);
    return { eventId: id, rows: 1 };
  }
  return { eventId: id, rows: 0, skipped: `protocol type ${event.protoType}` };
}

/** The rows one event becomes, per table (a convenience over encodeEvent for tests and tools). */
export function eventRows(
  event: CaptureEvent,
  context: RowContext = { runId: '', parser: new SipParser() },
): { eventId: bigint; skipped?: string; rows: Partial<Record<EventTableName, Buffer>> } {
  const sinks: EventRowSinks = {
    sip_messages: new TsvBuffer(1024),
    media_reports: new TsvBuffer(1024),
    rtcp_reports: new TsvBuffer(1024),
  };
  const encoded = encodeEvent(event, sinks, context);
  const rows: Partial<Record<EventTableName, Buffer>> = {};
  for (const [table, sink] of Object.entries(sinks) as Array<[EventTableName, TsvBuffer]>) {
    if (sink.rows > 0) rows[table] = sink.take();
  }
  return { eventId: encoded.eventId, skipped: encoded.skipped, rows };
}

/** SIP received as payload only (HEP from Kamailio, Asterisk, heplify): parsed here. */
function parseSip(event: CaptureEvent, parser: SipParser): SipMessage | null {
  const payload = event.payload;
  const result = parser.parse(payload, 0, payload.length, {
    transportIsStream: event.transport === 'tcp' || event.transport === 'tls',
  });
  return result.ok ? result.message : null;
}

const U16 = 0xffff;
const U32 = 0xffffffff;

function sipRow(event: CaptureEvent, sip: SipMessage, id: bigint, context: RowContext, out: TsvBuffer): void {
  const reason = sip.reason;
  out
    .bigUint(id)
    .time(event.timestampNs)
    .latin1(sip.callId ?? '')
    .bool(sip.isRequest)
    .latin1(sip.isRequest ? (sip.method ?? '') : '')
    .uint(sip.isRequest ? 0 : (sip.statusCode ?? 0), U16)
    .latin1(sip.isRequest ? '' : (sip.reasonPhrase ?? ''))
    .uint(sip.cseq?.seq ?? 0, U32)
    .latin1(sip.cseq?.method ?? '')
    .latin1(sip.from?.uri?.user ?? '')
    .latin1(sip.from?.tag ?? '')
    .latin1(sip.to?.uri?.user ?? '')
    .latin1(sip.to?.tag ?? '')
    .latin1(sip.via[0]?.branch ?? '')
    .utf8(event.srcIp)
    .uint(event.srcPort, U16)
    .utf8(event.dstIp)
    .uint(event.dstPort, U16)
    .utf8(event.transport)
    .nullableUint(event.vlan, U16)
    .utf8(event.srcVm ?? '')
    .utf8(event.dstVm ?? '')
    .latin1(sip.userAgent ?? sip.server ?? '')
    .latin1(reason?.protocol ?? '')
    .nullableUint(reason?.cause ?? null, U16)
    .latin1(reason?.text ?? '')
    .bool(event.retransmission);
  provenance(event, context, out);
  out
    .latin1(sip.correlationCallId ?? '')
    .bytes(event.payload)
    .endRow();
}

function provenance(event: CaptureEvent, context: RowContext, out: TsvBuffer): void {
  out.uint(event.captureId, U32).utf8(event.nodeName).utf8(context.runId);
}

function mediaRow(
  event: CaptureEvent,
  r: MediaStreamReport,
  id: bigint,
  context: RowContext,
  out: TsvBuffer,
): void {
  out
    .bigUint(id)
    .time(event.timestampNs)
    .utf8(r.kind)
    .utf8(r.endReason ?? '')
    .latin1(r.callId ?? '')
    .utf8(r.discovery)
    .uint(r.ipFamily, 0xff)
    .utf8(r.src)
    .uint(r.srcPort, U16)
    .utf8(r.dst)
    .uint(r.dstPort, U16)
    .nullableUint(r.vlan, U16)
    .utf8(event.srcVm ?? '')
    .utf8(event.dstVm ?? '')
    .uint(r.ssrc, U32)
    .nullableUint(r.previousSsrc, U32)
    .uint(r.payloadType, 0xff);
  // Codec and payload names come from SDP (latin1-decoded SIP) or Wireshark's table (ASCII).
  if (r.codec === null) out.null();
  else out.latin1(r.codec);
  out
    .uint(r.clockRate, U32)
    .uintArray(r.payloadTypes, 0xff)
    .stringArray(r.payloadNames, 'latin1')
    .time(r.startNs)
    .time(r.endNs)
    .float(r.startTime)
    .float(r.endTime)
    .uint(r.packets)
    .int(r.expected)
    .int(r.lost)
    .float(r.lossPercent)
    .uint(r.sequenceErrors, U32)
    .uint(r.duplicates, U32)
    .uint(r.outOfOrder, U32)
    .uint(r.wrongTimestamps, U32)
    .uint(r.markers, U32)
    .float(r.minDeltaMs)
    .float(r.meanDeltaMs)
    .float(r.maxDeltaMs)
    .float(r.minJitterMs)
    .float(r.meanJitterMs)
    .float(r.maxJitterMs)
    .float(r.maxSkewMs)
    .uint(r.bytes)
    .float(r.bitrateKbps)
    .bool(r.problem)
    .nullableFloat(r.mos)
    .nullableFloat(r.minMos)
    .nullableFloat(r.rFactor)
    .uintArray(r.lossBursts, U32)
    .floatMap(Object.entries(r.delayOver));
  intervalColumns(r.interval, out);
  out.bool(r.rtcp !== null);
  provenance(event, context, out);
  out.endRow();
}

function intervalColumns(i: MediaIntervalFigures | null, out: TsvBuffer): void {
  out.bool(i !== null);
  if (i === null) {
    out.time(0n).time(0n).uint(0).int(0).int(0).float(0).float(0).float(0).float(0).float(0).float(0);
    return;
  }
  out
    .time(i.startNs)
    .time(i.endNs)
    .uint(i.packets, U32)
    .int(i.expected)
    .int(i.lost)
    .float(i.lossPercent)
    .float(i.jitterMs)
    .float(i.maxJitterMs)
    .float(i.burstR)
    .float(i.rFactor)
    .float(i.mos);
}

function rtcpRowFromReport(
  event: CaptureEvent,
  r: MediaStreamReport,
  rtcp: RtcpFigures,
  id: bigint,
  context: RowContext,
  out: TsvBuffer,
): void {
  out
    .bigUint(id)
    .time(event.timestampNs)
    .utf8('media-report')
    .utf8(r.kind)
    .latin1(r.callId ?? '')
    .utf8(r.src)
    .uint(r.srcPort, U16)
    .utf8(r.dst)
    .uint(r.dstPort, U16)
    .uint(r.ssrc, U32)
    .uint(rtcp.senderReports, U32)
    .uint(rtcp.receiverReports, U32)
    .nullableFloat(rtcp.fractionLost);
  if (rtcp.cumulativeLost === null) out.null();
  else out.int(rtcp.cumulativeLost);
  out
    .nullableFloat(rtcp.jitterMs)
    .nullableFloat(rtcp.roundTripMs)
    .nullableFloat(rtcp.xrRFactor)
    .nullableFloat(rtcp.xrMosLq)
    .nullableFloat(rtcp.xrMosCq);
  if (rtcp.cname === null) out.null();
  else out.utf8(rtcp.cname);
  out.utf8(''); // raw_json: the figures above are the whole of it
  provenance(event, context, out);
  out.endRow();
}

/**
 * HEP type 5 (RTCP as JSON, heplify's layout): the JSON is kept whole; the figures a dashboard
 * filters on are taken from it when present (`ssrc`, `type` 200/201, the first report block's
 * `fraction_lost` (8-bit) and `packets_lost`). Jitter there is in RTP clock units of an unknown
 * clock, so jitter_ms stays NULL.
 */
function rtcpRowFromHep(event: CaptureEvent, id: bigint, context: RowContext, out: TsvBuffer): void {
  const json = parseJsonObject(event.payload);
  const blocks = json?.report_blocks;
  const block = Array.isArray(blocks) && isObject(blocks[0]) ? blocks[0] : null;
  const type = finite(json?.type);
  const ssrc = finite(block?.source_ssrc) ?? finite(json?.ssrc) ?? 0;
  const fraction = finite(block?.fraction_lost);
  const lost = finite(block?.packets_lost);
  out
    .bigUint(id)
    .time(event.timestampNs)
    .utf8('hep')
    .utf8('')
    .latin1(event.correlationId)
    .utf8(event.srcIp)
    .uint(event.srcPort, U16)
    .utf8(event.dstIp)
    .uint(event.dstPort, U16)
    .uint(ssrc, U32)
    .uint(type === 200 ? 1 : 0)
    .uint(type === 201 ? 1 : 0)
    .nullableFloat(fraction === null || fraction < 0 || fraction > 255 ? null : fraction / 256);
  if (lost === null) out.null();
  else out.int(lost);
  out.null().null().null().null().null().null();
  out.bytes(event.payload);
  provenance(event, context, out);
  out.endRow();
}

// ---------------------------------------------------------------------------------------------------
// capture_runs and vm_inventory

/** One capture run as capture_runs stores it: what analyze knows beyond the events themselves. */
export interface CaptureRun {
  runId: string;
  /** File path or interface. */
  source: string;
  format: string;
  captureId: number;
  nodeName: string;
  packets: number;
  malformedPackets: number;
  truncatedPackets: number;
  /** ISO times (millisecond precision), null when the capture had no packets. */
  firstPacketTime: string | null;
  lastPacketTime: string | null;
  durationSec: number;
  sipMalformed: number;
  callIdsCapped: boolean;
  streamsOmitted: number;
  decode: AnalyzeSummary['decode'];
  rtpStats: MediaStats;
  elapsedMs: number;
  packetsPerSecond: number;
}

/** The run row of an analysed file: pass the captureId/nodeName analyze was given. */
export function captureRunFromSummary(
  summary: AnalyzeSummary,
  run: { runId: string; captureId?: number; nodeName?: string },
): CaptureRun {
  return {
    runId: run.runId,
    source: summary.file,
    format: summary.format,
    captureId: run.captureId ?? 0,
    nodeName: run.nodeName ?? '',
    packets: summary.packets,
    malformedPackets: summary.malformedPackets,
    truncatedPackets: summary.truncatedPackets,
    firstPacketTime: summary.firstPacketTime,
    lastPacketTime: summary.lastPacketTime,
    durationSec: summary.durationSec,
    sipMalformed: summary.sip.malformed,
    callIdsCapped: summary.sip.callIdsCapped,
    streamsOmitted: summary.rtp.streamsOmitted,
    decode: summary.decode,
    rtpStats: summary.rtp.stats,
    elapsedMs: summary.elapsedMs,
    packetsPerSecond: summary.packetsPerSecond,
  };
}

function isoMs(iso: string | null): number | null {
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

export function captureRunRow(run: CaptureRun, updatedAtMs: number, out: TsvBuffer): void {
  const first = isoMs(run.firstPacketTime);
  const last = isoMs(run.lastPacketTime);
  out.utf8(run.runId).timeMs(updatedAtMs).utf8(run.source).utf8(run.format).uint(run.captureId, U32);
  out.utf8(run.nodeName).uint(run.packets).uint(run.malformedPackets).uint(run.truncatedPackets);
  if (first === null) out.null();
  else out.timeMs(first);
  if (last === null) out.null();
  else out.timeMs(last);
  out
    .float(run.durationSec)
    .uint(run.sipMalformed)
    .bool(run.callIdsCapped)
    .uint(run.streamsOmitted)
    .utf8(JSON.stringify(run.decode))
    .utf8(JSON.stringify(run.rtpStats))
    .float(run.elapsedMs)
    .float(run.packetsPerSecond)
    .endRow();
}

export function vmInventoryRow(entry: VmInventoryEntry, out: TsvBuffer): void {
  out
    .utf8(entry.vmId)
    .utf8(entry.vmName)
    .utf8(entry.hypervisor)
    .utf8(entry.bridge)
    .utf8(entry.port)
    .utf8(entry.interface)
    .utf8(entry.mac.toLowerCase())
    .stringArray(entry.ips, 'utf8')
    .timeMs(entry.firstSeenMs)
    .timeMs(entry.lastSeenMs)
    .endRow();
}

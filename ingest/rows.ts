/**
 * CaptureEvents → TabSeparated rows of the store's tables (ingest/tsv.ts), one function per table.
 * SIP text was decoded as latin1 by the parser, so it is written back as latin1 and the stored bytes
 * are the captured bytes, invalid UTF-8 included. Column order follows the specs in schema/tables.ts.
 */
import type { AnalyzeSummary } from '../analyze/summary.js';
import type { MediaStats } from '../capture/rtp/media.js';
import {
  type CaptureEvent,
  HEP_PROTO_FAILOVER_JSON,
  HEP_PROTO_LOG,
  HEP_PROTO_RTCP_JSON,
  HEP_PROTO_RTP_QOS_JSON,
  HEP_PROTO_SIP,
} from '../core/event.js';
import { type FailoverRecord, failoverFromJson } from '../core/failover.js';
import { finite, isObject, parseJsonObject } from '../core/json.js';
import type { MediaIntervalFigures, MediaStreamReport, RtcpFigures } from '../core/media-report.js';
import { mediaReportFromJson } from '../core/media-report.js';
import type { SipMessage } from '../core/sip-message.js';
import type { VmInventoryEntry } from '../core/vm.js';
import { DEFAULT_EVENT_ID_SCHEME, type EventIdScheme, EventIds } from './event-id.js';
import { NativeBlock } from './native-block.js';
import type { RowWriter } from './row-writer.js';
import { EVENT_TABLE_SPECS, type EventTableName, insertColumns } from './schema/tables.js';
import { TsvBuffer } from './tsv.js';

export { mediaReportFromJson } from '../core/media-report.js';
export type { VmInventoryEntry } from '../core/vm.js';

// ---------------------------------------------------------------------------------------------------
// Rows per table

export interface RowContext {
  /** Capture run the rows belong to ('' for live streams); see capture_runs. */
  runId: string;
  /** The event ids' hasher (its scratch is reused event after event). */
  ids: EventIds;
}

export type EventRowSinks<W extends RowWriter = NativeBlock> = Record<EventTableName, W>;

/** One Native block per event table: what the writer sends. */
export function emptyRowSinks(): EventRowSinks {
  const block = (table: EventTableName) => new NativeBlock(insertColumns(EVENT_TABLE_SPECS[table]));
  return {
    sip_messages: block('sip_messages'),
    media_reports: block('media_reports'),
    rtcp_reports: block('rtcp_reports'),
    hep_logs: block('hep_logs'),
    failovers: block('failovers'),
  };
}

/** One TabSeparated buffer per event table: the readable form of the rows. */
function textRowSinks(initialBytes: number): EventRowSinks<TsvBuffer> {
  return {
    sip_messages: new TsvBuffer(initialBytes),
    media_reports: new TsvBuffer(initialBytes),
    rtcp_reports: new TsvBuffer(initialBytes),
    hep_logs: new TsvBuffer(initialBytes),
    failovers: new TsvBuffer(initialBytes),
  };
}

export interface EncodedEvent {
  eventId: bigint;
  /** Rows appended (0 when the event was skipped). */
  rows: number;
  /** Why nothing was stored, e.g. `unparsable SIP` or `protocol type 100`. */
  skipped?: string;
}

/** Appends the rows of one event to the table buffers. Never throws for bad event content. */
export function encodeEvent(
  event: CaptureEvent,
  sinks: EventRowSinks<RowWriter>,
  context: RowContext,
): EncodedEvent {
  const id = context.ids.of(event);
  if (event.protoType === HEP_PROTO_SIP) {
    // Parsed by the capture, or once on the ingest side (ingest/sip.ts): a SIP event without it did not parse.
    const sip = event.sip;
    if (sip === undefined) return { eventId: id, rows: 0, skipped: 'unparsable SIP' };
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
  if (event.protoType === HEP_PROTO_LOG) {
    hepLogRow(event, id, context, sinks.hep_logs);
    return { eventId: id, rows: 1 };
  }
  if (event.protoType === HEP_PROTO_FAILOVER_JSON) {
    const failover = event.failover ?? failoverFromJson(event.payload);
    if (failover === null) return { eventId: id, rows: 0, skipped: 'unrecognised failover JSON' };
    failoverRow(event, failover, id, context, sinks.failovers);
    return { eventId: id, rows: 1 };
  }
  return { eventId: id, rows: 0, skipped: `protocol type ${event.protoType}` };
}

/** The rows one event becomes, per table, as TabSeparated text (for tests and tools). */
export function eventRows(
  event: CaptureEvent,
  runId = '',
  scheme: EventIdScheme = DEFAULT_EVENT_ID_SCHEME,
): { eventId: bigint; skipped?: string; rows: Partial<Record<EventTableName, Buffer>> } {
  const sinks = textRowSinks(1024);
  const encoded = encodeEvent(event, sinks, { runId, ids: new EventIds(scheme, 1024) });
  const rows: Partial<Record<EventTableName, Buffer>> = {};
  for (const [table, sink] of Object.entries(sinks) as Array<[EventTableName, TsvBuffer]>) {
    if (sink.rows > 0) rows[table] = sink.take();
  }
  return { eventId: encoded.eventId, skipped: encoded.skipped, rows };
}

const U16 = 0xffff;
const U32 = 0xffffffff;

function sipRow(event: CaptureEvent, sip: SipMessage, id: bigint, context: RowContext, out: RowWriter): void {
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

function provenance(event: CaptureEvent, context: RowContext, out: RowWriter): void {
  out.uint(event.captureId, U32).utf8(event.nodeName).utf8(context.runId);
}

function mediaRow(
  event: CaptureEvent,
  r: MediaStreamReport,
  id: bigint,
  context: RowContext,
  out: RowWriter,
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

function intervalColumns(i: MediaIntervalFigures | null, out: RowWriter): void {
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
  out: RowWriter,
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
function rtcpRowFromHep(event: CaptureEvent, id: bigint, context: RowContext, out: RowWriter): void {
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

/** HEP type 100: a log line about the call named by the correlation id. */
function hepLogRow(event: CaptureEvent, id: bigint, context: RowContext, out: RowWriter): void {
  out
    .bigUint(id)
    .time(event.timestampNs)
    .latin1(event.correlationId)
    .utf8(event.srcIp)
    .uint(event.srcPort, U16)
    .utf8(event.dstIp)
    .uint(event.dstPort, U16)
    .bytes(event.payload);
  provenance(event, context, out);
  out.endRow();
}

/** HEP type 0xca (callscope's): one failover (core/failover.ts). */
function failoverRow(
  event: CaptureEvent,
  f: FailoverRecord,
  id: bigint,
  context: RowContext,
  out: RowWriter,
): void {
  out
    .bigUint(id)
    .timeMs(f.time)
    .utf8(f.address)
    .nullableUint(f.vlan, U16)
    .utf8(f.oldMac)
    .utf8(f.newMac)
    .utf8(f.oldVm)
    .utf8(f.newVm)
    .utf8(f.signal);
  if (f.lastAnswerBefore === null) out.null();
  else out.timeMs(f.lastAnswerBefore);
  if (f.firstAnswerAfter === null) out.null();
  else out.timeMs(f.firstAnswerAfter);
  if (f.gapMs === null) out.null();
  else out.int(f.gapMs);
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
  limits: AnalyzeSummary['limits'];
  failoverTracker: AnalyzeSummary['failovers']['tracker'];
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
    limits: summary.limits,
    failoverTracker: summary.failovers.tracker,
  };
}

function isoMs(iso: string | null): number | null {
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
}

export function captureRunRow(run: CaptureRun, updatedAtMs: number, out: RowWriter): void {
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
    .utf8(JSON.stringify(run.limits))
    .utf8(JSON.stringify(run.failoverTracker))
    .endRow();
}

export function vmInventoryRow(entry: VmInventoryEntry, out: RowWriter): void {
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

/**
 * The analyze summary (`AnalyzeSummary`, capture/analyze.ts) as far as the store knows it: SIP counts,
 * endpoints and RTP streams computed by SQL from the event tables, and what only the capture knew
 * (packets, decode counters, media counters) from capture_runs. With a run id the summary covers that
 * run's rows (run_id); without, the whole store, run rows added up.
 *
 * Queries read with FINAL, so events stored twice (re-sent in another batch, not yet merged away)
 * count once. Values reach the SQL only as query parameters.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import {
  type AnalyzeSummary,
  MAX_SUMMARY_STREAMS,
  type RtpStreamSummary,
  type VmLoad,
} from '../capture/analyze.js';
import { emptyFragmentStats } from '../capture/reassembly/fragments.js';
import { emptyTcpStats } from '../capture/reassembly/tcp.js';
import { emptyMediaStats } from '../capture/rtp/media.js';
import type { SipEndpointCounts } from '../capture/sip/extractor.js';
import { MAX_METHOD_KEYS, OTHER_METHODS } from '../capture/summary.js';
import type { TransportName } from '../core/event.js';
import type { MediaEndReason, RtcpFigures } from '../core/media-report.js';
import type { CaptureRun } from './rows.js';
import { qualifiedName } from './schema/ddl.js';

export interface StoreSummaryOptions {
  database: string;
  /** Summarise one capture run; without it, everything in the store. */
  runId?: string;
}

/** Call-IDs are counted by their first 256 bytes, as the capture counts them (MAX_KEY_PART). */
const CALL_ID_KEY_BYTES = 256;
const TOP_ENDPOINTS = 50;

/** Settings for reading figures back exactly: NaN/inf as strings rather than null. */
const READ_SETTINGS = 'SETTINGS output_format_json_quote_denormals = 1';

type Row = Record<string, unknown>;

export class StoreSummaryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreSummaryError';
  }
}

async function select<T extends Row>(
  client: ClickHouseClient,
  query: string,
  params: Record<string, unknown>,
  what: string,
): Promise<T[]> {
  try {
    const result = await client.query({
      query: `${query}\n${READ_SETTINGS}`,
      query_params: params,
      format: 'JSONEachRow',
    });
    return await result.json<T>();
  } catch (error) {
    throw new StoreSummaryError(
      `reading ${what}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
}

/** A number from JSON output: 64-bit integers arrive quoted, NaN and infinities as words. */
function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    if (value === 'nan' || value === '-nan') return Number.NaN;
    if (value === 'inf' || value === '+inf') return Number.POSITIVE_INFINITY;
    if (value === '-inf') return Number.NEGATIVE_INFINITY;
    return Number(value);
  }
  return Number.NaN;
}

function numOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : num(value);
}

/** SIP text is stored as the captured bytes and read back hex-encoded, so latin1 gives them back. */
function latin1(hex: unknown): string {
  return Buffer.from(String(hex), 'hex').toString('latin1');
}

/** DateTime64(3) text `YYYY-MM-DD hh:mm:ss.sss` (UTC) → ISO `YYYY-MM-DDThh:mm:ss.sssZ`. */
function isoOf(text: unknown): string | null {
  return typeof text === 'string' ? `${text.replace(' ', 'T')}Z` : null;
}

/** Ascending by UTF-16 code units, as analyze sorts request and response keys. */
function byKey([a]: [string, number], [b]: [string, number]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function storeSummary(
  client: ClickHouseClient,
  options: StoreSummaryOptions,
): Promise<AnalyzeSummary> {
  const db = options.database;
  const sip = qualifiedName(db, 'sip_messages');
  const media = qualifiedName(db, 'media_reports');
  const rtcp = qualifiedName(db, 'rtcp_reports');
  const params: Record<string, unknown> = {};
  let where = '1';
  if (options.runId !== undefined) {
    params.run = options.runId;
    where = 'run_id = {run:String}';
  }

  const run = await runFacts(client, db, options.runId);

  const [totals] = await select<Row>(
    client,
    `SELECT count() AS messages, countIf(retransmission) AS retransmissions,
       uniqExact(substring(call_id, 1, ${CALL_ID_KEY_BYTES})) AS call_ids
     FROM ${sip} FINAL WHERE ${where}`,
    params,
    'SIP totals',
  );

  const methodRows = await select<Row>(
    client,
    `SELECT hex(method) AS method, count() AS n, min(time) AS first
     FROM ${sip} FINAL WHERE is_request AND ${where}
     GROUP BY method ORDER BY first, method`,
    params,
    'SIP requests',
  );
  // The capture keeps the first MAX_METHOD_KEYS method names it meets and counts later ones together.
  const requests: Record<string, number> = Object.create(null);
  for (const row of methodRows) {
    const name = latin1(row.method);
    const key = Object.keys(requests).length < MAX_METHOD_KEYS ? name : OTHER_METHODS;
    requests[key] = (requests[key] ?? 0) + num(row.n);
  }

  const statusRows = await select<Row>(
    client,
    `SELECT status, count() AS n FROM ${sip} FINAL WHERE NOT is_request AND status != 0 AND ${where} GROUP BY status`,
    params,
    'SIP responses',
  );
  const responses = Object.fromEntries(
    statusRows.map((r) => [String(num(r.status)), num(r.n)] as [string, number]).sort(byKey),
  );

  const transportRows = await select<Row>(
    client,
    `SELECT transport, count() AS n FROM ${sip} FINAL WHERE ${where} GROUP BY transport ORDER BY transport`,
    params,
    'SIP transports',
  );

  return {
    file: run.file,
    format: run.format,
    packets: run.packets,
    malformedPackets: run.malformedPackets,
    truncatedPackets: run.truncatedPackets,
    firstPacketTime: run.firstPacketTime,
    lastPacketTime: run.lastPacketTime,
    durationSec: run.durationSec,
    sip: {
      messages: num(totals?.messages ?? 0),
      retransmissions: num(totals?.retransmissions ?? 0),
      requests: Object.fromEntries(Object.entries(requests).sort(byKey)),
      responses,
      malformed: run.sipMalformed,
      callIds: num(totals?.call_ids ?? 0),
      callIdsCapped: run.callIdsCapped,
      transports: Object.fromEntries(transportRows.map((r) => [String(r.transport), num(r.n)])),
      endpoints: await topEndpoints(client, sip, where, params),
    },
    decode: run.decode,
    rtp: {
      streams: await streams(client, media, rtcp, where, params),
      streamsOmitted: run.streamsOmitted,
      stats: run.rtpStats,
    },
    elapsedMs: run.elapsedMs,
    packetsPerSecond: run.packetsPerSecond,
    vms: await vmLoads(client, sip, media, where, params),
  };
}

/** Per-VM load as analyze counts it; undefined when nothing is attributed. */
async function vmLoads(
  client: ClickHouseClient,
  sip: string,
  media: string,
  where: string,
  params: Record<string, unknown>,
): Promise<VmLoad[] | undefined> {
  const rows = await select<Row>(
    client,
    `SELECT vm, sum(sip_sent) AS sip_sent, sum(sip_received) AS sip_received,
       sum(invites_sent) AS invites_sent, sum(invites_received) AS invites_received,
       sum(streams_sent) AS streams_sent, sum(streams_received) AS streams_received
     FROM (
       SELECT e.1 AS vm, e.2 AS sip_sent, e.3 AS sip_received, e.2 * invite AS invites_sent,
         e.3 * invite AS invites_received, 0 AS streams_sent, 0 AS streams_received
       FROM (
         SELECT arrayJoin([(src_vm, 1, 0), (dst_vm, 0, 1)]) AS e, is_request AND method = 'INVITE' AS invite
         FROM ${sip} FINAL WHERE ${where} AND (src_vm != '' OR dst_vm != '')
       ) WHERE e.1 != ''
       UNION ALL
       SELECT e.1, 0, 0, 0, 0, e.2, e.3
       FROM (
         SELECT arrayJoin([(src_vm, 1, 0), (dst_vm, 0, 1)]) AS e
         FROM ${media} FINAL WHERE kind = 'final' AND ${where} AND (src_vm != '' OR dst_vm != '')
       ) WHERE e.1 != ''
     )
     GROUP BY vm ORDER BY vm LIMIT 10000`,
    params,
    'per-VM load',
  );
  if (rows.length === 0) return undefined;
  return rows.map((r) => ({
    vm: String(r.vm),
    sipSent: num(r.sip_sent),
    sipReceived: num(r.sip_received),
    invitesSent: num(r.invites_sent),
    invitesReceived: num(r.invites_received),
    streamsSent: num(r.streams_sent),
    streamsReceived: num(r.streams_received),
  }));
}

/**
 * The busiest endpoints as the capture ranks them: most messages sent + received, then address; the
 * capture sorts its endpoint table in the order endpoints first appeared (sender before receiver of a
 * message), so candidates are fetched in that order and sorted with the capture's own comparison.
 */
async function topEndpoints(
  client: ClickHouseClient,
  sip: string,
  where: string,
  params: Record<string, unknown>,
): Promise<SipEndpointCounts[]> {
  const rows = await select<Row>(
    client,
    `SELECT transport, ip, port, sent, received FROM (
       SELECT transport, e.1 AS ip, e.2 AS port, sum(e.3) AS sent, sum(e.4) AS received,
         min((time, e.4)) AS first_seen
       FROM (
         SELECT transport, time,
           arrayJoin([(src_ip, src_port, 1, 0), (dst_ip, dst_port, 0, 1)]) AS e
         FROM ${sip} FINAL WHERE ${where}
       )
       GROUP BY transport, ip, port
       ORDER BY sent + received DESC
       LIMIT ${TOP_ENDPOINTS} WITH TIES
     )
     ORDER BY first_seen, transport, ip, port`,
    params,
    'SIP endpoints',
  );
  const endpoints: SipEndpointCounts[] = rows.map((r) => ({
    transport: r.transport as TransportName,
    ip: String(r.ip),
    port: num(r.port),
    sent: num(r.sent),
    received: num(r.received),
  }));
  return endpoints
    .sort((a, b) => b.sent + b.received - (a.sent + a.received) || (a.ip < b.ip ? -1 : 1))
    .slice(0, TOP_ENDPOINTS);
}

/** Final stream reports with their RTCP, as analyze lists them (ordered by start). */
async function streams(
  client: ClickHouseClient,
  media: string,
  rtcp: string,
  where: string,
  params: Record<string, unknown>,
): Promise<RtpStreamSummary[]> {
  const rows = await select<Row>(
    client,
    `SELECT toString(event_id) AS id, end_reason, hex(call_id) AS call_id, discovery, ip_family, src_ip, src_port,
       dst_ip, dst_port, vlan, ssrc, previous_ssrc, payload_type, hex(codec) AS codec, clock_rate, payload_types,
       arrayMap(x -> hex(x), payload_names) AS payload_names,
       toString(toUnixTimestamp64Nano(start_time)) AS start_ns, toString(toUnixTimestamp64Nano(end_time)) AS end_ns,
       start_offset, end_offset, packets, expected, lost, loss_percent, sequence_errors, duplicates, out_of_order,
       wrong_timestamps, markers, min_delta_ms, mean_delta_ms, max_delta_ms, min_jitter_ms, mean_jitter_ms,
       max_jitter_ms, max_skew_ms, bytes, bitrate_kbps, problem, mos, min_mos, r_factor, loss_bursts, delay_over,
       has_rtcp
     FROM ${media} FINAL WHERE kind = 'final' AND ${where}
     ORDER BY start_offset, time, event_id
     LIMIT ${MAX_SUMMARY_STREAMS}`,
    params,
    'RTP streams',
  );
  const rtcpRows = await select<Row>(
    client,
    `SELECT toString(event_id) AS id, sender_reports, receiver_reports, fraction_lost, cumulative_lost, jitter_ms,
       round_trip_ms, xr_r_factor, xr_mos_lq, xr_mos_cq, cname
     FROM ${rtcp} FINAL WHERE origin = 'media-report' AND report_kind = 'final' AND ${where}`,
    params,
    'RTCP of RTP streams',
  );
  const rtcpById = new Map<string, RtcpFigures>();
  for (const r of rtcpRows) {
    rtcpById.set(String(r.id), {
      senderReports: num(r.sender_reports),
      receiverReports: num(r.receiver_reports),
      fractionLost: numOrNull(r.fraction_lost),
      cumulativeLost: numOrNull(r.cumulative_lost),
      jitterMs: numOrNull(r.jitter_ms),
      roundTripMs: numOrNull(r.round_trip_ms),
      xrRFactor: numOrNull(r.xr_r_factor),
      xrMosLq: numOrNull(r.xr_mos_lq),
      xrMosCq: numOrNull(r.xr_mos_cq),
      cname: r.cname === null || r.cname === undefined ? null : String(r.cname),
    });
  }
  const delayOver = (value: unknown): Record<string, number> =>
    Object.fromEntries(Object.entries((value ?? {}) as Record<string, unknown>).map(([k, v]) => [k, num(v)]));
  return rows.map((r) => {
    const callId = latin1(r.call_id);
    return {
      endReason: (r.end_reason === '' ? null : r.end_reason) as MediaEndReason | null,
      callId: callId === '' ? null : callId,
      discovery: r.discovery as 'sdp' | 'heuristic',
      ipFamily: num(r.ip_family) === 6 ? 6 : 4,
      src: String(r.src_ip),
      srcPort: num(r.src_port),
      dst: String(r.dst_ip),
      dstPort: num(r.dst_port),
      vlan: numOrNull(r.vlan),
      ssrc: num(r.ssrc),
      previousSsrc: numOrNull(r.previous_ssrc),
      payloadType: num(r.payload_type),
      codec: r.codec === null ? null : latin1(r.codec),
      clockRate: num(r.clock_rate),
      payloadTypes: (r.payload_types as unknown[]).map(num),
      payloadNames: (r.payload_names as unknown[]).map(latin1),
      startTime: num(r.start_offset),
      endTime: num(r.end_offset),
      packets: num(r.packets),
      expected: num(r.expected),
      lost: num(r.lost),
      lossPercent: num(r.loss_percent),
      sequenceErrors: num(r.sequence_errors),
      duplicates: num(r.duplicates),
      outOfOrder: num(r.out_of_order),
      wrongTimestamps: num(r.wrong_timestamps),
      markers: num(r.markers),
      minDeltaMs: num(r.min_delta_ms),
      meanDeltaMs: num(r.mean_delta_ms),
      maxDeltaMs: num(r.max_delta_ms),
      minJitterMs: num(r.min_jitter_ms),
      meanJitterMs: num(r.mean_jitter_ms),
      maxJitterMs: num(r.max_jitter_ms),
      maxSkewMs: num(r.max_skew_ms),
      bytes: num(r.bytes),
      bitrateKbps: num(r.bitrate_kbps),
      problem: r.problem === true,
      mos: numOrNull(r.mos),
      minMos: numOrNull(r.min_mos),
      rFactor: numOrNull(r.r_factor),
      lossBursts: (r.loss_bursts as unknown[]).map(num),
      delayOver: delayOver(r.delay_over),
      rtcp: r.has_rtcp === true ? (rtcpById.get(String(r.id)) ?? null) : null,
      startNs: String(r.start_ns),
      endNs: String(r.end_ns),
    };
  });
}

// ---------------------------------------------------------------------------------------------------
// capture_runs

/** A capture_runs row as the summary needs it: the run's record, named as the summary names it. */
type RunFacts = Omit<CaptureRun, 'runId' | 'source' | 'format' | 'captureId' | 'nodeName'> & {
  file: string;
  format: AnalyzeSummary['format'];
};

async function runFacts(client: ClickHouseClient, db: string, runId: string | undefined): Promise<RunFacts> {
  const rows = await select<Row>(
    client,
    `SELECT run_id, source, format, packets, malformed_packets, truncated_packets, first_packet_time,
       last_packet_time, duration_sec, sip_malformed, call_ids_capped, streams_omitted, decode, rtp_stats,
       elapsed_ms, packets_per_second
     FROM ${qualifiedName(db, 'capture_runs')} FINAL
     WHERE ${runId === undefined ? '1' : 'run_id = {run:String}'}
     ORDER BY first_packet_time, run_id`,
    runId === undefined ? {} : { run: runId },
    'capture runs',
  );
  if (runId !== undefined && rows.length === 0) {
    throw new StoreSummaryError(`no capture run ${JSON.stringify(runId)} in ${db}.capture_runs`);
  }
  const facts = rows.map(runRowFacts);
  if (facts.length === 1) return facts[0]!;
  return combineRuns(facts);
}

function parseJson<T>(text: unknown, what: string): T {
  try {
    return JSON.parse(String(text)) as T;
  } catch (error) {
    throw new StoreSummaryError(`capture_runs.${what} is not JSON`, { cause: error });
  }
}

function runRowFacts(r: Row): RunFacts {
  return {
    file: String(r.source),
    format: String(r.format) as AnalyzeSummary['format'],
    packets: num(r.packets),
    malformedPackets: num(r.malformed_packets),
    truncatedPackets: num(r.truncated_packets),
    firstPacketTime: isoOf(r.first_packet_time),
    lastPacketTime: isoOf(r.last_packet_time),
    durationSec: num(r.duration_sec),
    sipMalformed: num(r.sip_malformed),
    callIdsCapped: r.call_ids_capped === true,
    streamsOmitted: num(r.streams_omitted),
    decode: parseJson(r.decode, 'decode'),
    rtpStats: parseJson(r.rtp_stats, 'rtp_stats'),
    elapsedMs: num(r.elapsed_ms),
    packetsPerSecond: num(r.packets_per_second),
  };
}

/** Adds numeric leaves of two counter objects (decode, rtp stats); arrays are concatenated. */
function addCounters<T>(a: T, b: T): T {
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b] as T;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) {
      out[k] = k in out ? addCounters(out[k], v) : v;
    }
    return out as T;
  }
  return a;
}

/** Several runs (or none) as one: counters added, the time span covering them all. */
function combineRuns(runs: RunFacts[]): RunFacts {
  const empty: RunFacts = {
    file: '',
    format: 'pcap',
    packets: 0,
    malformedPackets: 0,
    truncatedPackets: 0,
    firstPacketTime: null,
    lastPacketTime: null,
    durationSec: 0,
    sipMalformed: 0,
    callIdsCapped: false,
    streamsOmitted: 0,
    decode: emptyDecode(),
    rtpStats: emptyMediaStats(),
    elapsedMs: 0,
    packetsPerSecond: 0,
  };
  const all = empty;
  for (const r of runs) {
    if (all.file === '') {
      all.file = r.file;
      all.format = r.format;
    }
    all.packets += r.packets;
    all.malformedPackets += r.malformedPackets;
    all.truncatedPackets += r.truncatedPackets;
    all.firstPacketTime = minIso(all.firstPacketTime, r.firstPacketTime, -1);
    all.lastPacketTime = minIso(all.lastPacketTime, r.lastPacketTime, 1);
    all.sipMalformed += r.sipMalformed;
    all.callIdsCapped ||= r.callIdsCapped;
    all.streamsOmitted += r.streamsOmitted;
    all.decode = addCounters(all.decode, r.decode);
    all.rtpStats = addCounters(all.rtpStats, r.rtpStats);
    all.elapsedMs += r.elapsedMs;
  }
  if (runs.length > 1) all.file = `${runs.length} capture runs`;
  const first = all.firstPacketTime === null ? null : Date.parse(all.firstPacketTime);
  const last = all.lastPacketTime === null ? null : Date.parse(all.lastPacketTime);
  all.durationSec = first === null || last === null ? 0 : (last - first) / 1000;
  all.packetsPerSecond = all.elapsedMs > 0 ? Math.round(all.packets / (all.elapsedMs / 1000)) : 0;
  return all;
}

/** The earlier (sign -1) or later (sign 1) of two ISO times; null counts as absent. */
function minIso(a: string | null, b: string | null, sign: -1 | 1): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return (a < b ? -1 : 1) === sign ? a : b;
}

function emptyDecode(): AnalyzeSummary['decode'] {
  return {
    ipv4: 0,
    ipv6: 0,
    udp: 0,
    tcp: 0,
    sctp: 0,
    nonIp: 0,
    tunnelled: { ipip: 0, gre: 0, erspan: 0, vxlan: 0 },
    fragments: emptyFragmentStats(),
    tcpStreams: emptyTcpStats(),
    errors: {},
    unsupportedLinkTypes: {},
    fileWarnings: [],
  };
}

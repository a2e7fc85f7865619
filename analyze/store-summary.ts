/**
 * The analyze summary (analyze/summary.ts) as far as the store knows it: SIP counts, endpoints, per-VM
 * load and RTP streams from the event tables, fed into the same counter `analyze` uses (SummarySink)
 * as groups of equal messages, and what only the capture knew (packets, decode and media counters)
 * from capture_runs. A summary covers one run (run_id), or a time range and node: live data that
 * came through Kafka or HEP has no capture run, and its summary says so (format 'store').
 *
 * Queries read with FINAL, so events stored twice (re-sent in another batch, not yet merged away)
 * count once. Values reach the SQL only as query parameters.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { emptyFragmentStats } from '../capture/reassembly/fragments.js';
import { emptyTcpStats } from '../capture/reassembly/tcp.js';
import { emptyMediaStats } from '../capture/rtp/media.js';
import type { TransportName } from '../core/event.js';
import { FAILOVER_SIGNALS, type FailoverSignal } from '../core/failover.js';
import type { MediaEndReason, MediaStreamReport, RtcpFigures } from '../core/media-report.js';
import type { CaptureRun } from '../ingest/rows.js';
import { qualifiedName } from '../ingest/schema/ddl.js';
import { storedSipEvents } from './calls/stored-events.js';
import { storedCallsSummary } from './calls/stored-kpis.js';
import { emptyFailoverTrackerStats } from './failover/tracker.js';
import { OptionsProbeTracker } from './probes/tracker.js';
import { RegistrationTracker } from './registrations/tracker.js';
import { type AnalyzeSummary, MAX_SUMMARY_STREAMS, SummarySink, trackedSummary } from './summary.js';

export interface StoreSummaryOptions {
  database: string;
  /** Summarise one capture run; without it, every run and event in the scope below. */
  runId?: string;
  /** Only events of this capture node (HEP node name / --node-name). */
  node?: string;
  /** Only events captured at or after `since` and before `until`. */
  since?: Date;
  until?: Date;
}

/** Call-IDs are counted by their first 256 bytes, as the capture counts them (MAX_KEY_PART). */
const CALL_ID_KEY_BYTES = 256;

/** Settings for reading figures back exactly: NaN/inf as strings rather than null. */
const READ_SETTINGS = 'SETTINGS output_format_json_quote_denormals = 1';

type Row = Record<string, unknown>;

export class StoreSummaryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreSummaryError';
  }
}

/** `--run` names a run the store does not hold. */
export class UnknownRunError extends StoreSummaryError {
  constructor(
    readonly runId: string,
    readonly database: string,
  ) {
    super(`no capture run ${JSON.stringify(runId)} in ${database}.capture_runs`);
    this.name = 'UnknownRunError';
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

export async function storeSummary(
  client: ClickHouseClient,
  options: StoreSummaryOptions,
): Promise<AnalyzeSummary> {
  const db = options.database;
  const sip = qualifiedName(db, 'sip_messages');
  const media = qualifiedName(db, 'media_reports');
  const rtcp = qualifiedName(db, 'rtcp_reports');
  const scope = scopeOf(options);
  const run = await runFacts(client, db, options);
  const counter = new SummarySink();

  // Groups of equal messages in the order of their first message, so that the counter meets method
  // names and endpoints in the order the capture met them.
  const groups = await select<Row>(
    client,
    `SELECT is_request, hex(method) AS method, status, retransmission, transport, src_ip, src_port, dst_ip,
       dst_port, src_vm, dst_vm, count() AS n, min(time) AS first
     FROM ${sip} FINAL WHERE ${scope.where}
     GROUP BY is_request, method, status, retransmission, transport, src_ip, src_port, dst_ip, dst_port,
       src_vm, dst_vm
     ORDER BY first, is_request DESC, method, status, src_ip, src_port, dst_ip, dst_port`,
    scope.params,
    'SIP messages',
  );
  for (const g of groups) {
    const isRequest = g.is_request === true;
    counter.addSip(
      {
        method: isRequest ? latin1(g.method) : null,
        status: isRequest ? null : num(g.status),
        retransmission: g.retransmission === true,
        transport: g.transport as TransportName,
        srcIp: String(g.src_ip),
        srcPort: num(g.src_port),
        dstIp: String(g.dst_ip),
        dstPort: num(g.dst_port),
        srcVm: String(g.src_vm),
        dstVm: String(g.dst_vm),
      },
      num(g.n),
    );
  }
  const [totals] = await select<Row>(
    client,
    `SELECT uniqExact(substring(call_id, 1, ${CALL_ID_KEY_BYTES})) AS call_ids, min(time) AS first, max(time) AS last
     FROM ${sip} FINAL WHERE ${scope.where}`,
    scope.params,
    'Call-IDs',
  );
  counter.setCallIds(num(totals?.call_ids ?? 0), run.callIdsCapped);
  await streams(client, media, rtcp, scope, counter);
  counter.addOmittedStreams(run.streamsOmitted);
  await failovers(client, qualifiedName(db, 'failovers'), scope, counter);

  const counted = counter.counts();
  const lastIso =
    run.format !== 'store' ? run.lastPacketTime : counted.sip.messages > 0 ? isoOf(totals?.last) : null;
  const tracked = await trackedFromStore(
    client,
    db,
    scope,
    lastIso === null ? undefined : Date.parse(lastIso),
  );
  const summary: AnalyzeSummary = {
    file: run.file,
    format: run.format,
    packets: run.packets,
    malformedPackets: run.malformedPackets,
    truncatedPackets: run.truncatedPackets,
    firstPacketTime: run.firstPacketTime,
    lastPacketTime: run.lastPacketTime,
    durationSec: run.durationSec,
    sip: { ...counted.sip, malformed: run.sipMalformed },
    decode: run.decode,
    rtp: { ...counted.rtp, stats: run.rtpStats },
    elapsedMs: run.elapsedMs,
    packetsPerSecond: run.packetsPerSecond,
    vms: counted.vms,
    // What the capture's structures gave up is the runs'; what the counter gave up is recounted here.
    // The calls table (analyze/calls/job.ts keeps it; a run's calls are computed when it ends).
    calls: await storedCallsSummary(client, options.database, {
      runId: options.runId,
      node: options.node,
      since: options.since,
      until: options.until,
    }).catch((error: unknown) => {
      throw new StoreSummaryError(
        `reading calls: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }),
    ...tracked,
    failovers: { ...counted.failovers, tracker: run.failoverTracker },
    limits: {
      ...run.limits,
      endpointMessagesUntracked: counter.untrackedEndpointMessages,
      vmEventsUntracked: counter.untrackedVmEvents,
      callIdsCapped: counted.sip.callIdsCapped,
    },
  };
  if (run.format === 'store') {
    // No capture run: the time span is the events' own.
    const first = counted.sip.messages > 0 ? isoOf(totals.first) : null;
    const last = counted.sip.messages > 0 ? isoOf(totals.last) : null;
    summary.firstPacketTime = first;
    summary.lastPacketTime = last;
    summary.durationSec = first === null || last === null ? 0 : (Date.parse(last) - Date.parse(first)) / 1000;
  }
  return summary;
}

/**
 * Registrations and OPTIONS probes recounted by the trackers `analyze` runs, over the stored REGISTER
 * and OPTIONS messages in capture order, closed at the same end.
 */
async function trackedFromStore(
  client: ClickHouseClient,
  database: string,
  scope: Scope,
  endMs: number | undefined,
): Promise<Pick<AnalyzeSummary, 'registrations' | 'probes'>> {
  const registrations = new RegistrationTracker();
  const probes = new OptionsProbeTracker();
  try {
    for await (const item of storedSipEvents(client, database, {
      where: `(${scope.where}) AND cseq_method IN ('REGISTER', 'OPTIONS')`,
      params: scope.params,
    })) {
      if (item.kind !== 'sip') continue;
      registrations.add(item.event);
      probes.add(item.event);
    }
  } catch (error) {
    throw new StoreSummaryError(
      `reading REGISTER and OPTIONS messages: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return { registrations: trackedSummary(registrations, endMs), probes: trackedSummary(probes, endMs) };
}

/** The rows a summary covers: one run, or a time range and node (every row without either). */
interface Scope {
  where: string;
  params: Record<string, unknown>;
}

/**
 * The conditions a summary's options make. Events are scoped by their capture time; capture runs by
 * their packets' span (`first`, `last` columns), so that a run overlapping the range counts.
 */
function scopeOf(
  options: StoreSummaryOptions,
  time: { first: string; last: string } = { first: 'time', last: 'time' },
): Scope {
  const conditions: string[] = [];
  const params: Record<string, unknown> = {};
  if (options.runId !== undefined) {
    conditions.push('run_id = {run:String}');
    params.run = options.runId;
  }
  if (options.node !== undefined) {
    conditions.push('node = {node:String}');
    params.node = options.node;
  }
  if (options.since !== undefined) {
    conditions.push(`${time.last} >= fromUnixTimestamp64Milli({since:Int64})`);
    params.since = options.since.getTime();
  }
  if (options.until !== undefined) {
    conditions.push(`${time.first} < fromUnixTimestamp64Milli({until:Int64})`);
    params.until = options.until.getTime();
  }
  return { where: conditions.length === 0 ? '1' : conditions.join(' AND '), params };
}

/** Final stream reports with their RTCP, counted in the order of their start. */
async function streams(
  client: ClickHouseClient,
  media: string,
  rtcp: string,
  scope: Scope,
  counter: SummarySink,
): Promise<void> {
  const rows = await select<Row>(
    client,
    `SELECT toString(event_id) AS id, end_reason, hex(call_id) AS call_id, discovery, ip_family, src_ip, src_port,
       dst_ip, dst_port, vlan, src_vm, dst_vm, ssrc, previous_ssrc, payload_type, hex(codec) AS codec, clock_rate,
       payload_types, arrayMap(x -> hex(x), payload_names) AS payload_names,
       toString(toUnixTimestamp64Nano(start_time)) AS start_ns, toString(toUnixTimestamp64Nano(end_time)) AS end_ns,
       start_offset, end_offset, packets, expected, lost, loss_percent, sequence_errors, duplicates, out_of_order,
       wrong_timestamps, markers, min_delta_ms, mean_delta_ms, max_delta_ms, min_jitter_ms, mean_jitter_ms,
       max_jitter_ms, max_skew_ms, bytes, bitrate_kbps, problem, mos, min_mos, r_factor, loss_bursts, delay_over,
       has_rtcp
     FROM ${media} FINAL WHERE kind = 'final' AND ${scope.where}
     ORDER BY start_offset, time, event_id
     LIMIT ${MAX_SUMMARY_STREAMS}`,
    scope.params,
    'RTP streams',
  );
  const rtcpRows = await select<Row>(
    client,
    `SELECT toString(event_id) AS id, sender_reports, receiver_reports, fraction_lost, cumulative_lost, jitter_ms,
       round_trip_ms, xr_r_factor, xr_mos_lq, xr_mos_cq, cname
     FROM ${rtcp} FINAL WHERE origin = 'media-report' AND report_kind = 'final' AND ${scope.where}`,
    scope.params,
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
  for (const r of rows) {
    const callId = latin1(r.call_id);
    const report: MediaStreamReport = {
      kind: 'final',
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
      startNs: BigInt(String(r.start_ns)),
      endNs: BigInt(String(r.end_ns)),
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
      interval: null,
      rtcp: r.has_rtcp === true ? (rtcpById.get(String(r.id)) ?? null) : null,
    };
    counter.addStream(report, String(r.src_vm), String(r.dst_vm));
  }
}

/** The failovers table's rows, counted in order of time (as the capture's summary lists them). */
async function failovers(client: ClickHouseClient, table: string, scope: Scope, counter: SummarySink) {
  const rows = await select<Row>(
    client,
    `SELECT toUnixTimestamp64Milli(time) AS time, address, vlan, old_mac, new_mac, old_vm, new_vm, signal,
       toUnixTimestamp64Milli(last_answer_before) AS before, toUnixTimestamp64Milli(first_answer_after) AS after,
       gap_ms
     FROM ${table} FINAL WHERE ${scope.where}
     ORDER BY time, address, event_id`,
    scope.params,
    'failovers',
  );
  for (const r of rows) {
    counter.addFailover({
      time: num(r.time),
      address: String(r.address),
      vlan: numOrNull(r.vlan),
      oldMac: String(r.old_mac),
      newMac: String(r.new_mac),
      oldVm: String(r.old_vm),
      newVm: String(r.new_vm),
      signal: FAILOVER_SIGNALS.find((s) => s === r.signal) ?? (String(r.signal) as FailoverSignal),
      lastAnswerBefore: numOrNull(r.before),
      firstAnswerAfter: numOrNull(r.after),
      gapMs: numOrNull(r.gap_ms),
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// capture_runs

/** A capture_runs row as the summary needs it: the run's record, named as the summary names it. */
type RunFacts = Omit<CaptureRun, 'runId' | 'source' | 'format' | 'captureId' | 'nodeName'> & {
  file: string;
  format: AnalyzeSummary['format'];
};

/**
 * The capture runs a summary covers: the named run (an error if there is none), else the runs of the
 * node whose packets overlap the time range. None (events from Kafka or HEP): format 'store'.
 */
async function runFacts(
  client: ClickHouseClient,
  db: string,
  options: StoreSummaryOptions,
): Promise<RunFacts> {
  const scope = scopeOf(options, { first: 'first_packet_time', last: 'last_packet_time' });
  const rows = await select<Row>(
    client,
    `SELECT run_id, source, format, packets, malformed_packets, truncated_packets, first_packet_time,
       last_packet_time, duration_sec, sip_malformed, call_ids_capped, streams_omitted, decode, rtp_stats,
       elapsed_ms, packets_per_second, limits, failover_tracker
     FROM ${qualifiedName(db, 'capture_runs')} FINAL
     WHERE ${scope.where}
     ORDER BY first_packet_time, run_id`,
    scope.params,
    'capture runs',
  );
  if (options.runId !== undefined && rows.length === 0) {
    throw new UnknownRunError(options.runId, db);
  }
  const facts = rows.map(runRowFacts);
  if (facts.length === 1) return facts[0]!;
  const combined = combineRuns(facts);
  if (facts.length === 0) {
    combined.format = 'store';
    combined.file = describeScope(db, options);
  }
  return combined;
}

/** What a summary without capture runs covers, for its `file` line. */
function describeScope(db: string, options: StoreSummaryOptions): string {
  const parts = [`store ${db}`];
  if (options.node !== undefined) parts.push(`node ${options.node}`);
  if (options.since !== undefined) parts.push(`since ${options.since.toISOString()}`);
  if (options.until !== undefined) parts.push(`until ${options.until.toISOString()}`);
  return parts.join(', ');
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
    // Runs stored before schema version 5 have none.
    limits: { ...emptyLimits(), ...(r.limits === '' ? {} : parseJson<object>(r.limits, 'limits')) },
    // Runs stored before schema version 8 have none.
    failoverTracker: {
      ...emptyFailoverTrackerStats(),
      ...(r.failover_tracker === '' ? {} : parseJson<object>(r.failover_tracker, 'failover_tracker')),
    },
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
    limits: emptyLimits(),
    failoverTracker: emptyFailoverTrackerStats(),
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
    all.limits = addCounters(all.limits, r.limits);
    all.failoverTracker = addCounters(all.failoverTracker, r.failoverTracker);
    all.limits.callIdsCapped ||= r.limits.callIdsCapped;
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

function emptyLimits(): AnalyzeSummary['limits'] {
  return {
    retransmissionStatesForgotten: 0,
    endpointMessagesUntracked: 0,
    vmEventsUntracked: 0,
    callIdsCapped: false,
    tcpStreamsEvicted: 0,
    sctpMessagesEvicted: 0,
    fragmentsEvicted: 0,
    rtpStreamsEvicted: 0,
    rtpStreamsRefused: 0,
    callsEvicted: 0,
    callLegsForgotten: 0,
    failoverAddressesForgotten: 0,
  };
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
    arp: { requests: 0, replies: 0, gratuitous: 0, other: 0 },
    fragments: emptyFragmentStats(),
    tcpStreams: emptyTcpStats(),
    errors: {},
    unsupportedLinkTypes: {},
    truncatedRecords: 0,
    fileWarnings: [],
  };
}

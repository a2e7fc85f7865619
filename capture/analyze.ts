import type { CaptureEvent } from './event.js';
import { readCaptureFile } from './file/reader.js';
import type { Logger } from './log.js';
import { CapturePipeline } from './pipeline.js';
import type { FragmentStats } from './reassembly/fragments.js';
import type { TcpStats } from './reassembly/tcp.js';
import type { MediaStats, MediaTrackerOptions } from './rtp/media.js';
import type { MediaStreamReport } from './rtp/report.js';
import type { SipEndpointCounts } from './sip/extractor.js';
import type { SipCounts } from './summary.js';

export interface AnalyzeOptions {
  logger?: Logger;
  onProgress?: (bytesRead: number, totalBytes: number, packets: number) => void;
  onEvent?: (event: CaptureEvent) => void;
  captureId?: number;
  nodeName?: string;
  /** Media discovery and reporting options (heuristic RTP, report interval, timeouts, bounds). */
  media?: Omit<MediaTrackerOptions, 'onReport' | 'onProblem'>;
  /** Backpressure: asked between read chunks; reading waits for a returned promise (ReadOptions.pause). */
  pause?: () => Promise<void> | null;
}

/** Streams listed in a summary at most; more are counted in `streamsOmitted`. */
export const MAX_SUMMARY_STREAMS = 100_000;

/** One RTP stream as the summary lists it: its final report, nanosecond times as decimal strings. */
export type RtpStreamSummary = Omit<
  MediaStreamReport,
  'kind' | 'interval' | 'source' | 'startNs' | 'endNs'
> & {
  startNs: string;
  endNs: string;
};

export interface AnalyzeSummary {
  file: string;
  format: 'pcap' | 'pcapng';
  packets: number;
  /**
   * Packets we could not use: undecodable headers, corrupt or cut-off file records, and payloads
   * that started like SIP but could not be parsed.
   */
  malformedPackets: number;
  /** Packets shorter than on the wire (snaplen); still decoded as far as they go. */
  truncatedPackets: number;
  firstPacketTime: string | null;
  lastPacketTime: string | null;
  durationSec: number;
  sip: SipCounts & {
    malformed: number;
    callIds: number;
    /** True when more distinct Call-IDs arrived than are counted exactly. */
    callIdsCapped: boolean;
    transports: Record<string, number>;
    /** The 50 busiest SIP endpoints (address, port, transport): shows SIP on unexpected ports. */
    endpoints: SipEndpointCounts[];
  };
  decode: {
    ipv4: number;
    ipv6: number;
    udp: number;
    tcp: number;
    sctp: number;
    nonIp: number;
    tunnelled: { ipip: number; gre: number; erspan: number; vxlan: number };
    fragments: FragmentStats;
    tcpStreams: TcpStats;
    errors: Record<string, number>;
    unsupportedLinkTypes: Record<string, number>;
    fileWarnings: string[];
  };
  rtp: {
    /** Every stream's final figures, in order of first packet. */
    streams: RtpStreamSummary[];
    streamsOmitted: number;
    stats: MediaStats;
  };
  elapsedMs: number;
  packetsPerSecond: number;
}

/** ISO text of a capture time; null when absent or outside what a Date holds (hostile timestamps). */
function isoTime(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || Math.abs(seconds) > 8.64e12) return null;
  return new Date(seconds * 1000).toISOString();
}

function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Reads a capture file end to end and summarises its SIP. Throws CaptureFormatError for unusable files. */
export async function analyzeFile(path: string, options: AnalyzeOptions = {}): Promise<AnalyzeSummary> {
  const started = performance.now();
  const streams: RtpStreamSummary[] = [];
  let streamsOmitted = 0;
  const pipeline = new CapturePipeline({
    sourceName: path,
    isFile: true,
    logger: options.logger,
    captureId: options.captureId,
    nodeName: options.nodeName,
    media: options.media,
    onEvent: (event) => {
      const report = event.media;
      if (report !== undefined && report.kind === 'final') {
        if (streams.length < MAX_SUMMARY_STREAMS) streams.push(streamSummary(report));
        else streamsOmitted++;
      }
      options.onEvent?.(event);
    },
  });
  let packets = 0;
  const onProgress = options.onProgress;
  const read = await readCaptureFile(
    path,
    (record) => {
      packets++;
      pipeline.handle(record);
    },
    {
      onProgress: onProgress ? (bytes, total) => onProgress(bytes, total, packets) : undefined,
      pause: options.pause,
    },
  );
  pipeline.finish();
  for (const warning of read.warnings) options.logger?.warn(warning, { file: path });
  const elapsedMs = performance.now() - started;
  const d = pipeline.decoderStats;
  const s = pipeline.sipStats;
  const first = pipeline.firstTimestamp;
  const last = pipeline.lastTimestamp;
  return {
    file: path,
    format: read.format,
    packets: read.packets,
    malformedPackets:
      d.malformed + s.malformed + s.malformedHep + read.malformedRecords + read.truncatedRecords,
    truncatedPackets: d.truncated,
    firstPacketTime: isoTime(first),
    lastPacketTime: isoTime(last),
    durationSec: first === null || last === null ? 0 : Math.round((last - first) * 1e6) / 1e6,
    sip: {
      messages: s.counts.messages,
      retransmissions: s.counts.retransmissions,
      requests: sortedCounts(s.counts.requests),
      responses: sortedCounts(s.counts.responses),
      malformed: s.malformed,
      callIds: s.callIds,
      callIdsCapped: s.callIdsCapped,
      transports: Object.fromEntries(Object.entries(s.byTransport).filter(([, n]) => n > 0)),
      endpoints: pipeline.sip.topEndpoints(50),
    },
    decode: {
      ipv4: d.ipv4,
      ipv6: d.ipv6,
      udp: d.udp,
      tcp: d.tcp,
      sctp: d.sctp,
      nonIp: d.nonIp,
      tunnelled: { ...d.tunnelled },
      fragments: { ...pipeline.decoder.fragments.stats },
      tcpStreams: { ...pipeline.sip.tcpStreams.stats },
      errors: { ...d.errors },
      unsupportedLinkTypes: { ...d.unsupportedLinkTypes },
      fileWarnings: read.warnings,
    },
    rtp: {
      streams: streams.sort((a, b) => a.startTime - b.startTime),
      streamsOmitted,
      stats: { ...pipeline.media.stats },
    },
    elapsedMs: Math.round(elapsedMs * 10) / 10,
    packetsPerSecond: elapsedMs > 0 ? Math.round(read.packets / (elapsedMs / 1000)) : 0,
  };
}

function streamSummary(report: MediaStreamReport): RtpStreamSummary {
  const { kind: _kind, interval: _interval, source: _source, startNs, endNs, ...rest } = report;
  return { ...rest, startNs: startNs.toString(), endNs: endNs.toString() };
}

import type { CaptureEvent } from '../core/event.js';
import type { Logger } from '../core/log.js';
import type { MediaStreamReport } from '../core/media-report.js';
import type { VmAttribution } from './attribution.js';
import { readCaptureFile } from './file/reader.js';
import { LiveCapture, type LiveCaptureOptions, MAX_TIMER_MS } from './live/source.js';
import type { CaptureHealth, CaptureTotals } from './live/stats.js';
import { CapturePipeline } from './pipeline.js';
import type { FragmentStats } from './reassembly/fragments.js';
import type { TcpStats } from './reassembly/tcp.js';
import type { MediaStats, MediaTrackerOptions } from './rtp/media.js';
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
  /** MAC → VM attribution (capture/attribution.ts): events get srcVm/dstVm. */
  vms?: VmAttribution;
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
  /** File path, or the interface of a live capture. */
  file: string;
  format: 'pcap' | 'pcapng' | 'live';
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
  /** Per-VM load, VM id order; present when events were attributed (--ovs-db, --vm-map). */
  vms?: VmLoad[];
  /** Live captures only: the kernel's figures (pcap_stats) summed over every handle the capture had. */
  capture?: {
    interface: string;
    linkType: number;
    /** Packets the kernel passed to the capture (after the filter), dropped ones included. */
    received: number;
    droppedKernel: number;
    droppedInterface: number;
    /** Read but not decoded: the capture was overloaded (see capture/live/source.ts). */
    droppedOverload: number;
    reopenings: number;
    linkDowns: number;
  };
}

/** ISO text of a capture time; null when absent or outside what a Date holds (hostile timestamps). */
function isoTime(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || Math.abs(seconds) > 8.64e12) return null;
  return new Date(seconds * 1000).toISOString();
}

function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** What one VM sent and received: SIP messages (retransmissions included), INVITEs, RTP streams. */
export interface VmLoad {
  vm: string;
  sipSent: number;
  sipReceived: number;
  invitesSent: number;
  invitesReceived: number;
  streamsSent: number;
  streamsReceived: number;
}

/** Counts events per VM; bounded by the VM ids the lookup knows (HEP-borne ids: at most 10,000). */
class VmLoadCounter {
  private readonly loads = new Map<string, VmLoad>();

  add(event: CaptureEvent): void {
    const invite = event.sip?.isRequest === true && event.sip.method === 'INVITE';
    const final = event.media?.kind === 'final';
    if (event.sip === undefined && !final) return;
    const src = event.srcVm === undefined ? undefined : this.load(event.srcVm);
    const dst = event.dstVm === undefined ? undefined : this.load(event.dstVm);
    if (event.sip !== undefined) {
      if (src) {
        src.sipSent++;
        if (invite) src.invitesSent++;
      }
      if (dst) {
        dst.sipReceived++;
        if (invite) dst.invitesReceived++;
      }
    } else {
      if (src) src.streamsSent++;
      if (dst) dst.streamsReceived++;
    }
  }

  list(): VmLoad[] | undefined {
    if (this.loads.size === 0) return undefined;
    return [...this.loads.values()].sort((a, b) => (a.vm < b.vm ? -1 : a.vm > b.vm ? 1 : 0));
  }

  private load(vm: string): VmLoad | undefined {
    let load = this.loads.get(vm);
    if (load === undefined) {
      if (this.loads.size >= 10_000) return undefined;
      load = {
        vm,
        sipSent: 0,
        sipReceived: 0,
        invitesSent: 0,
        invitesReceived: 0,
        streamsSent: 0,
        streamsReceived: 0,
      };
      this.loads.set(vm, load);
    }
    return load;
  }
}

/** The pipeline of one analysis and the final stream reports it collects for the summary. */
interface SummaryPipeline {
  pipeline: CapturePipeline;
  streams: RtpStreamSummary[];
  streamsOmitted: number;
  vms: VmLoadCounter;
}

type PipelineOptions = Pick<
  AnalyzeOptions,
  'logger' | 'captureId' | 'nodeName' | 'media' | 'vms' | 'onEvent'
>;

function summaryPipeline(sourceName: string, isFile: boolean, options: PipelineOptions): SummaryPipeline {
  const collected = { streams: [] as RtpStreamSummary[], streamsOmitted: 0 };
  const vms = new VmLoadCounter();
  const pipeline = new CapturePipeline({
    sourceName,
    isFile,
    logger: options.logger,
    captureId: options.captureId,
    nodeName: options.nodeName,
    media: options.media,
    vms: options.vms,
    onEvent: (event) => {
      const report = event.media;
      if (report !== undefined && report.kind === 'final') {
        if (collected.streams.length < MAX_SUMMARY_STREAMS) collected.streams.push(streamSummary(report));
        else collected.streamsOmitted++;
      }
      if (event.srcVm !== undefined || event.dstVm !== undefined) vms.add(event);
      options.onEvent?.(event);
    },
  });
  return {
    pipeline,
    streams: collected.streams,
    get streamsOmitted() {
      return collected.streamsOmitted;
    },
    vms,
  };
}

/** What the source (file reader or live capture) adds to the pipeline's figures. */
interface SourceFacts {
  file: string;
  format: AnalyzeSummary['format'];
  packets: number;
  /** Corrupt and cut-off file records (0 live). */
  badRecords: number;
  warnings: string[];
  started: number;
}

/** The summary of a finished pipeline (the same for a file and an interface). */
function buildSummary(sp: SummaryPipeline, source: SourceFacts): AnalyzeSummary {
  const { pipeline, streams, streamsOmitted } = sp;
  const elapsedMs = performance.now() - source.started;
  const d = pipeline.decoderStats;
  const s = pipeline.sipStats;
  const first = pipeline.firstTimestamp;
  const last = pipeline.lastTimestamp;
  return {
    file: source.file,
    format: source.format,
    packets: source.packets,
    malformedPackets: d.malformed + s.malformed + s.malformedHep + source.badRecords,
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
      fileWarnings: source.warnings,
    },
    rtp: {
      streams: streams.sort((a, b) => a.startTime - b.startTime),
      streamsOmitted,
      stats: { ...pipeline.media.stats },
    },
    elapsedMs: Math.round(elapsedMs * 10) / 10,
    packetsPerSecond: elapsedMs > 0 ? Math.round(source.packets / (elapsedMs / 1000)) : 0,
    vms: sp.vms.list(),
  };
}

/** Reads a capture file end to end and summarises its SIP. Throws CaptureFormatError for unusable files. */
export async function analyzeFile(path: string, options: AnalyzeOptions = {}): Promise<AnalyzeSummary> {
  const started = performance.now();
  const sp = summaryPipeline(path, true, options);
  const pipeline = sp.pipeline;
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
  return buildSummary(sp, {
    file: path,
    format: read.format,
    packets: read.packets,
    badRecords: read.malformedRecords + read.truncatedRecords,
    warnings: read.warnings,
    started,
  });
}

export interface AnalyzeInterfaceOptions extends Omit<AnalyzeOptions, 'onProgress' | 'pause'> {
  /** BPF filter, snaplen, kernel buffer, promiscuous and immediate mode, health interval... */
  capture?: Omit<LiveCaptureOptions, 'interface' | 'onPacket' | 'onHealth' | 'logger'>;
  /** Stops the capture (then the pipeline is flushed and the summary returned). */
  signal?: AbortSignal;
  /** Stop after this many seconds. */
  durationSec?: number;
  /** Stop after this many packets. */
  packetLimit?: number;
  /** Every capture-health record (every capture.healthIntervalMs, and the final one). */
  onHealth?: (health: CaptureHealth) => void;
  /** Called about once a second with the capture's counters. */
  onProgress?: (totals: CaptureTotals, elapsedSec: number) => void;
  /** Called once the interface is open and packets flow. */
  onStart?: (capture: LiveCapture) => void;
}

/**
 * Captures on an interface until `signal` aborts, `durationSec` passes or `packetLimit` packets were
 * seen, then flushes the pipeline and summarises, as analyzeFile does for a file (format 'live', with
 * the kernel's capture figures in `capture`). Throws LiveCaptureError when the interface cannot be
 * opened or the pcap package is missing.
 */
export async function analyzeInterface(
  name: string,
  options: AnalyzeInterfaceOptions = {},
): Promise<AnalyzeSummary> {
  const started = performance.now();
  options.signal?.throwIfAborted();
  const stopInMs = options.durationSec === undefined ? undefined : durationMs(options.durationSec);
  const sp = summaryPipeline(name, false, options);
  const pipeline = sp.pipeline;
  const limit = options.packetLimit ?? Number.POSITIVE_INFINITY;
  let packets = 0;
  let requestStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => {
    requestStop = resolve;
  });
  const capture = LiveCapture.open({
    ...options.capture,
    interface: name,
    logger: options.logger,
    onHealth: options.onHealth,
    onPacket: (record) => {
      if (packets >= limit) return;
      packets++;
      pipeline.handle(record);
      if (packets >= limit) requestStop();
    },
  });
  const timers: NodeJS.Timeout[] = [];
  const cancels: Array<() => void> = [];
  const onAbort = () => requestStop();
  let final: CaptureHealth;
  try {
    try {
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) requestStop();
      if (stopInMs !== undefined) cancels.push(callAfter(stopInMs, requestStop));
      const onProgress = options.onProgress;
      if (onProgress)
        timers.push(
          setInterval(() => {
            try {
              onProgress(capture.totals(), (performance.now() - started) / 1000);
            } catch (error) {
              // Called from a timer: an exception would be uncaught and end the process.
              options.logger?.warn('progress callback failed', {
                interface: name,
                error: error instanceof Error ? error.message : String(error),
              });
            }
          }, 1000),
        );
      options.onStart?.(capture);
      await stopRequested;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      for (const t of timers) clearTimeout(t);
      for (const cancel of cancels) cancel();
    }
  } finally {
    // Also when onStart threw: the capture's read loop would keep the process alive.
    final = await capture.stop();
  }
  pipeline.finish();
  return {
    ...buildSummary(sp, { file: name, format: 'live', packets, badRecords: 0, warnings: [], started }),
    capture: {
      interface: name,
      linkType: capture.linkType,
      received: final.received,
      droppedKernel: final.droppedKernel,
      droppedInterface: final.droppedInterface,
      droppedOverload: final.droppedOverload,
      reopenings: final.reopenings,
      linkDowns: final.linkDowns,
    },
  };
}

/** `durationSec` in ms: a positive, finite number of seconds. */
function durationMs(durationSec: number): number {
  if (!(durationSec > 0) || !Number.isFinite(durationSec))
    throw new RangeError(`durationSec must be a positive number of seconds, got ${durationSec}`);
  return durationSec * 1000;
}

/**
 * Calls `done` after `ms`, however long: Node runs a timer longer than 2^31-1 ms after 1 ms, so a
 * long wait is re-armed in chunks. Returns the cancel function.
 */
export function callAfter(ms: number, done: () => void): () => void {
  let left = ms;
  let timer: NodeJS.Timeout | null = null;
  const arm = (): void => {
    const chunk = Math.min(left, MAX_TIMER_MS);
    left -= chunk;
    timer = setTimeout(() => {
      timer = null;
      if (left > 0) arm();
      else done();
    }, chunk);
  };
  arm();
  return () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}

function streamSummary(report: MediaStreamReport): RtpStreamSummary {
  const { kind: _kind, interval: _interval, source: _source, startNs, endNs, ...rest } = report;
  return { ...rest, startNs: startNs.toString(), endNs: endNs.toString() };
}

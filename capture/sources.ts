/**
 * The capture sources: a pcap/pcapng file and a live interface, each through its own CapturePipeline
 * (decoder, SIP extractor, media tracker). They hand events to the driver (core/drive.ts) and report
 * what only the capture knows (packets, decoder and media counters) as CaptureFacts.
 */
import type { FailoverTrackerStats } from '../analyze/failover/tracker.js';
import type { CaptureEvent } from '../core/event.js';
import type { LogFields, Logger } from '../core/log.js';
import type { EventSource, SourceOutput } from '../core/source.js';
import type { VmAttribution } from './attribution.js';
import type { DecoderStats } from './decoder.js';
import { DEFAULT_CHUNK_SIZE, readCaptureFile } from './file/reader.js';
import type { PacketRecord } from './file/record.js';
import { LiveCapture, type LiveCaptureOptions, MAX_TIMER_MS } from './live/source.js';
import type { CaptureHealth, CaptureTotals } from './live/stats.js';
import type { DecodedPacket } from './packet.js';
import { CapturePipeline, type CapturePipelineOptions } from './pipeline.js';
import type { FragmentStats } from './reassembly/fragments.js';
import type { TcpStats } from './reassembly/tcp.js';
import type { MediaStats } from './rtp/media.js';
import type { SipExtractorStats } from './sip/extractor.js';

/** What every capture source gives its pipeline. */
export interface CaptureOptions {
  logger?: Logger;
  captureId?: number;
  nodeName?: string;
  /** Media discovery and reporting (heuristic RTP, report interval, timeouts, bounds). */
  media?: CapturePipelineOptions['media'];
  /** MAC → VM attribution (capture/attribution.ts): events get srcVm/dstVm. */
  vms?: VmAttribution;
  /** Bounds and waits of the failover tracker (docs/FAILOVER.md). */
  failover?: CapturePipelineOptions['failover'];
  /** Each RTP, RTCP or UDPTL datagram bound to a call (the per-call RTP spool: capture/rtp-spool.ts). */
  onMediaPacket?: CapturePipelineOptions['onMediaPacket'];
  /** Bounds of the pipeline's state (tests and benchmarks set them small or large). */
  limits?: Pick<
    CapturePipelineOptions,
    'fragments' | 'tcp' | 'maxRetransmissionEntries' | 'maxPendingStreamBytes'
  >;
}

/** What a capture source knows when it ends, beyond the events it delivered. */
export interface CaptureFacts {
  /** File path, or the interface of a live capture. */
  file: string;
  format: 'pcap' | 'pcapng' | 'live';
  packets: number;
  /** Corrupt file records that were skipped (0 live). */
  malformedRecords: number;
  /** Records cut off by the end of the file: the file was cut short (0 live). */
  truncatedRecords: number;
  /** File warnings, each naming the byte offset. */
  warnings: string[];
  /** Capture times of the first and last packet, seconds since the Unix epoch. */
  firstTimestamp: number | null;
  lastTimestamp: number | null;
  /** Wall-clock time spent, ms. */
  elapsedMs: number;
  decoder: DecoderStats;
  fragments: FragmentStats;
  tcpStreams: TcpStats;
  sip: SipExtractorStats;
  media: MediaStats;
  /** Retransmission state forgotten at its bound. */
  retransmissionStatesForgotten: number;
  /** SCTP messages evicted while incomplete. */
  sctpMessagesEvicted: number;
  /** The failover tracker's counters (analyze/failover/tracker.ts). */
  failover: FailoverTrackerStats;
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

/** The capture's bounded structures that gave something up (counts above zero), as log fields. */
function limitsOf(pipeline: CapturePipeline): LogFields {
  const fields: LogFields = {};
  const add = (name: string, n: number) => {
    if (n > 0) fields[name] = n;
  };
  add('retransmissionStatesForgotten', pipeline.sip.retransmissions.evicted);
  add('tcpStreamsEvicted', pipeline.sip.tcpStreams.stats.evictedStreams);
  add('sctpMessagesEvicted', pipeline.sip.sctpMessages.stats.evicted);
  add('fragmentsEvicted', pipeline.decoder.fragments.stats.evicted);
  add('rtpStreamsEvicted', pipeline.media.stats.streamsEvicted);
  add('rtpStreamsRefused', pipeline.media.stats.streamsRefused);
  add('failoverAddressesForgotten', pipeline.failover.stats.addressesForgotten);
  return fields;
}

/** The periodic statistics of a capture: packets, what they became, and any limit reached. */
function progressOf(pipeline: CapturePipeline | null, packets: number): LogFields {
  if (pipeline === null) return { packets };
  return {
    packets,
    malformed: pipeline.decoderStats.malformed,
    sipMessages: pipeline.sipStats.messages,
    sipMalformed: pipeline.sipStats.malformed,
    rtpPackets: pipeline.media.stats.rtpPackets,
    ...limitsOf(pipeline),
  };
}

/** At the end of a capture: one warning naming every bound that was reached. */
function warnLimits(pipeline: CapturePipeline, logger: Logger | undefined, name: string): void {
  const reached = limitsOf(pipeline);
  if (Object.keys(reached).length > 0)
    logger?.warn('bounded state reached its limit: some state was forgotten (see "limits" in the summary)', {
      source: name,
      ...reached,
    });
}

function pipelineFor(
  sourceName: string,
  isFile: boolean,
  options: CaptureOptions,
  onEvent: (event: CaptureEvent) => void,
): CapturePipeline {
  return new CapturePipeline({
    ...options.limits,
    sourceName,
    isFile,
    logger: options.logger,
    captureId: options.captureId,
    nodeName: options.nodeName,
    media: options.media,
    vms: options.vms,
    failover: options.failover,
    onMediaPacket: options.onMediaPacket,
    onEvent,
  });
}

function factsOf(
  pipeline: CapturePipeline,
  base: Pick<
    CaptureFacts,
    'file' | 'format' | 'packets' | 'malformedRecords' | 'truncatedRecords' | 'warnings' | 'capture'
  >,
  started: number,
): CaptureFacts {
  return {
    ...base,
    firstTimestamp: pipeline.firstTimestamp,
    lastTimestamp: pipeline.lastTimestamp,
    elapsedMs: performance.now() - started,
    decoder: pipeline.decoderStats,
    fragments: { ...pipeline.decoder.fragments.stats },
    tcpStreams: { ...pipeline.sip.tcpStreams.stats },
    sip: pipeline.sipStats,
    media: { ...pipeline.media.stats },
    retransmissionStatesForgotten: pipeline.sip.retransmissions.evicted,
    sctpMessagesEvicted: pipeline.sip.sctpMessages.stats.evicted,
    failover: pipeline.failover.stats,
  };
}

export interface FileSourceOptions extends CaptureOptions {
  /** After each read chunk: bytes read, file size, packets so far. */
  onProgress?: (bytesRead: number, totalBytes: number, packets: number) => void;
  /**
   * After the pipeline handled each packet: its record and decoded layers (both reused: copy what
   * must outlive the call) and the events it completed (a message reassembled from several segments
   * comes with the last one). For tools that judge packets as they pass (`extract` in one read).
   */
  onPacketHandled?: (record: PacketRecord, packet: DecodedPacket, events: readonly CaptureEvent[]) => void;
}

const NO_EVENTS: readonly CaptureEvent[] = [];

/** Events per read above which the reads shrink (see FileSource.run). */
const MAX_BATCH_EVENTS = 512;

/** A pcap or pcapng file. Throws CaptureFormatError (from run) for a file unusable from its start. */
export class FileSource implements EventSource<CaptureFacts> {
  readonly pace = 'paced';
  readonly redelivers = false;
  private pipeline: CapturePipeline | null = null;
  private packets = 0;

  constructor(
    readonly name: string,
    private readonly options: FileSourceOptions = {},
  ) {}

  async run(output: SourceOutput, signal?: AbortSignal): Promise<CaptureFacts> {
    const started = performance.now();
    let batch: CaptureEvent[] = [];
    const pipeline = pipelineFor(this.name, true, this.options, (event) => {
      batch.push(event);
    });
    this.pipeline = pipeline;
    // Reads shrink while a read's events are many (a SIP-heavy capture: every packet an event, each
    // with its parsed message) and grow back as they thin out: a batch the sinks hold while they take
    // it then fits V8's young generation instead of being promoted (2× on a SIP-only capture).
    let chunkSize = DEFAULT_CHUNK_SIZE;
    const handOver = (): Promise<void> | null => {
      if (batch.length > MAX_BATCH_EVENTS) chunkSize = Math.max(64 << 10, chunkSize >> 1);
      else if (batch.length < MAX_BATCH_EVENTS / 4) chunkSize = Math.min(DEFAULT_CHUNK_SIZE, chunkSize << 1);
      if (batch.length === 0) return null;
      const events = batch;
      batch = [];
      return output.events(events);
    };
    let packets = 0;
    const onProgress = this.options.onProgress;
    const onHandled = this.options.onPacketHandled;
    const read = await readCaptureFile(
      this.name,
      onHandled === undefined
        ? (record) => {
            packets++;
            this.packets = packets;
            pipeline.handle(record);
          }
        : (record) => {
            packets++;
            this.packets = packets;
            const before = batch.length;
            pipeline.handle(record);
            onHandled(
              record,
              pipeline.decoder.packet,
              batch.length === before ? NO_EVENTS : batch.slice(before),
            );
          },
      {
        onProgress: onProgress ? (bytes, total) => onProgress(bytes, total, packets) : undefined,
        // After each read chunk its events go to the sinks; reading goes on once they took them.
        pause: handOver,
        nextChunkSize: () => chunkSize,
        signal,
      },
    );
    pipeline.finish();
    await handOver();
    for (const warning of read.warnings) this.options.logger?.warn(warning, { file: this.name });
    warnLimits(pipeline, this.options.logger, this.name);
    return factsOf(
      pipeline,
      {
        file: this.name,
        format: read.format,
        packets: read.packets,
        malformedRecords: read.malformedRecords,
        truncatedRecords: read.truncatedRecords,
        warnings: read.warnings,
      },
      started,
    );
  }

  progress(): LogFields {
    return progressOf(this.pipeline, this.packets);
  }
}

export interface InterfaceSourceOptions extends CaptureOptions {
  /** BPF filter, snaplen, kernel buffer, promiscuous and immediate mode, health interval... */
  capture?: Omit<LiveCaptureOptions, 'interface' | 'onPacket' | 'onHealth' | 'logger'>;
  /** Stop after this many seconds. */
  durationSec?: number;
  /** Stop after this many packets. */
  packetLimit?: number;
  /** Called about once a second with the capture's counters. */
  onProgress?: (totals: CaptureTotals, elapsedSec: number) => void;
  /** Called once the interface is open and packets flow. */
  onStart?: (capture: LiveCapture) => void;
}

/**
 * A live interface (libpcap), until the signal aborts, `durationSec` passes or `packetLimit` packets
 * were seen. Throws LiveCaptureError when the interface cannot be opened or the pcap package is missing.
 */
export class InterfaceSource implements EventSource<CaptureFacts> {
  readonly pace = 'live';
  readonly redelivers = false;
  private pipeline: CapturePipeline | null = null;
  private capture: LiveCapture | null = null;
  private packets = 0;

  constructor(
    readonly name: string,
    private readonly options: InterfaceSourceOptions = {},
  ) {
    if (options.durationSec !== undefined) durationMs(options.durationSec);
  }

  async run(output: SourceOutput, signal?: AbortSignal): Promise<CaptureFacts> {
    const options = this.options;
    const started = performance.now();
    signal?.throwIfAborted();
    let batch: CaptureEvent[] = [];
    const pipeline = pipelineFor(this.name, false, options, (event) => {
      batch.push(event);
    });
    this.pipeline = pipeline;
    const limit = options.packetLimit ?? Number.POSITIVE_INFINITY;
    let packets = 0;
    let requestStop: () => void = () => {};
    const stopRequested = new Promise<void>((resolve) => {
      requestStop = resolve;
    });
    const toOutput = (health: CaptureHealth): void =>
      output.health({
        ...health,
        droppedEvents: 0,
        captureId: options.captureId ?? 0,
        nodeName: options.nodeName ?? '',
      });
    // The final record goes out after the capture's last events were handed over (below), so that the
    // driver stamps it with every event the queue dropped (droppedEvents), those last ones included.
    let finalHealth: CaptureHealth | null = null;
    const capture = LiveCapture.open({
      ...options.capture,
      interface: this.name,
      logger: options.logger,
      onHealth: (health) => {
        if (health.final) finalHealth = health;
        else toOutput(health);
      },
      onPacket: (record) => {
        if (packets >= limit) return;
        packets++;
        this.packets = packets;
        pipeline.handle(record);
        if (batch.length > 0) {
          const events = batch;
          batch = [];
          void output.events(events);
        }
        if (packets >= limit) requestStop();
      },
    });
    this.capture = capture;
    const timers: NodeJS.Timeout[] = [];
    const cancels: Array<() => void> = [];
    const onAbort = () => requestStop();
    let final: Awaited<ReturnType<LiveCapture['stop']>>;
    try {
      try {
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) requestStop();
        if (options.durationSec !== undefined)
          cancels.push(callAfter(durationMs(options.durationSec), requestStop));
        const onProgress = options.onProgress;
        if (onProgress)
          timers.push(
            setInterval(() => {
              try {
                onProgress(capture.totals(), (performance.now() - started) / 1000);
              } catch (error) {
                // Called from a timer: an exception would be uncaught and end the process.
                options.logger?.warn('progress callback failed', {
                  interface: this.name,
                  error: error instanceof Error ? error.message : String(error),
                });
              }
            }, 1000),
          );
        options.onStart?.(capture);
        await stopRequested;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        for (const t of timers) clearTimeout(t);
        for (const cancel of cancels) cancel();
      }
    } finally {
      // Also when onStart threw: the capture's read loop would keep the process alive.
      final = await capture.stop();
    }
    pipeline.finish();
    if (batch.length > 0) await output.events(batch);
    if (finalHealth !== null) toOutput(finalHealth);
    warnLimits(pipeline, options.logger, this.name);
    return factsOf(
      pipeline,
      {
        file: this.name,
        format: 'live',
        packets,
        malformedRecords: 0,
        truncatedRecords: 0,
        warnings: [],
        capture: {
          interface: this.name,
          linkType: capture.linkType,
          received: final.received,
          droppedKernel: final.droppedKernel,
          droppedInterface: final.droppedInterface,
          droppedOverload: final.droppedOverload,
          reopenings: final.reopenings,
          linkDowns: final.linkDowns,
        },
      },
      started,
    );
  }

  /** The live capture's counters now (kernel counters sampled), null before it opened. */
  totals(): CaptureTotals | null {
    return this.capture?.totals() ?? null;
  }

  progress(): LogFields {
    const fields = progressOf(this.pipeline, this.packets);
    const t = this.capture?.totals();
    if (t !== undefined) {
      fields.kernelReceived = t.received;
      fields.kernelDropped = t.droppedKernel;
      fields.overloadDropped = t.droppedOverload;
      fields.reopenings = t.reopenings;
    }
    return fields;
  }
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

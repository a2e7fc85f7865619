import { type DecoderStats, PacketDecoder } from './decoder.js';
import type { CaptureEvent } from './event.js';
import type { PacketRecord } from './file/record.js';
import { type Logger, ProblemLog, silentLogger } from './log.js';
import type { FragmentLimits } from './reassembly/fragments.js';
import type { TcpLimits } from './reassembly/tcp.js';
import { SipExtractor, type SipExtractorStats } from './sip/extractor.js';

export interface CapturePipelineOptions {
  /** File path or interface name, for error context. */
  sourceName: string;
  isFile: boolean;
  captureId?: number;
  nodeName?: string;
  logger?: Logger;
  fragments?: FragmentLimits;
  tcp?: TcpLimits;
  /** Bounds of the per-Call-ID state (see SipExtractorOptions). */
  maxCallIds?: number;
  maxRetransmissionEntries?: number;
  /** Bytes all TCP directions may hold in incomplete messages together. */
  maxPendingStreamBytes?: number;
  onEvent?: (event: CaptureEvent) => void;
}

/**
 * Packet records in, SIP events out: the decoder and the SIP extractor of one capture source,
 * owned together so their state (fragments, TCP streams, retransmissions) lives and dies with it.
 */
export class CapturePipeline {
  readonly decoder: PacketDecoder;
  readonly sip: SipExtractor;
  readonly problems: ProblemLog;
  private lastDecodeErrors = 0;
  firstTimestamp: number | null = null;
  lastTimestamp: number | null = null;

  constructor(private readonly options: CapturePipelineOptions) {
    const logger = options.logger ?? silentLogger;
    this.problems = new ProblemLog(logger);
    const where = options.isFile ? { file: options.sourceName } : { interface: options.sourceName };
    this.sip = new SipExtractor({
      captureId: options.captureId,
      nodeName: options.nodeName,
      sourceName: options.sourceName,
      isFile: options.isFile,
      tcp: options.tcp,
      maxCallIds: options.maxCallIds,
      maxRetransmissionEntries: options.maxRetransmissionEntries,
      maxPendingStreamBytes: options.maxPendingStreamBytes,
      onEvent: options.onEvent,
      onProblem: (pr) =>
        this.problems.report(
          pr.kind,
          pr.message,
          {
            ...where,
            packet: pr.packetNumber,
            transport: pr.transport,
            src: pr.src,
            dst: pr.dst,
            callId: pr.callId,
          },
          // Parse warnings are routine in real traffic (odd but usable messages): not worth a warning.
          pr.kind === 'sip-warning' ? 'info' : 'warn',
        ),
    });
    this.decoder = new PacketDecoder(this.sip, options.fragments);
  }

  handle(record: PacketRecord): void {
    const ts = record.tsSec + record.tsNsec / 1e9;
    if (this.firstTimestamp === null) this.firstTimestamp = ts;
    this.lastTimestamp = ts;
    this.decoder.decode(record);
    const stats = this.decoder.stats;
    if (stats.malformed !== this.lastDecodeErrors) {
      this.lastDecodeErrors = stats.malformed;
      const reason = this.decoder.packet.error ?? 'malformed';
      this.problems.report(`decode:${reason}`, 'packet could not be decoded', {
        ...(this.options.isFile ? { file: this.options.sourceName } : { interface: this.options.sourceName }),
        packet: record.number,
        reason,
      });
    }
  }

  /** End of input: flush TCP streams (messages still complete in them are delivered). */
  finish(): void {
    this.sip.flush();
    this.problems.summary(
      this.options.isFile ? { file: this.options.sourceName } : { interface: this.options.sourceName },
    );
  }

  get decoderStats(): DecoderStats {
    return this.decoder.stats;
  }

  get sipStats(): SipExtractorStats {
    return this.sip.stats;
  }
}

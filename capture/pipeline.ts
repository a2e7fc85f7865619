import { FailoverTracker, type FailoverTrackerOptions } from '../analyze/failover/tracker.js';
import { type CaptureEvent, HEP_PROTO_RTP_QOS_JSON } from '../core/event.js';
import { failoverEvent } from '../core/failover.js';
import { type Logger, ProblemLog, silentLogger } from '../core/log.js';
import { type MediaStreamReport, mediaReportJson } from '../core/media-report.js';
import type { VmAttribution } from './attribution.js';
import { type DecoderStats, PacketDecoder } from './decoder.js';
import type { PacketRecord } from './file/record.js';
import type { FragmentLimits } from './reassembly/fragments.js';
import type { TcpLimits } from './reassembly/tcp.js';
import { MediaTracker, type MediaTrackerOptions } from './rtp/media.js';
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
  /** Bound of the retransmission state (see SipExtractorOptions). */
  maxRetransmissionEntries?: number;
  /** Bytes all TCP directions may hold in incomplete messages together. */
  maxPendingStreamBytes?: number;
  /** Media discovery and reporting (heuristic, report interval, idle timeout, table bounds). */
  media?: Omit<MediaTrackerOptions, 'onReport' | 'onProblem'>;
  /**
   * Who owns a MAC (over the OVS inventory or a static map): events then carry srcVm / dstVm. The
   * caller owns it, so the addresses it learns outlive the pipeline (for the VM inventory).
   */
  vms?: VmAttribution;
  /** Bounds and waits of the failover tracker (analyze/failover/tracker.ts). */
  failover?: FailoverTrackerOptions;
  onEvent?: (event: CaptureEvent) => void;
  /** Each RTP, RTCP or UDPTL datagram bound to a call, as captured (the per-call RTP spool). */
  onMediaPacket?: (record: PacketRecord, callId: string) => void;
}

/**
 * Packet records in, events out (SIP messages and media stream reports): the decoder, the SIP
 * extractor and the media tracker of one capture source, owned together so their state (fragments,
 * TCP streams, retransmissions, RTP streams) lives and dies with it.
 */
export class CapturePipeline {
  readonly decoder: PacketDecoder;
  readonly sip: SipExtractor;
  readonly media: MediaTracker;
  /** Virtual IPs moving between MACs / VMs: its failovers are events too (docs/FAILOVER.md). */
  readonly failover: FailoverTracker;
  readonly problems: ProblemLog;
  /** Null without a VM lookup. */
  readonly attribution: VmAttribution | null;
  private lastDecodeErrors = 0;
  firstTimestamp: number | null = null;
  lastTimestamp: number | null = null;
  /** Capture time of the packet being handled, ms. */
  private nowMs = 0;
  /** frameMacs' answer for the last event it was asked about. */
  private macsEvent: CaptureEvent | null = null;
  private macs: { src: string; dst: string } | null = null;

  constructor(private readonly options: CapturePipelineOptions) {
    const logger = options.logger ?? silentLogger;
    this.problems = new ProblemLog(logger);
    const where = options.isFile ? { file: options.sourceName } : { interface: options.sourceName };
    const attribution = options.vms ?? null;
    this.attribution = attribution;
    const userOnEvent = options.onEvent;
    const onEvent =
      userOnEvent && attribution
        ? (event: CaptureEvent) => {
            this.attribute(attribution, event);
            userOnEvent(event);
          }
        : userOnEvent;
    this.failover = new FailoverTracker(
      {
        vmOfMac: attribution === null ? undefined : (mac) => attribution.vmOfMac(mac)?.id ?? null,
        // Not through the attribution wrapper: a failover names its VMs itself.
        onFailover: (record) =>
          userOnEvent?.(
            failoverEvent(record, {
              captureId: options.captureId,
              nodeName: options.nodeName,
              source: { ...where, packetNumber: 0 },
            }),
          ),
        onProblem: (kind, message, fields) => this.problems.report(kind, message, { ...where, ...fields }),
      },
      options.failover,
    );
    this.media = new MediaTracker({
      ...options.media,
      onReport: onEvent ? (report) => onEvent(this.mediaEvent(report)) : undefined,
      onProblem: (kind, message, packet) => this.problems.report(kind, message, { ...where, packet }),
    });
    this.sip = new SipExtractor({
      captureId: options.captureId,
      nodeName: options.nodeName,
      sourceName: options.sourceName,
      isFile: options.isFile,
      tcp: options.tcp,
      maxRetransmissionEntries: options.maxRetransmissionEntries,
      maxPendingStreamBytes: options.maxPendingStreamBytes,
      onEvent: (event) => {
        if (event.sip) {
          this.media.sip(event.sip, event.source?.packetNumber ?? 0);
          const macs = this.frameMacs(event);
          if (macs !== null)
            this.failover.sip(this.nowMs, event.srcIp, event.vlan, macs.src, !event.sip.isRequest);
        }
        onEvent?.(event);
      },
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
    const sip = this.sip;
    const media = this.media;
    const onMediaPacket = options.onMediaPacket;
    const failover = this.failover;
    this.decoder = new PacketDecoder(
      {
        udp: (p, record) => {
          if (sip.udp(p, record)) return;
          // Media-only VMs (a media server) are learned from a sample of their packets: an active
          // stream sends 50 packets/s, so every address is seen within seconds, at 1/64 of the cost.
          if (attribution !== null && (record.number & 63) === 0 && p.tunnels === 0)
            attribution.vmOf(p.srcMac(), p.srcIp(), true);
          if (!media.udp(p, record)) return;
          if (onMediaPacket !== undefined && media.lastCallId !== null)
            onMediaPacket(record, media.lastCallId);
          // A sample says the address serves media; one packet in 64 costs nothing at 50 packets/s.
          if ((record.number & 63) === 0 && p.tunnels === 0) {
            const mac = p.srcMac();
            if (mac !== null) failover.rtp(this.nowMs, p.srcIp(), p.outerVlan(), mac);
          }
        },
        tcp: (p, record) => sip.tcp(p, record),
        sctp: (p, record) => sip.sctp(p, record),
        arp: (p, arp) =>
          failover.arp(this.nowMs, p.outerVlan(), arp.senderIp(), arp.senderMac(), arp.gratuitous),
      },
      options.fragments,
    );
  }

  /**
   * A media report as a HEP-like event (protocol type 34, JSON payload, Call-ID as correlation id).
   * The JSON is made when `payload` is first read (HEP, Kafka, the store): `analyze` never needs it.
   */
  private mediaEvent(report: MediaStreamReport): CaptureEvent {
    const o = this.options;
    report.source = o.isFile ? { file: o.sourceName } : { interface: o.sourceName };
    let payload: Buffer | null = null;
    return {
      timestampNs: report.kind === 'final' ? report.endNs : (report.interval?.endNs ?? report.endNs),
      ipFamily: report.ipFamily,
      ipProtocol: 17,
      transport: 'udp',
      srcIp: report.src,
      dstIp: report.dst,
      srcPort: report.srcPort,
      dstPort: report.dstPort,
      vlan: report.vlan,
      protoType: HEP_PROTO_RTP_QOS_JSON,
      captureId: o.captureId ?? 0,
      nodeName: o.nodeName ?? '',
      correlationId: report.callId ?? '',
      get payload(): Buffer {
        if (payload === null) payload = Buffer.from(mediaReportJson(report));
        return payload;
      },
      set payload(value: Buffer) {
        payload = value;
      },
      media: report,
      retransmission: false,
    };
  }

  /**
   * SIP events use the MACs of the frame that completed them, when that frame carried the event's
   * own addresses (not SIP inside HEP, whose frame is the HEP carrier's); media reports and the rest
   * use the addresses, learned from earlier frames.
   */
  private attribute(attribution: VmAttribution, event: CaptureEvent): void {
    const macs = this.frameMacs(event);
    const srcVm = attribution.vmOf(macs?.src ?? null, event.srcIp, true);
    const dstVm = attribution.vmOf(macs?.dst ?? null, event.dstIp, false);
    if (srcVm !== null) event.srcVm = srcVm.id;
    if (dstVm !== null) event.dstVm = dstVm.id;
  }

  /**
   * The MACs of a SIP event's sender and receiver: those of the frame that completed it, when that
   * frame carried the event's own addresses (either way round); null otherwise.
   */
  private frameMacs(event: CaptureEvent): { src: string; dst: string } | null {
    // Asked twice per SIP event (the failover tracker, then attribution): worked out once.
    if (this.macsEvent === event) return this.macs;
    this.macsEvent = event;
    this.macs = null;
    const p = this.decoder.packet;
    // A tunnelled mirror's (ERSPAN, VXLAN, GRE) outer MACs are the tunnel endpoints', not the VMs'.
    if (event.sip === undefined || event.media !== undefined || p.tunnels !== 0) return null;
    const srcMac = p.srcMac();
    const dstMac = p.dstMac();
    if (srcMac === null || dstMac === null) return null;
    const src = p.srcIp();
    if (src === event.srcIp && p.dstIp() === event.dstIp) this.macs = { src: srcMac, dst: dstMac };
    else if (src === event.dstIp && p.dstIp() === event.srcIp) this.macs = { src: dstMac, dst: srcMac };
    return this.macs;
  }

  handle(record: PacketRecord): void {
    const ts = record.tsSec + record.tsNsec / 1e9;
    if (this.firstTimestamp === null) this.firstTimestamp = ts;
    this.lastTimestamp = ts;
    this.nowMs = record.tsSec * 1000 + record.tsNsec / 1e6;
    // Checked here, not called: a million packets a second pay for a comparison only.
    if (this.nowMs >= this.failover.nextDeadline) this.failover.tick(this.nowMs);
    this.media.tick(record);
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
    this.media.finish();
    this.failover.finish();
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

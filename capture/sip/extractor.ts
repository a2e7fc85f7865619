import { type CaptureEvent, HEP_PROTO_SIP, type TransportName } from '../../core/event.js';
import { decodeHep3 } from '../../core/hep3.js';
import type { TransportHandler } from '../decoder.js';
import type { PacketRecord } from '../file/record.js';
import { forEachSctpData, SCTP_FLAG_BEGIN, SCTP_FLAG_END } from '../layers/sctp.js';
import type { DecodedPacket } from '../packet.js';
import { SctpMessageReassembler } from '../reassembly/sctp.js';
import {
  type TcpLimits,
  TcpReassembler,
  type TcpSegmentMeta,
  type TcpStreamSink,
} from '../reassembly/tcp.js';
import { MAX_KEY_PART } from './bounded-map.js';
import { isHep3, looksLikeSip } from './detect.js';
import { SipParser } from './parser.js';
import { RetransmissionTracker } from './retransmission.js';
import { SipStream } from './tcp-stream.js';

export interface SipExtractorOptions {
  captureId?: number;
  nodeName?: string;
  /** Name of the source for error context (file path or interface). */
  sourceName?: string;
  isFile?: boolean;
  tcp?: TcpLimits;
  /** Call-ID/direction entries the retransmission tracker keeps (oldest forgotten first). */
  maxRetransmissionEntries?: number;
  /** Bytes all TCP directions may hold in incomplete SIP or HEP messages together (default 64 MiB). */
  maxPendingStreamBytes?: number;
  /** Largest SIP message buffered from a stream before it is given up on. */
  maxStreamMessageBytes?: number;
  /** Called with every SIP message, in capture order. */
  onEvent?: (event: CaptureEvent) => void;
  /** Called for every problem worth a log line (rate limiting is the caller's). */
  onProblem?: (problem: SipProblem) => void;
}

export interface SipProblem {
  kind:
    | 'malformed-sip'
    | 'sip-warning'
    | 'stream-overflow'
    | 'stream-resync'
    | 'stream-truncated'
    | 'websocket-error'
    | 'malformed-hep';
  message: string;
  packetNumber: number;
  transport: TransportName;
  src: string;
  dst: string;
  callId?: string;
}

/** What the extractor did; the messages themselves are counted by the summary (analyze/summary.ts). */
export interface SipExtractorStats {
  /** SIP messages found (each an event). */
  messages: number;
  /** Messages that looked like SIP but could not be parsed. */
  malformed: number;
  streamOverflows: number;
  streamResyncs: number;
  /** Incomplete SIP or HEP messages a TCP stream still held when it ended (FIN, RST, idle, end of capture). */
  streamTruncated: number;
  /** Their bytes. */
  streamTruncatedBytes: number;
  webSocketErrors: number;
  parseWarnings: number;
  /** HEP3 frames found in the capture (a HOMER server's traffic); their SIP is counted like any other. */
  hepFrames: number;
  malformedHep: number;
}

/** Per-direction endpoint facts captured when a TCP stream starts (the packet is gone later). */
export interface Endpoint {
  ipFamily: 4 | 6;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  vlan: number | null;
}

/**
 * Finds SIP in transport payloads by content (any port): UDP datagrams, TCP streams framed by
 * Content-Length, WebSocket messages after an HTTP Upgrade, and SCTP DATA chunks. Owns the TCP
 * reassembly and the retransmission state of one capture source.
 */
export class SipExtractor implements TransportHandler {
  readonly tcpStreams: TcpReassembler;
  readonly retransmissions: RetransmissionTracker;
  readonly sctpMessages = new SctpMessageReassembler();
  /** Parses every SIP message of this source (and the headers of one a TCP stream lost at its end). */
  readonly parser = new SipParser();
  readonly stats: SipExtractorStats = {
    messages: 0,
    malformed: 0,
    streamOverflows: 0,
    streamResyncs: 0,
    streamTruncated: 0,
    streamTruncatedBytes: 0,
    webSocketErrors: 0,
    parseWarnings: 0,
    hepFrames: 0,
    malformedHep: 0,
  };
  private readonly captureId: number;
  private readonly nodeName: string;
  readonly maxStreamMessageBytes: number;
  readonly maxPendingStreamBytes: number;
  /** Bytes currently reserved by TCP directions for incomplete messages. */
  pendingStreamBytes = 0;

  constructor(private readonly options: SipExtractorOptions = {}) {
    this.captureId = options.captureId ?? 0;
    this.nodeName = options.nodeName ?? '';
    this.maxStreamMessageBytes = options.maxStreamMessageBytes ?? 1 << 20;
    this.maxPendingStreamBytes = options.maxPendingStreamBytes ?? 64 << 20;
    this.retransmissions = new RetransmissionTracker(options.maxRetransmissionEntries);
    this.tcpStreams = new TcpReassembler((key, meta) => this.newStream(key, meta), options.tcp);
  }

  /** Returns true when the datagram was SIP or HEP (and so is not media). */
  udp(p: DecodedPacket, record: PacketRecord): boolean {
    const buf = p.buf;
    const off = p.payloadOffset;
    const end = p.payloadEnd;
    if (end - off < 12) return false;
    if (isHep3(buf, off)) {
      this.hep(buf, off, end, endpointOf(p), 'udp', record.number);
      return true;
    }
    if (!looksLikeSip(buf, off, end)) return false;
    this.message(
      buf,
      off,
      end,
      'udp',
      endpointOf(p),
      p.ipProtocol,
      record.tsSec,
      record.tsNsec,
      record.number,
    );
    return true;
  }

  /** Reused for every TCP segment: the reassembler copies these fields when it holds a segment. */
  private readonly segmentMeta: TcpSegmentMeta = { tsSec: 0, tsNsec: 0, packetNumber: 0 };

  tcp(p: DecodedPacket, record: PacketRecord): void {
    this.currentPacket = p;
    const meta = this.segmentMeta;
    meta.tsSec = record.tsSec;
    meta.tsNsec = record.tsNsec;
    meta.packetNumber = record.number;
    this.tcpStreams.segment(
      p.directionKey(),
      p.tcpSeq,
      p.tcpFlags,
      p.buf,
      p.payloadOffset,
      p.payloadEnd,
      meta,
    );
    this.tcpStreams.expire(record.tsSec);
  }

  sctp(p: DecodedPacket, record: PacketRecord): void {
    let endpoint: Endpoint | null = null;
    let direction: string | null = null;
    const found = (buf: Buffer, s: number, e: number, owned: boolean) => {
      if (e - s < 12 || !looksLikeSip(buf, s, e)) return;
      endpoint ??= endpointOf(p);
      this.message(buf, s, e, 'sctp', endpoint, 132, record.tsSec, record.tsNsec, record.number, owned);
    };
    forEachSctpData(
      p.buf,
      p.payloadOffset,
      p.payloadEnd,
      (_ppid, stream, tsn, flags, buf, s, e) => {
        if ((flags & (SCTP_FLAG_BEGIN | SCTP_FLAG_END)) === (SCTP_FLAG_BEGIN | SCTP_FLAG_END))
          return found(buf, s, e, false);
        direction ??= p.directionKey();
        const whole = this.sctpMessages.add(direction, stream, tsn, flags, buf, s, e);
        if (whole) found(whole, 0, whole.length, true);
      },
      { emitFragments: true },
    );
  }

  /** End of capture: deliver what TCP still holds. */
  flush(): void {
    this.tcpStreams.flush();
  }

  private newStream(_key: string, _meta: TcpSegmentMeta): TcpStreamSink {
    // The reassembler asks for a sink while handling the current packet, so its endpoints are ours.
    return new SipStream(this, endpointOf(this.currentPacket!));
  }

  private currentPacket: DecodedPacket | null = null;

  /**
   * Parses one SIP message. Bytes the reader or a reassembler will reuse are copied first; `owned`
   * says buf[off, end) is already a buffer of its own (a HEP payload, a WebSocket or SCTP message).
   */
  message(
    buf: Buffer,
    off: number,
    end: number,
    transport: TransportName,
    endpoint: Endpoint,
    ipProtocol: number,
    tsSec: number,
    tsNsec: number,
    packetNumber: number,
    owned = false,
  ): void {
    const payload = owned && off === 0 && end === buf.length ? buf : Buffer.from(buf.subarray(off, end));
    const result = this.parser.parse(payload, 0, payload.length, {
      transportIsStream: transport === 'tcp' || transport === 'tls',
    });
    if (!result.ok) {
      this.stats.malformed++;
      this.problem('malformed-sip', result.error, packetNumber, transport, endpoint);
      return;
    }
    const sip = result.message;
    if (sip.warnings.length > 0) {
      this.stats.parseWarnings++;
      this.problem(
        'sip-warning',
        sip.warnings.join('; '),
        packetNumber,
        transport,
        endpoint,
        sip.callId ?? undefined,
      );
    }
    const retransmission =
      transport === 'udp' &&
      this.retransmissions.check(sip, endpoint.srcIp, endpoint.srcPort, endpoint.dstIp, endpoint.dstPort);
    this.stats.messages++;
    const callId = sip.callId ?? '';
    const onEvent = this.options.onEvent;
    if (!onEvent) return;
    onEvent({
      timestampNs: BigInt(tsSec) * 1_000_000_000n + BigInt(tsNsec),
      ipFamily: endpoint.ipFamily,
      ipProtocol,
      transport,
      srcIp: endpoint.srcIp,
      dstIp: endpoint.dstIp,
      srcPort: endpoint.srcPort,
      dstPort: endpoint.dstPort,
      vlan: endpoint.vlan,
      protoType: HEP_PROTO_SIP,
      captureId: this.captureId,
      nodeName: this.nodeName,
      correlationId: callId,
      payload,
      sip,
      retransmission,
      source: this.options.isFile
        ? { file: this.options.sourceName, packetNumber }
        : { interface: this.options.sourceName, packetNumber },
    });
  }

  /**
   * SIP carried in HEP3 (agents feeding HOMER): the event keeps the addresses and capture time the
   * agent reported, not those of the HEP packet.
   */
  hep(
    buf: Buffer,
    off: number,
    end: number,
    carrier: Endpoint,
    carrierTransport: TransportName,
    packetNumber: number,
  ): void {
    this.stats.hepFrames++;
    const decoded = decodeHep3(buf, off, end);
    if (!decoded.ok) {
      this.stats.malformedHep++;
      this.problem('malformed-hep', decoded.error, packetNumber, carrierTransport, carrier);
      return;
    }
    const e = decoded.event;
    if (
      e.protoType !== HEP_PROTO_SIP ||
      e.payload.length < 12 ||
      !looksLikeSip(e.payload, 0, e.payload.length)
    )
      return;
    const endpoint: Endpoint = {
      ipFamily: e.ipFamily,
      srcIp: e.srcIp,
      dstIp: e.dstIp,
      srcPort: e.srcPort,
      dstPort: e.dstPort,
      vlan: e.vlan,
    };
    const sec = e.timestampNs / 1_000_000_000n;
    const nsec = e.timestampNs - sec * 1_000_000_000n;
    this.message(
      e.payload,
      0,
      e.payload.length,
      e.transport,
      endpoint,
      e.ipProtocol,
      Number(sec),
      Number(nsec),
      packetNumber,
      true,
    );
  }

  problem(
    kind: SipProblem['kind'],
    message: string,
    packetNumber: number,
    transport: TransportName,
    endpoint: Endpoint,
    callId?: string,
  ): void {
    this.options.onProblem?.({
      kind,
      message,
      packetNumber,
      transport,
      src: `${endpoint.srcIp}:${endpoint.srcPort}`,
      dst: `${endpoint.dstIp}:${endpoint.dstPort}`,
      callId: callId === undefined ? undefined : callId.slice(0, MAX_KEY_PART),
    });
  }
}

function endpointOf(p: DecodedPacket): Endpoint {
  return {
    ipFamily: p.ipVersion === 6 ? 6 : 4,
    srcIp: p.srcIp(),
    dstIp: p.dstIp(),
    srcPort: p.srcPort,
    dstPort: p.dstPort,
    vlan: p.outerVlan(),
  };
}

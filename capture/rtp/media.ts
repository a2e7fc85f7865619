/**
 * The media tracker: finds RTP streams (from SDP offers/answers, ./sdp-bindings.ts, and by a strict
 * header heuristic where no signalling is visible, ./heuristic.ts), keeps tshark-compatible statistics
 * and quality per stream (5-tuple + SSRC), reads RTCP beside them, and reports each stream every
 * interval and when it ends (./reports.ts builds the reports).
 *
 * Hot path: a packet of a known stream costs one numeric hash, a bucket walk and the statistics update,
 * all on the stream's row of doubles (./stream.ts); strings are only built when a packet does not
 * belong to a known stream.
 */
import type { MediaEndReason, MediaStreamReport } from '../../core/media-report.js';
import type { Sdp, SipMessage } from '../../core/sip-message.js';
import type { PacketRecord } from '../file/record.js';
import type { DecodedPacket } from '../packet.js';
import { ntpMiddle32, parseRtcpCompound, type RtcpPacket, roundTripMs } from '../rtcp/rtcp.js';
import { ownedKeyPart } from '../sip/bounded-map.js';
import { decodeRtpHeader, RtpHeader } from './header.js';
import { RtpCandidates } from './heuristic.js';
import { clockRateOf, type DynamicPayload } from './payload-types.js';
import { codecOf, MediaReportBuilder } from './reports.js';
import { SdpBindings } from './sdp-bindings.js';
import { type MediaBinding, MediaStreamTable, type StreamKey } from './stream.js';

export interface MediaTrackerOptions {
  /** Find RTP with no visible SDP by its headers (default true). */
  heuristic?: boolean;
  /** Interval between a stream's reports, ms of capture time (default 10 000). */
  reportIntervalMs?: number;
  /** A stream silent this long ends (default 60 000 ms). */
  idleTimeoutMs?: number;
  /** After a BYE, the call's streams end once silent this long (default 2 000 ms). */
  byeGraceMs?: number;
  /** Streams tracked at once (default 50 000); beyond it idle ones are evicted, then new ones refused. */
  maxStreams?: number;
  /** Heuristic candidates on probation at once (default 10 000, oldest forgotten first). */
  maxCandidates?: number;
  /** SDP endpoints remembered (default 100 000, least recently used forgotten first). */
  maxEndpoints?: number;
  /** Packets a heuristic candidate needs, in sequence, before it becomes a stream (default 3). */
  probation?: number;
  onReport?: (report: MediaStreamReport) => void;
  onProblem?: (kind: string, message: string, packetNumber: number) => void;
}

export interface MediaStats {
  rtpPackets: number;
  rtcpPackets: number;
  rtcpMalformed: number;
  /** RTCP compounds with 1..3 bytes after their last packet: decoded, counted here, not malformed. */
  rtcpTrailingBytes: number;
  udptlPackets: number;
  streamsStarted: number;
  streamsFromSdp: number;
  streamsFromHeuristic: number;
  streamsEnded: number;
  streamsEvicted: number;
  streamsRefused: number;
  candidatesForgotten: number;
  candidatesRejected: number;
  intervalReports: number;
  finalReports: number;
  sdpEndpoints: number;
  endpointsForgotten: number;
}

export function emptyMediaStats(): MediaStats {
  return {
    rtpPackets: 0,
    rtcpPackets: 0,
    rtcpMalformed: 0,
    rtcpTrailingBytes: 0,
    udptlPackets: 0,
    streamsStarted: 0,
    streamsFromSdp: 0,
    streamsFromHeuristic: 0,
    streamsEnded: 0,
    streamsEvicted: 0,
    streamsRefused: 0,
    candidatesForgotten: 0,
    candidatesRejected: 0,
    intervalReports: 0,
    finalReports: 0,
    sdpEndpoints: 0,
    endpointsForgotten: 0,
  };
}

export class MediaTracker {
  readonly stats: MediaStats = emptyMediaStats();
  private readonly heuristic: boolean;
  private readonly reportIntervalMs: number;
  private readonly idleTimeoutMs: number;
  private readonly byeGraceMs: number;
  private readonly maxStreams: number;
  private readonly header = new RtpHeader();
  /** Probation packets of a heuristic stream are fed again through this one. */
  private readonly replay = new RtpHeader();
  private readonly streams = new MediaStreamTable();
  /** The 5-tuple of the packet being handled, rewritten per packet. */
  private readonly key: StreamKey = {
    ports: 0,
    srcA: 0,
    srcB: 0,
    srcC: 0,
    srcD: 0,
    dstA: 0,
    dstB: 0,
    dstC: 0,
    dstD: 0,
  };
  /**
   * The stream last started with each SSRC (as int32: a small integer key), for RTCP; removed when
   * that stream ends.
   */
  private readonly bySsrc = new Map<number, number>();
  /** The stream last started of each call; the others follow it through the rows' call chain. */
  private readonly byCall = new Map<string, number>();
  private readonly bindings: SdpBindings;
  private readonly candidates: RtpCandidates;
  private readonly reports = new MediaReportBuilder();
  private originSec = -1;
  private originNsec = 0;
  private nowMs = 0;
  private nextSweepMs = 1000;
  private lastFullSweepMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: MediaTrackerOptions = {}) {
    this.heuristic = options.heuristic ?? true;
    this.reportIntervalMs = options.reportIntervalMs ?? 10_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.byeGraceMs = options.byeGraceMs ?? 2_000;
    this.maxStreams = options.maxStreams ?? 50_000;
    this.candidates = new RtpCandidates(
      options.maxCandidates ?? 10_000,
      Math.max(1, Math.min(8, options.probation ?? 3)),
      this.stats,
    );
    this.bindings = new SdpBindings(options.maxEndpoints ?? 100_000, this.stats);
  }

  /** Streams being tracked now. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Capture time of a record in ms since the capture's first packet (tshark's relative time). */
  private timeOf(record: PacketRecord): number {
    if (this.originSec < 0) {
      this.originSec = record.tsSec;
      this.originNsec = record.tsNsec;
      this.reports.startAt(record.tsSec, record.tsNsec);
    }
    return (record.tsSec - this.originSec) * 1000 + (record.tsNsec - this.originNsec) / 1e6;
  }

  /** Every record passes here first so that time (reports, idle ends) advances with the capture. */
  tick(record: PacketRecord): void {
    const t = this.timeOf(record);
    this.nowMs = t;
    if (t >= this.nextSweepMs) this.sweep(t);
  }

  /**
   * The call of the datagram udp() last took (RTP, RTCP or UDPTL), when it is bound to one: what a
   * per-call RTP spool files it under.
   */
  lastCallId: string | null = null;

  /** A UDP datagram that was not SIP. Returns true when it was RTP, RTCP or UDPTL of a known call. */
  udp(p: DecodedPacket, record: PacketRecord): boolean {
    this.lastCallId = null;
    const buf = p.buf;
    const off = p.payloadOffset;
    const end = p.payloadEnd;
    if (end - off < 8 || buf[off] >> 6 !== 2) return this.maybeUdptl(p);
    // Marker + payload type 72..79 is RTCP's packet type 200..207 (RFC 5761): never RTP, and a
    // broken length is RTCP's to report as malformed.
    const b1 = buf[off + 1];
    if (b1 >= 200 && b1 <= 207) {
      this.rtcp(p, record);
      return true;
    }
    const h = this.header;
    if (!decodeRtpHeader(buf, off, end, h)) return this.maybeUdptl(p);
    const six = p.ipVersion === 6;
    const src = p.src;
    const dst = p.dst;
    const k = this.key;
    const sA = word(src, 0);
    const dA = word(dst, 0);
    const sB = six ? word(src, 4) : 0;
    const sC = six ? word(src, 8) : 0;
    const sD = six ? word(src, 12) : 0;
    const dB = six ? word(dst, 4) : 0;
    const dC = six ? word(dst, 8) : 0;
    const dD = six ? word(dst, 12) : 0;
    const ports = (p.srcPort << 16) | p.dstPort;
    k.ports = ports;
    k.srcA = sA;
    k.srcB = sB;
    k.srcC = sC;
    k.srcD = sD;
    k.dstA = dA;
    k.dstB = dB;
    k.dstC = dC;
    k.dstD = dD;
    const ssrc = h.ssrc | 0;
    // Buckets are per 5-tuple (SSRC compared while walking): a new SSRC on a known 5-tuple shows there.
    let hash = Math.imul(ports, 0x9e3779b1);
    hash = Math.imul(hash ^ sA, 0x85ebca6b) ^ Math.imul(dA, 0xc2b2ae35);
    if (six) hash ^= Math.imul(sB ^ sC ^ sD, 0x27d4eb2f) ^ Math.imul(dB ^ dC ^ dD, 0x165667b1);
    hash ^= hash >>> 15;
    const streams = this.streams;
    let s = streams.find(hash, k, ssrc);
    h.timeMs = this.nowMs;
    if (s < 0) {
      const binding = this.bindings.forDatagram(p);
      if (binding !== null && binding.kind === 'udptl') {
        this.stats.udptlPackets++;
        this.lastCallId = binding.callId;
        return true;
      }
      if (binding !== null && binding.kind === 'rtcp') return false;
      const previousSsrc = streams.otherSsrcOfTuple(hash, k, ssrc);
      if (binding === null) {
        if (!this.heuristic) return false;
        const cand = this.candidates.offer((hash ^ Math.imul(h.ssrc, 0x2545f491)) | 0, p, h, h.timeMs);
        if (cand === null) return false;
        s = this.newStream(hash, p, ssrc, this.bindings.byPort(p), 'heuristic');
        if (s < 0) return false;
        const r = this.replay;
        for (let i = 0; i < cand.count; i++) {
          r.timeMs = cand.times[i];
          r.sequence = cand.seqs[i];
          r.timestamp = cand.timestamps[i];
          r.payloadType = cand.pts[i];
          r.marker = cand.markers[i];
          r.dataLength = cand.lengths[i];
          this.feed(s, r);
        }
        this.stats.rtpPackets += cand.count;
      } else {
        s = this.newStream(hash, p, ssrc, binding, 'sdp');
        if (s < 0) return false;
      }
      if (previousSsrc >= 0) streams.previousSsrc(s, previousSsrc);
    }
    this.stats.rtpPackets++;
    this.feed(s, h);
    this.lastCallId = streams.binding(s)?.callId ?? null;
    return true;
  }

  private feed(s: number, h: RtpHeader): void {
    const pt = h.payloadType;
    let dynamic: DynamicPayload | undefined;
    if (pt >= 96) dynamic = this.streams.binding(s)?.rtpmap.get(pt);
    this.streams.packet(s, h, clockRateOf(pt, dynamic));
  }

  /** Starts a stream for the packet whose 5-tuple is in `this.key`; returns its slot, -1 if refused. */
  private newStream(
    hash: number,
    p: DecodedPacket,
    ssrc: number,
    binding: MediaBinding | null,
    discovery: 'sdp' | 'heuristic',
  ): number {
    const streams = this.streams;
    if (streams.size >= this.maxStreams) {
      if (this.nowMs - this.lastFullSweepMs >= 1000) {
        this.lastFullSweepMs = this.nowMs;
        this.evictIdle(this.nowMs - Math.min(this.idleTimeoutMs, 5000));
      }
      if (streams.size >= this.maxStreams) {
        this.stats.streamsRefused++;
        return -1;
      }
    }
    const s = streams.add(
      hash,
      this.key,
      ssrc,
      p.ipVersion === 6 ? 6 : 4,
      p.outerVlan() ?? -1,
      binding,
      discovery,
      this.nowMs,
    );
    this.stats.streamsStarted++;
    if (discovery === 'sdp') this.stats.streamsFromSdp++;
    else this.stats.streamsFromHeuristic++;
    this.bySsrc.set(ssrc, s);
    if (binding !== null) {
      streams.setNextOfCall(s, this.byCall.get(binding.callId) ?? -1);
      this.byCall.set(binding.callId, s);
    }
    return s;
  }

  private maybeUdptl(p: DecodedPacket): boolean {
    const binding = this.bindings.forDatagram(p);
    if (binding === null || binding.kind !== 'udptl') return false;
    this.stats.udptlPackets++;
    this.lastCallId = binding.callId;
    return true;
  }

  /** SIP message seen: SDP bodies announce endpoints; BYE and CANCEL end the call's streams. */
  sip(message: SipMessage, packetNumber: number): void {
    const callId = message.callId;
    if (!callId) return;
    if (message.isRequest && (message.method === 'BYE' || message.method === 'CANCEL')) {
      const endAfter = this.nowMs + this.byeGraceMs;
      for (let s = this.byCall.get(callId) ?? -1; s >= 0; s = this.streams.nextOfCall(s))
        this.streams.endAfter(s, endAfter, 'bye');
    }
    if (message.contentType === null && message.body.length === 0) return;
    let sdp: Sdp | null;
    try {
      sdp = message.sdp;
    } catch (err) {
      this.options.onProblem?.('sdp', `SDP could not be read: ${(err as Error).message}`, packetNumber);
      return;
    }
    if (sdp === null) return;
    this.bindings.announce(ownedKeyPart(callId), sdp);
  }

  private rtcp(p: DecodedPacket, record: PacketRecord): void {
    this.stats.rtcpPackets++;
    const result = parseRtcpCompound(p.buf, p.payloadOffset, p.payloadEnd);
    if (!result.ok) {
      this.stats.rtcpMalformed++;
      this.options.onProblem?.('malformed-rtcp', result.error, record.number);
    } else if (result.warning !== undefined) {
      this.stats.rtcpTrailingBytes++;
      this.options.onProblem?.('rtcp-trailing-bytes', result.warning, record.number);
    }
    const arrival = ntpMiddle32(record.tsSec, record.tsNsec);
    for (const packet of result.packets) {
      this.rtcpPacket(packet, arrival);
      // The sender's stream names the call (an SR or RR comes first in a compound packet).
      if (this.lastCallId === null && (packet.type === 'sr' || packet.type === 'rr'))
        this.lastCallId = this.streamOfSsrc(packet.ssrc)?.callId ?? null;
    }
  }

  /** The binding of the stream last started with `ssrc`, undefined when none is tracked. */
  private streamOfSsrc(ssrc: number): MediaBinding | null | undefined {
    const s = this.bySsrc.get(ssrc | 0);
    return s === undefined ? undefined : this.streams.binding(s);
  }

  private rtcpPacket(packet: RtcpPacket, arrival: number): void {
    const streams = this.streams;
    switch (packet.type) {
      case 'sr':
      case 'rr': {
        const sender = this.bySsrc.get(packet.ssrc | 0);
        if (sender !== undefined) {
          const st = streams.rtcpState(sender);
          if (packet.type === 'sr') st.senderReports++;
          else st.receiverReports++;
        }
        for (const block of packet.reports) {
          const about = this.bySsrc.get(block.ssrc | 0);
          if (about === undefined) continue;
          const st = streams.rtcpState(about);
          st.fractionLost = block.fractionLost;
          st.cumulativeLost = block.cumulativeLost;
          const clock = streams.clockRate(about) || 8000;
          st.jitterMs = (block.jitter * 1000) / clock;
          const rtt = roundTripMs(arrival, block.lsr, block.dlsr);
          if (rtt !== null) st.roundTripMs = rtt;
        }
        break;
      }
      case 'sdes':
        for (const chunk of packet.chunks) {
          const s = this.bySsrc.get(chunk.ssrc | 0);
          if (s !== undefined && chunk.cname !== null) streams.rtcpState(s).cname = chunk.cname;
        }
        break;
      case 'bye':
        for (const ssrc of packet.ssrcs) {
          const s = this.bySsrc.get(ssrc | 0);
          if (s !== undefined) streams.endAfter(s, this.nowMs + this.byeGraceMs, 'rtcp-bye');
        }
        break;
      case 'xr':
        for (const m of packet.voipMetrics) {
          const s = this.bySsrc.get(m.ssrc | 0);
          if (s === undefined) continue;
          const st = streams.rtcpState(s);
          st.xrRFactor = m.rFactor === 127 ? null : m.rFactor;
          st.xrMosLq = m.mosLq;
          st.xrMosCq = m.mosCq;
        }
        break;
      default:
        break;
    }
  }

  /** Once per second of capture time: interval reports due, idle and BYE-ended streams. */
  private sweep(now: number): void {
    this.nextSweepMs = Math.floor(now / 1000) * 1000 + 1000;
    const idleBefore = now - this.idleTimeoutMs;
    const streams = this.streams;
    for (let s = streams.firstLive; s >= 0; ) {
      const next = streams.nextLive(s);
      const lastTimeMs = streams.lastTimeMs(s);
      if (lastTimeMs < idleBefore) this.end(s, 'idle');
      else if (now >= streams.endAfterMs(s) && now - lastTimeMs >= this.byeGraceMs)
        this.end(s, streams.endReason(s) ?? 'bye');
      else if (now - streams.intervalStartMs(s) >= this.reportIntervalMs)
        this.report(s, 'interval', null, now);
      s = next;
    }
  }

  private evictIdle(before: number): void {
    const streams = this.streams;
    for (let s = streams.firstLive; s >= 0; ) {
      const next = streams.nextLive(s);
      if (streams.lastTimeMs(s) < before) {
        this.end(s, 'evicted');
        this.stats.streamsEvicted++;
      }
      s = next;
    }
  }

  /** End of input: every stream still open gets its final report. */
  finish(): void {
    const streams = this.streams;
    for (let s = streams.firstLive; s >= 0; ) {
      const next = streams.nextLive(s);
      this.end(s, 'end-of-capture');
      s = next;
    }
  }

  private end(s: number, reason: MediaEndReason): void {
    const streams = this.streams;
    if (!streams.isLive(s)) return;
    streams.drain(s);
    this.report(s, 'final', reason, Math.max(streams.lastTimeMs(s), streams.intervalStartMs(s)));
    this.unlink(s);
    this.stats.streamsEnded++;
  }

  private unlink(s: number): void {
    const streams = this.streams;
    const ssrc = streams.at(s).ssrc | 0;
    if (this.bySsrc.get(ssrc) === s) this.bySsrc.delete(ssrc);
    const binding = streams.binding(s);
    if (binding !== null) {
      const callId = binding.callId;
      const first = this.byCall.get(callId);
      const after = streams.nextOfCall(s);
      if (first === s) {
        if (after < 0) this.byCall.delete(callId);
        else this.byCall.set(callId, after);
      } else {
        for (let o = first ?? -1; o >= 0; o = streams.nextOfCall(o)) {
          if (streams.nextOfCall(o) === s) {
            streams.setNextOfCall(o, after);
            break;
          }
        }
      }
    }
    streams.remove(s);
  }

  private report(s: number, kind: 'interval' | 'final', reason: MediaEndReason | null, atMs: number): void {
    const streams = this.streams;
    const view = streams.at(s);
    const codec = codecOf(view, view.payloadType);
    const interval = view.packets > 0 ? streams.closeInterval(s, atMs, codec) : null;
    if (kind === 'interval') this.stats.intervalReports++;
    else this.stats.finalReports++;
    const onReport = this.options.onReport;
    if (!onReport) return;
    onReport(this.reports.build(view, kind, reason, interval, codec));
  }
}

/** Four address bytes as a signed 32-bit integer: a small integer to V8, never a boxed double. */
function word(b: Uint8Array, i: number): number {
  return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
}

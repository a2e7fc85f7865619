/**
 * Report building: a stream's figures as a MediaStreamReport (the type is in core/media-report.ts),
 * with its addresses formatted and its capture-relative times made absolute.
 */
import { formatIp } from '../../core/address.js';
import type { MediaEndReason, MediaStreamReport } from '../../core/media-report.js';
import { codecName, payloadTypeName } from './payload-types.js';
import type { IntervalResult, MediaStream } from './stream.js';

/** The codec name of payload type `pt` in stream `s` (dynamic types named by the stream's SDP). */
export function codecOf(s: MediaStream, pt: number): string | null {
  return codecName(pt, pt >= 96 && s.binding !== null ? s.binding.rtpmap.get(pt) : undefined);
}

/** The report builder of one tracker: knows when the capture started, formats addresses in one reused buffer. */
export class MediaReportBuilder {
  /** The capture's first packet, ns since the Unix epoch: stream times are ms after it. */
  private originNs = 0n;
  private readonly scratch = new Uint8Array(16);

  /** Sets the capture's first packet time. */
  startAt(tsSec: number, tsNsec: number): void {
    this.originNs = BigInt(tsSec) * 1_000_000_000n + BigInt(tsNsec);
  }

  /** Stream `s` as a report; `interval` is the interval just closed (null when it had no packets). */
  build(
    s: MediaStream,
    kind: 'interval' | 'final',
    reason: MediaEndReason | null,
    interval: IntervalResult | null,
    codec: string | null,
  ): MediaStreamReport {
    const pts = s.payloadTypeList();
    const durationMs = s.lastTimeMs - s.firstTimeMs;
    const expected = s.expected;
    const voice = s.clockRate > 0 && s.mosIntervals > 0;
    return {
      kind,
      endReason: reason,
      callId: s.binding?.callId ?? null,
      discovery: s.discovery,
      ipFamily: s.ipFamily,
      src: this.address(s.ipFamily, s.srcA, s.srcB, s.srcC, s.srcD),
      srcPort: s.ports >>> 16,
      dst: this.address(s.ipFamily, s.dstA, s.dstB, s.dstC, s.dstD),
      dstPort: s.ports & 0xffff,
      vlan: s.vlan,
      ssrc: s.ssrc,
      previousSsrc: s.previousSsrc,
      payloadType: s.payloadType,
      codec,
      clockRate: s.clockRate,
      payloadTypes: pts,
      payloadNames: pts.map((pt) => {
        const dyn = pt >= 96 && s.binding !== null ? s.binding.rtpmap.get(pt) : undefined;
        if (dyn) return dyn.encoding;
        // With SDP, Wireshark names dynamic types from the rtpmap only (no default for 101).
        if (pt >= 96 && s.discovery === 'sdp') return `RTPType-${pt}`;
        return payloadTypeName(pt);
      }),
      startNs: this.nsAt(s.firstTimeMs),
      endNs: this.nsAt(s.lastTimeMs),
      startTime: s.firstTimeMs / 1000,
      endTime: s.lastTimeMs / 1000,
      packets: s.packets,
      expected,
      lost: s.lost,
      lossPercent: expected > 0 ? (100 * s.lost) / (expected >>> 0) : 0,
      sequenceErrors: s.sequenceErrors,
      duplicates: s.duplicates,
      outOfOrder: s.outOfOrder,
      wrongTimestamps: s.wrongTimestamps,
      markers: s.markers,
      minDeltaMs: s.minDeltaMs,
      meanDeltaMs: s.meanDeltaMs,
      maxDeltaMs: s.maxDeltaMs,
      minJitterMs: s.minJitterMs,
      meanJitterMs: s.meanJitterMs,
      maxJitterMs: s.maxJitterMs,
      maxSkewMs: s.maxSkewMs,
      bytes: s.bytes,
      bitrateKbps: durationMs > 0 ? (s.bytes * 8) / durationMs : 0,
      problem: s.problem,
      mos: voice ? s.meanMos : null,
      minMos: voice ? s.minMos : null,
      rFactor: voice ? s.lastR : null,
      lossBursts: s.lossBurstCounts(),
      delayOver: s.delayShares(),
      interval:
        interval === null
          ? null
          : {
              startNs: this.nsAt(interval.startMs),
              endNs: this.nsAt(interval.endMs),
              packets: interval.packets,
              expected: interval.expected,
              lost: interval.lost,
              lossPercent: interval.lossPercent,
              jitterMs: interval.jitterMs,
              maxJitterMs: interval.maxJitterMs,
              burstR: interval.burstR,
              rFactor: interval.rFactor,
              mos: interval.mos,
            },
      rtcp: s.rtcp === null ? null : { ...s.rtcp },
    };
  }

  private nsAt(ms: number): bigint {
    return this.originNs + BigInt(Math.round(ms * 1e6));
  }

  private address(family: 4 | 6, a: number, b: number, c: number, d: number): string {
    const x = this.scratch;
    const words = [a, b, c, d];
    for (let i = 0; i < (family === 6 ? 4 : 1); i++) {
      const w = words[i];
      x[i * 4] = w >>> 24;
      x[i * 4 + 1] = (w >>> 16) & 0xff;
      x[i * 4 + 2] = (w >>> 8) & 0xff;
      x[i * 4 + 3] = w & 0xff;
    }
    return formatIp(family, x);
  }
}

/**
 * What a media stream reports: an interval report while it is active (default every 10 s of capture
 * time) and a final one when it ends. These become HEP-like events (protocol type 34, JSON payload)
 * carrying the Call-ID, so quality over time reaches the store, not only totals at the end.
 */

export type MediaReportKind = 'interval' | 'final';
/** Why a final report was emitted. */
export type MediaEndReason = 'bye' | 'rtcp-bye' | 'idle' | 'end-of-capture' | 'evicted';

export interface MediaIntervalFigures {
  /** Capture time of the interval's start and end, ns since the Unix epoch (as decimal strings in JSON). */
  startNs: bigint;
  endNs: bigint;
  packets: number;
  expected: number;
  lost: number;
  lossPercent: number;
  /** RFC 3550 jitter at the end of the interval and its maximum within it, ms. */
  jitterMs: number;
  maxJitterMs: number;
  /** Burstiness of the interval's loss (1 random, > 1 bursty), as the E-model takes it. */
  burstR: number;
  rFactor: number;
  mos: number;
}

export interface RtcpFigures {
  senderReports: number;
  receiverReports: number;
  /** From the latest report block about this stream (sent by its receiver). */
  fractionLost: number | null;
  cumulativeLost: number | null;
  jitterMs: number | null;
  roundTripMs: number | null;
  /** RFC 3611 VoIP metrics from the receiver, when it sends XR. */
  xrRFactor: number | null;
  xrMosLq: number | null;
  xrMosCq: number | null;
  cname: string | null;
}

export interface MediaStreamReport {
  kind: MediaReportKind;
  /** Set on final reports. */
  endReason: MediaEndReason | null;
  callId: string | null;
  /** How the stream was found: from SDP (which endpoint matched) or by the header heuristic. */
  discovery: 'sdp' | 'heuristic';
  ipFamily: 4 | 6;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  vlan: number | null;
  ssrc: number;
  /** SSRC this 5-tuple carried before, when the sender changed SSRC mid-call. */
  previousSsrc: number | null;
  /**
   * Voice payload type (the latest with a clock that is not comfort noise, else the first seen) and its
   * codec name (SDP encoding, or the static type's).
   */
  payloadType: number;
  codec: string | null;
  clockRate: number;
  /** Every payload type seen, by number, with Wireshark's names (e.g. `g711A`, `CN`, `telephone-event`). */
  payloadTypes: number[];
  payloadNames: string[];
  startNs: bigint;
  endNs: bigint;
  /** Seconds since the capture's first packet, as tshark prints stream start and end. */
  startTime: number;
  endTime: number;
  // Whole-stream figures, computed as tshark's RTP Streams table computes them.
  packets: number;
  expected: number;
  lost: number;
  lossPercent: number;
  sequenceErrors: number;
  duplicates: number;
  outOfOrder: number;
  wrongTimestamps: number;
  markers: number;
  minDeltaMs: number;
  meanDeltaMs: number;
  maxDeltaMs: number;
  minJitterMs: number;
  meanJitterMs: number;
  maxJitterMs: number;
  maxSkewMs: number;
  bytes: number;
  /** Mean bitrate over the stream's duration, kbit/s of RTP (header + payload). */
  bitrateKbps: number;
  problem: boolean;
  // Quality.
  /**
   * Mean and minimum of the interval MOS values so far (intervals with packets); null for streams with
   * no voice clock (telephone-event only, unknown dynamic types).
   */
  mos: number | null;
  minMos: number | null;
  /** R-factor of the latest interval. */
  rFactor: number | null;
  /** Runs of consecutive lost packets: index 0 counts runs of 1, the last bucket runs of that length or more. */
  lossBursts: number[];
  /** Share of packets later than 50/70/90/120/150/200/300 ms against their expected arrival. */
  delayOver: Record<string, number>;
  interval: MediaIntervalFigures | null;
  rtcp: RtcpFigures | null;
  /** Where it came from, for error context. */
  source?: { file?: string; interface?: string };
}

/** JSON with bigint nanoseconds as decimal strings (converted up front: a replacer is slow). */
export function mediaReportJson(report: MediaStreamReport): string {
  const { startNs, endNs, interval, ...rest } = report;
  return JSON.stringify({
    ...rest,
    startNs: startNs.toString(),
    endNs: endNs.toString(),
    interval:
      interval === null
        ? null
        : { ...interval, startNs: interval.startNs.toString(), endNs: interval.endNs.toString() },
  });
}

/**
 * What a media stream reports: an interval report while it is active (default every 10 s of capture
 * time) and a final one when it ends. These become HEP-like events (protocol type 34, JSON payload)
 * carrying the Call-ID, so quality over time reaches the store, not only totals at the end.
 */

import { isObject, type JsonObject, parseJsonObject } from './json.js';

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

// Type-34 JSON from another callscope agent (events that crossed HEP or Kafka without `media`)

class ShapeError extends Error {}

function num(o: JsonObject, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ShapeError(key);
  return v;
}

function numOrNull(o: JsonObject, key: string): number | null {
  return o[key] === null ? null : num(o, key);
}

function str(o: JsonObject, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ShapeError(key);
  return v;
}

function strOrNull(o: JsonObject, key: string): string | null {
  return o[key] === null || o[key] === undefined ? null : str(o, key);
}

function ns(o: JsonObject, key: string): bigint {
  const v = str(o, key);
  if (!/^\d{1,20}$/.test(v)) throw new ShapeError(key);
  return BigInt(v);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], key: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new ShapeError(key);
  return value as T;
}

function numbers(o: JsonObject, key: string): number[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new ShapeError(key);
  return v as number[];
}

/**
 * A MediaStreamReport from the JSON `mediaReportJson` writes (nanoseconds as decimal strings), or null
 * when the payload has another shape (another vendor's type 34). Checked field by field: a wrong
 * type in one event must not reach the TSV and fail a whole batch.
 */
export function mediaReportFromJson(payload: Buffer): MediaStreamReport | null {
  const o = parseJsonObject(payload);
  if (o === null) return null;
  try {
    const interval = isObject(o.interval)
      ? {
          startNs: ns(o.interval, 'startNs'),
          endNs: ns(o.interval, 'endNs'),
          packets: num(o.interval, 'packets'),
          expected: num(o.interval, 'expected'),
          lost: num(o.interval, 'lost'),
          lossPercent: num(o.interval, 'lossPercent'),
          jitterMs: num(o.interval, 'jitterMs'),
          maxJitterMs: num(o.interval, 'maxJitterMs'),
          burstR: num(o.interval, 'burstR'),
          rFactor: num(o.interval, 'rFactor'),
          mos: num(o.interval, 'mos'),
        }
      : null;
    const rtcp = isObject(o.rtcp)
      ? {
          senderReports: num(o.rtcp, 'senderReports'),
          receiverReports: num(o.rtcp, 'receiverReports'),
          fractionLost: numOrNull(o.rtcp, 'fractionLost'),
          cumulativeLost: numOrNull(o.rtcp, 'cumulativeLost'),
          jitterMs: numOrNull(o.rtcp, 'jitterMs'),
          roundTripMs: numOrNull(o.rtcp, 'roundTripMs'),
          xrRFactor: numOrNull(o.rtcp, 'xrRFactor'),
          xrMosLq: numOrNull(o.rtcp, 'xrMosLq'),
          xrMosCq: numOrNull(o.rtcp, 'xrMosCq'),
          cname: strOrNull(o.rtcp, 'cname'),
        }
      : null;
    const delayOver: Record<string, number> = {};
    if (!isObject(o.delayOver)) throw new ShapeError('delayOver');
    for (const key of Object.keys(o.delayOver)) delayOver[key] = num(o.delayOver, key);
    const names = o.payloadNames;
    if (!Array.isArray(names) || !names.every((x) => typeof x === 'string'))
      throw new ShapeError('payloadNames');
    const endReason = strOrNull(o, 'endReason');
    return {
      kind: oneOf(str(o, 'kind'), ['interval', 'final'] as const, 'kind'),
      endReason:
        endReason === null
          ? null
          : oneOf(endReason, ['bye', 'rtcp-bye', 'idle', 'end-of-capture', 'evicted'] as const, 'endReason'),
      callId: strOrNull(o, 'callId'),
      discovery: oneOf(str(o, 'discovery'), ['sdp', 'heuristic'] as const, 'discovery'),
      ipFamily: num(o, 'ipFamily') === 6 ? 6 : 4,
      src: str(o, 'src'),
      srcPort: num(o, 'srcPort'),
      dst: str(o, 'dst'),
      dstPort: num(o, 'dstPort'),
      vlan: numOrNull(o, 'vlan'),
      ssrc: num(o, 'ssrc'),
      previousSsrc: numOrNull(o, 'previousSsrc'),
      payloadType: num(o, 'payloadType'),
      codec: strOrNull(o, 'codec'),
      clockRate: num(o, 'clockRate'),
      payloadTypes: numbers(o, 'payloadTypes'),
      payloadNames: names as string[],
      startNs: ns(o, 'startNs'),
      endNs: ns(o, 'endNs'),
      startTime: num(o, 'startTime'),
      endTime: num(o, 'endTime'),
      packets: num(o, 'packets'),
      expected: num(o, 'expected'),
      lost: num(o, 'lost'),
      lossPercent: num(o, 'lossPercent'),
      sequenceErrors: num(o, 'sequenceErrors'),
      duplicates: num(o, 'duplicates'),
      outOfOrder: num(o, 'outOfOrder'),
      wrongTimestamps: num(o, 'wrongTimestamps'),
      markers: num(o, 'markers'),
      minDeltaMs: num(o, 'minDeltaMs'),
      meanDeltaMs: num(o, 'meanDeltaMs'),
      maxDeltaMs: num(o, 'maxDeltaMs'),
      minJitterMs: num(o, 'minJitterMs'),
      meanJitterMs: num(o, 'meanJitterMs'),
      maxJitterMs: num(o, 'maxJitterMs'),
      maxSkewMs: num(o, 'maxSkewMs'),
      bytes: num(o, 'bytes'),
      bitrateKbps: num(o, 'bitrateKbps'),
      problem: o.problem === true,
      mos: numOrNull(o, 'mos'),
      minMos: numOrNull(o, 'minMos'),
      rFactor: numOrNull(o, 'rFactor'),
      lossBursts: numbers(o, 'lossBursts'),
      delayOver,
      interval,
      rtcp,
    };
  } catch (error) {
    if (error instanceof ShapeError) return null;
    throw error;
  }
}

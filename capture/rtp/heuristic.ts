/**
 * Heuristic RTP discovery, for streams no visible SDP announced: a 5-tuple + SSRC stays on probation
 * until enough packets in a row look like one RTP stream. The tracker then starts the stream and feeds
 * it the packets kept here.
 */
import type { DecodedPacket } from '../packet.js';
import type { RtpHeader } from './header.js';

/** A 5-tuple + SSRC on probation, with the header fields of its packets so far (to be replayed). */
export interface Candidate {
  hash: number;
  key: string;
  count: number;
  lastMs: number;
  times: number[];
  seqs: number[];
  timestamps: number[];
  pts: number[];
  markers: boolean[];
  lengths: number[];
}

const MAX_PT_GAP = 3;

/** Payload types a heuristic accepts: registered static audio/video types and the dynamic range. */
function plausiblePayloadType(pt: number): boolean {
  return pt <= 19 || pt === 25 || pt === 26 || pt === 28 || (pt >= 31 && pt <= 34) || pt >= 96;
}

/** The tracker's figures probation counts (MediaStats has them). */
export interface ProbationCounters {
  candidatesForgotten: number;
  candidatesRejected: number;
}

/**
 * The candidates on probation, at most `maxCandidates` (in two generations: the older one is forgotten
 * whole when the younger fills up).
 */
export class RtpCandidates {
  private candidates = new Map<number, Candidate>();
  private oldCandidates = new Map<number, Candidate>();

  /** `probation`: packets a candidate needs, in sequence, before it becomes a stream. */
  constructor(
    private readonly maxCandidates: number,
    private readonly probation: number,
    private readonly stats: ProbationCounters,
  ) {}

  /**
   * Heuristic probation: the same 5-tuple and SSRC over `probation` packets, each with a sequence
   * number 1..3 ahead of the previous one, a timestamp not behind it, one plausible payload type, and
   * no more than 5 s between packets. Returns the candidate once it qualifies (then forgotten).
   */
  offer(hash: number, p: DecodedPacket, h: RtpHeader, timeMs: number): Candidate | null {
    if (!plausiblePayloadType(h.payloadType) || h.badPadding) {
      this.stats.candidatesRejected++;
      return null;
    }
    const key = `${p.ipVersion}|${p.srcIp()}|${p.srcPort}|${p.dstIp()}|${p.dstPort}|${h.ssrc}`;
    let c = this.candidates.get(hash);
    if (c === undefined) {
      c = this.oldCandidates.get(hash);
      if (c !== undefined) {
        this.oldCandidates.delete(hash);
        this.candidates.set(hash, c);
      }
    }
    if (c !== undefined && c.key !== key) c = undefined;
    if (c !== undefined) {
      const i = c.count - 1;
      const seqStep = (h.sequence - c.seqs[i]) & 0xffff;
      const tsStep = (h.timestamp - c.timestamps[i]) >>> 0;
      if (
        seqStep < 1 ||
        seqStep > MAX_PT_GAP ||
        tsStep >= 0x80000000 ||
        h.payloadType !== c.pts[i] ||
        timeMs - c.lastMs > 5000 ||
        timeMs < c.lastMs
      ) {
        c.count = 0;
      }
    } else {
      if (this.candidates.size >= Math.max(1, this.maxCandidates >> 1)) {
        this.stats.candidatesForgotten += this.oldCandidates.size;
        this.oldCandidates = this.candidates;
        this.candidates = new Map();
      }
      c = {
        hash,
        key,
        count: 0,
        lastMs: timeMs,
        times: [],
        seqs: [],
        timestamps: [],
        pts: [],
        markers: [],
        lengths: [],
      };
      this.candidates.set(hash, c);
    }
    const i = c.count++;
    c.times[i] = timeMs;
    c.seqs[i] = h.sequence;
    c.timestamps[i] = h.timestamp;
    c.pts[i] = h.payloadType;
    c.markers[i] = h.marker;
    c.lengths[i] = h.dataLength;
    c.lastMs = timeMs;
    if (c.count < this.probation) return null;
    this.candidates.delete(hash);
    // The packet being handled is fed by the caller: hand back only the earlier ones.
    c.count--;
    return c;
  }
}

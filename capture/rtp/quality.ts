/**
 * Media quality scoring: the ITU-T G.107 E-model (R-factor → MOS) plus the per-packet counters it feeds
 * on (loss-burst histogram, delay-variation buckets). The choices behind every constant are in
 * docs/QUALITY.md; keep the two in step.
 */

/** Codec constants for the E-model: equipment impairment Ie and packet-loss robustness Bpl (ITU-T G.113 Appendix I), per codec. */
export interface CodecImpairment {
  codec: string;
  /** Equipment impairment without loss; on the G.107.1 wideband scale (Ie,WB) when `wideband`. */
  ie: number;
  /** Packet-loss robustness, with the decoder's loss concealment. */
  bpl: number;
  wideband: boolean;
  /** Where `ie` and `bpl` come from, including when `bpl` is our fallback rather than published. */
  source: string;
}

const G113 = 'ITU-T G.113 Appendix I';
/** G.113 publishes Bpl for only a few codecs; the rest borrow G.711's (see docs/QUALITY.md). */
const BPL_FALLBACK = 'Bpl not published: G.711-with-PLC value assumed';

/** G.711 packet-loss robustness with the G.711 Appendix I concealment (G.113 Appendix I). */
export const G711_BPL_WITH_PLC = 25.1;
/** G.711 packet-loss robustness with no concealment, silence in the gap (G.113 Appendix I). */
export const G711_BPL_WITHOUT_PLC = 4.3;

function entry(codec: string, ie: number, bpl: number, wideband: boolean, source: string): CodecImpairment {
  return Object.freeze({ codec, ie, bpl, wideband, source });
}

/**
 * Keyed by lower-case encoding name as in SDP rtpmap. Only values published by the ITU-T are here;
 * codecs it gives no planning values for (iLBC, AMR, AMR-WB without its mode, Opus, Speex) are left
 * out on purpose and score as G.711 through `codecImpairment`.
 */
export const CODEC_IMPAIRMENTS: Readonly<Record<string, CodecImpairment>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, CodecImpairment>, {
    // G.711 with concealment: receivers almost always conceal, and without it G.711 would rank below
    // G.729 from 0.75 % loss up (docs/QUALITY.md, "PLC assumption").
    pcmu: entry('pcmu', 0, G711_BPL_WITH_PLC, false, `${G113}: G.711 with Appendix I PLC`),
    pcma: entry('pcma', 0, G711_BPL_WITH_PLC, false, `${G113}: G.711 with Appendix I PLC`),
    g729: entry('g729', 11, 19, false, `${G113}: G.729A + VAD`),
    // The rtpmap name does not say which G.723.1 rate; 6.3 kbit/s is the one with a published Bpl.
    g723: entry('g723', 15, 16.1, false, `${G113}: G.723.1 6.3 kbit/s + VAD`),
    'gsm-efr': entry('gsm-efr', 5, 10, false, `${G113}: GSM 06.60 EFR 12.2 kbit/s`),
    gsm: entry('gsm', 20, G711_BPL_WITH_PLC, false, `${G113}: GSM 06.10 FR Ie; ${BPL_FALLBACK}`),
    g728: entry('g728', 7, G711_BPL_WITH_PLC, false, `${G113}: G.728 16 kbit/s Ie; ${BPL_FALLBACK}`),
    'g726-40': entry('g726-40', 2, G711_BPL_WITH_PLC, false, `${G113}: G.726 40 kbit/s Ie; ${BPL_FALLBACK}`),
    'g726-32': entry('g726-32', 7, G711_BPL_WITH_PLC, false, `${G113}: G.726 32 kbit/s Ie; ${BPL_FALLBACK}`),
    'g726-24': entry('g726-24', 25, G711_BPL_WITH_PLC, false, `${G113}: G.726 24 kbit/s Ie; ${BPL_FALLBACK}`),
    'g726-16': entry('g726-16', 50, G711_BPL_WITH_PLC, false, `${G113}: G.726 16 kbit/s Ie; ${BPL_FALLBACK}`),
    g722: entry(
      'g722',
      13,
      G711_BPL_WITH_PLC,
      true,
      `ITU-T G.113 Appendix IV: G.722 64 kbit/s Ie,WB; ${BPL_FALLBACK}`,
    ),
  }),
);

/** What an unknown or missing codec scores as: G.711's constants, so loss still counts fully. */
export const UNKNOWN_CODEC_IMPAIRMENT: CodecImpairment = entry(
  'unknown',
  0,
  G711_BPL_WITH_PLC,
  false,
  'no published values for this codec: G.711 with PLC assumed',
);

/** Worst-case G.711 (receiver without concealment), for callers that must not assume PLC. */
export const G711_WITHOUT_PLC: CodecImpairment = entry(
  'g711-no-plc',
  0,
  G711_BPL_WITHOUT_PLC,
  false,
  `${G113}: G.711 without PLC`,
);

export function codecImpairment(codec: string | null): CodecImpairment {
  if (codec === null) return UNKNOWN_CODEC_IMPAIRMENT;
  // Null-prototype table: names like 'constructor' cannot resolve to Object.prototype members.
  return CODEC_IMPAIRMENTS[codec.trim().toLowerCase()] ?? UNKNOWN_CODEC_IMPAIRMENT;
}

/** G.107 narrowband: R0 − Is with every parameter at its default. */
export const R_DEFAULT = 93.2;
/** G.107.1 wideband rating-scale maximum; R_WB / WIDEBAND_SCALE is comparable with the narrowband R. */
export const R_WIDEBAND_MAX = 129;
export const WIDEBAND_SCALE = 1.29;

/**
 * Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl); Ppl in percent (0..100).
 * `scaleMax` is the value the impairment tends to as loss grows: 95 on the G.107 scale, 129 on the G.107.1
 * wideband one.
 */
export function effectiveEquipmentImpairment(
  ie: number,
  bpl: number,
  lossPercent: number,
  burstR = 1,
  scaleMax = 95,
): number {
  const ppl = Math.min(Math.max(lossPercent, 0), 100);
  // Without loss the codec's own impairment is the whole answer (and Bpl = 0 would divide 0 by 0).
  if (ppl === 0) return ie;
  const b = burstR > 0 ? burstR : 1;
  return ie + ((scaleMax - ie) * ppl) / (ppl / b + bpl);
}

/**
 * G.107 delay impairment Id from one-way mouth-to-ear delay Ta in ms (default parameters; Idte/Idle negligible with
 * default echo loss, so only the Idd term: 0 for Ta ≤ 100 ms, else 25{(1+X^6)^(1/6) − 3(1+(X/3)^6)^(1/6) + 2},
 * X = log2(Ta/100)).
 */
export function delayImpairment(oneWayDelayMs: number): number {
  if (oneWayDelayMs <= 100) return 0;
  const x = Math.log2(oneWayDelayMs / 100);
  const x3 = x / 3;
  return 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + x3 ** 6) ** (1 / 6) + 2);
}

export interface RFactorInput {
  codec: string | null;
  /** Loss of the interval being scored, in percent; never the stream's cumulative loss. */
  lossPercent: number;
  burstR?: number;
  oneWayDelayMs?: number;
  /** Overrides the codec lookup (e.g. G711_WITHOUT_PLC for a worst-case score). */
  impairment?: CodecImpairment;
}

/**
 * R = 93.2 − Id − Ie,eff (A = 0), clamped to [0, 100]. Wideband codecs are scored on the G.107.1 scale
 * (R_WB = 129 − 1.29·Id − Ie,eff,WB with 129 as the total-loss impairment) and returned as R_WB / 1.29.
 */
export function rFactor(input: RFactorInput): number {
  const c = input.impairment ?? codecImpairment(input.codec);
  const id = delayImpairment(input.oneWayDelayMs ?? 0);
  let r: number;
  if (c.wideband) {
    // Id is a narrowband-scale figure: scaled onto the WB scale so a delay costs the same after ÷1.29.
    const ieEff = effectiveEquipmentImpairment(c.ie, c.bpl, input.lossPercent, input.burstR, R_WIDEBAND_MAX);
    r = (R_WIDEBAND_MAX - WIDEBAND_SCALE * id - ieEff) / WIDEBAND_SCALE;
  } else {
    r = R_DEFAULT - id - effectiveEquipmentImpairment(c.ie, c.bpl, input.lossPercent, input.burstR);
  }
  return Math.min(Math.max(r, 0), 100);
}

/**
 * G.107 Annex B: MOS = 1 for R<0, 4.5 for R>100, else 1 + 0.035R + 7e-6·R(R−60)(100−R). The polynomial dips
 * below 1 (to 0.992) for 0 < R < 6.5, so the result is also held at ≥ 1.
 */
export function mosFromR(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  const mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
  return Math.max(mos, 1);
}

/** Loss of one reporting interval in percent; duplicates (received > expected) count as no loss. */
export function intervalLossPercent(expected: number, received: number): number {
  if (!(expected > 0) || received >= expected) return 0;
  return (100 * (expected - received)) / expected;
}

/**
 * BurstR from packet-level loss transitions (G.113 / G.107 Markov model): BurstR = 1/(p+q),
 * p = P(loss | previous received), q = P(received | previous lost); 1 when no losses or insufficient data.
 */
export function burstRatio(t: {
  receivedToLost: number;
  receivedToReceived: number;
  lostToReceived: number;
  lostToLost: number;
}): number {
  const fromReceived = t.receivedToLost + t.receivedToReceived;
  const fromLost = t.lostToReceived + t.lostToLost;
  if (fromReceived === 0 || fromLost === 0) return 1;
  const pq = t.receivedToLost / fromReceived + t.lostToReceived / fromLost;
  return pq > 0 ? 1 / pq : 1;
}

/**
 * Histogram of consecutive-loss run lengths: bucket k (1..maxRun−1) counts runs of exactly k lost packets,
 * bucket maxRun counts runs ≥ maxRun. Float64 counters: exact to 2^53, where Uint32 would wrap silently.
 */
export class LossBurstHistogram {
  private readonly buckets: Float64Array;
  private runCount = 0;
  private lost = 0;

  constructor(readonly maxRun = 10) {
    if (!Number.isInteger(maxRun) || maxRun < 1)
      throw new RangeError(`maxRun must be an integer ≥ 1, got ${maxRun}`);
    this.buckets = new Float64Array(maxRun);
  }

  /** One run of `runLength` consecutive lost packets; lengths below 1 are not runs and are ignored. */
  record(runLength: number): void {
    if (!(runLength >= 1)) return;
    // |0 so a fractional length still lands in a bucket (a fractional typed-array index is a no-op).
    this.buckets[(Math.min(runLength, this.maxRun) | 0) - 1]++;
    this.runCount++;
    this.lost += runLength;
  }

  /** Index 0 = runs of 1, last index = runs of maxRun or more. */
  get counts(): number[] {
    return Array.from(this.buckets);
  }

  get runs(): number {
    return this.runCount;
  }

  /** All packets lost in recorded runs, counting the full length of runs in the ≥ maxRun bucket. */
  get lostPackets(): number {
    return this.lost;
  }

  reset(): void {
    this.buckets.fill(0);
    this.runCount = 0;
    this.lost = 0;
  }
}

export const DELAY_THRESHOLDS_MS: readonly number[] = Object.freeze([50, 70, 90, 120, 150, 200, 300]);
const THRESHOLDS = Float64Array.from(DELAY_THRESHOLDS_MS);

/**
 * Delay-variation buckets: share of packets later than 50/70/90/120/150/200/300 ms against their expected
 * arrival. The expected arrival of a packet = arrival of the stream's fastest packet so far + RTP-timestamp
 * distance (i.e. lateness = transit − min transit, transit = arrival_ms − rtpTimestamp_ms).
 *
 * The figures are DELAY_FIELDS doubles at `f[o]` (packets, fastest transit, then the count later than
 * each threshold): a media stream keeps them in its row (stream.ts), DelayVariation in its own array.
 */
const DELAY_PACKETS = 0;
const DELAY_MIN_TRANSIT = 1;
const DELAY_LATE = 2;
export const DELAY_FIELDS = DELAY_LATE + DELAY_THRESHOLDS_MS.length;

/** No packet yet, no baseline. */
export function initDelay(f: Float64Array, o: number): void {
  f.fill(0, o, o + DELAY_FIELDS);
  f[o + DELAY_MIN_TRANSIT] = Number.POSITIVE_INFINITY;
}

/** One packet `latenessMs` behind its expected arrival; "later than" is strict (exactly 50 ms is not). */
export function addLateness(f: Float64Array, o: number, latenessMs: number): void {
  f[o + DELAY_PACKETS]++;
  // Thresholds ascend, so the first one not exceeded ends the scan.
  for (let i = 0; i < THRESHOLDS.length && latenessMs > THRESHOLDS[i]; i++) f[o + DELAY_LATE + i]++;
}

/**
 * One packet by its transit time (arrival ms − RTP timestamp in ms, timestamp unwrapped by the caller):
 * lateness is measured against the fastest transit seen so far. Returns the lateness recorded.
 */
export function addTransit(f: Float64Array, o: number, transitMs: number): number {
  if (transitMs < f[o + DELAY_MIN_TRANSIT]) f[o + DELAY_MIN_TRANSIT] = transitMs;
  const lateness = transitMs - f[o + DELAY_MIN_TRANSIT];
  addLateness(f, o, lateness);
  return lateness;
}

/** '50' → fraction (0..1) of packets later than 50 ms, and so on; all 0 before any packet. */
export function delayShares(f: Float64Array, o: number): Record<string, number> {
  const n = f[o + DELAY_PACKETS];
  const late = o + DELAY_LATE;
  const s = (i: number) => (n === 0 ? 0 : f[late + i] / n);
  // One literal, not keys added one by one: V8 would give numeric-looking keys a large backing store.
  return { '50': s(0), '70': s(1), '90': s(2), '120': s(3), '150': s(4), '200': s(5), '300': s(6) };
}

/** The delay-variation figures of one packet sequence on their own (a stream keeps them in its row). */
export class DelayVariation {
  // Counts are doubles: exact to 2^53, as the row's are.
  private readonly f = new Float64Array(DELAY_FIELDS);

  constructor() {
    initDelay(this.f, 0);
  }

  add(latenessMs: number): void {
    addLateness(this.f, 0, latenessMs);
  }

  addTransit(transitMs: number): number {
    return addTransit(this.f, 0, transitMs);
  }

  /** Packets later than each of DELAY_THRESHOLDS_MS, same order. */
  get counts(): number[] {
    return Array.from(this.f.subarray(DELAY_LATE));
  }

  get packets(): number {
    return this.f[DELAY_PACKETS];
  }

  shares(): Record<string, number> {
    return delayShares(this.f, 0);
  }

  /** Starts a new reporting interval; the fastest-transit baseline is kept. */
  reset(): void {
    this.f.fill(0, DELAY_LATE);
    this.f[DELAY_PACKETS] = 0;
  }
}

import { OUTCOMES, type Outcome } from './calls.js';
import type { CodecName } from './rtp.js';

/** Relative weights of call outcomes; calls are apportioned to them exactly (largest remainder). */
export interface OutcomeMix {
  answered: number;
  /** 486 Busy Here. */
  busy: number;
  /** CANCEL after 180 → 200 (CANCEL), 487, ACK. */
  cancelled: number;
  /** 503 Service Unavailable. */
  unavailable: number;
  /** No response: INVITE resent at 0.5, 1, 2, 4, 8, 16 s intervals (Timer A, T1 = 500 ms), timeout at 32 s. */
  noAnswer: number;
  /** 407, ACK, then INVITE with Proxy-Authorization (CSeq + 1, same Call-ID) → answered. */
  challenged: number;
}

export interface RtpOptions {
  ptimeMs?: number;
  codec?: CodecName;
  /** Arrival time = nominal + uniform noise in [0, jitterMs]. */
  jitterMs?: number;
  /** Probability a packet is not written (never the first or last of a stream). */
  lossRate?: number;
  /** Probability a packet swaps capture order with the next one of its stream. */
  reorderRate?: number;
  enabled?: boolean;
}

export interface GeneratorOptions {
  /** pcap path. */
  output: string;
  seed?: number;
  /** VMs 10.0.0.N with MAC 02:00:00:00:00:NN; calls go directly between two distinct VMs. */
  vms?: number;
  callsPerSecond?: number;
  /** Total call attempts. */
  calls?: number;
  /** Talk time of answered calls (fractional allowed). */
  callDurationSec?: number;
  /** Epoch seconds of the first packet. */
  startTime?: number;
  /** Weights; when given, outcomes left out weigh 0. */
  outcomes?: Partial<OutcomeMix>;
  rtp?: RtpOptions;
  /** 802.1Q VLAN id on every frame, or null for untagged frames. */
  vlan?: number | null;
  /** Nanosecond-resolution pcap instead of microseconds. */
  nanosecond?: boolean;
}

export interface ResolvedOptions {
  output: string;
  seed: number;
  vms: number;
  callsPerSecond: number;
  calls: number;
  callDurationSec: number;
  startTime: number;
  outcomes: OutcomeMix;
  rtp: Required<RtpOptions>;
  vlan: number | null;
  nanosecond: boolean;
}

export const DEFAULT_OUTCOMES: OutcomeMix = {
  answered: 70,
  busy: 6,
  cancelled: 6,
  unavailable: 6,
  noAnswer: 6,
  challenged: 6,
};

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`generateCapture: ${what}`);
}

export function resolveOptions(o: GeneratorOptions): ResolvedOptions {
  const outcomes: OutcomeMix = o.outcomes
    ? {
        answered: o.outcomes.answered ?? 0,
        busy: o.outcomes.busy ?? 0,
        cancelled: o.outcomes.cancelled ?? 0,
        unavailable: o.outcomes.unavailable ?? 0,
        noAnswer: o.outcomes.noAnswer ?? 0,
        challenged: o.outcomes.challenged ?? 0,
      }
    : { ...DEFAULT_OUTCOMES };
  const r: ResolvedOptions = {
    output: o.output,
    seed: o.seed ?? 1,
    vms: o.vms ?? 4,
    callsPerSecond: o.callsPerSecond ?? 5,
    calls: o.calls ?? 50,
    callDurationSec: o.callDurationSec ?? 5,
    startTime: o.startTime ?? 1_700_000_000,
    outcomes,
    rtp: {
      ptimeMs: o.rtp?.ptimeMs ?? 20,
      codec: o.rtp?.codec ?? 'PCMU',
      jitterMs: o.rtp?.jitterMs ?? 0,
      lossRate: o.rtp?.lossRate ?? 0,
      reorderRate: o.rtp?.reorderRate ?? 0,
      enabled: o.rtp?.enabled ?? true,
    },
    vlan: o.vlan ?? null,
    nanosecond: o.nanosecond ?? false,
  };
  check(typeof r.output === 'string' && r.output.length > 0, 'output path required');
  check(Number.isFinite(r.seed), 'seed must be a finite number');
  check(Number.isInteger(r.vms) && r.vms >= 2 && r.vms <= 254, 'vms must be an integer in 2..254');
  check(r.callsPerSecond > 0 && Number.isFinite(r.callsPerSecond), 'callsPerSecond must be > 0');
  check(Number.isInteger(r.calls) && r.calls >= 0, 'calls must be a non-negative integer');
  check(r.callDurationSec >= 0 && Number.isFinite(r.callDurationSec), 'callDurationSec must be >= 0');
  check(Number.isFinite(r.startTime) && r.startTime >= 0 && r.startTime < 2 ** 32, 'startTime out of range');
  for (const k of OUTCOMES)
    check(outcomes[k] >= 0 && Number.isFinite(outcomes[k]), `outcomes.${k} must be >= 0`);
  check(r.calls === 0 || OUTCOMES.some((k) => outcomes[k] > 0), 'outcome weights are all zero');
  const { rtp } = r;
  check(['PCMU', 'PCMA', 'G729'].includes(rtp.codec), `unknown codec ${rtp.codec}`);
  check(rtp.ptimeMs >= 1 && rtp.ptimeMs <= 200, 'rtp.ptimeMs must be in 1..200');
  check(rtp.jitterMs >= 0 && Number.isFinite(rtp.jitterMs), 'rtp.jitterMs must be >= 0');
  check(rtp.lossRate >= 0 && rtp.lossRate <= 1, 'rtp.lossRate must be in 0..1');
  check(rtp.reorderRate >= 0 && rtp.reorderRate <= 1, 'rtp.reorderRate must be in 0..1');
  check(
    r.vlan === null || (Number.isInteger(r.vlan) && r.vlan >= 0 && r.vlan <= 4094),
    'vlan must be 0..4094',
  );
  return r;
}

/** Exact outcome counts for `calls` attempts in proportion to the weights (largest remainder). */
export function apportion(calls: number, mix: OutcomeMix): Outcome[] {
  const total = OUTCOMES.reduce((a, k) => a + mix[k], 0);
  if (calls === 0 || total === 0) return [];
  const shares = OUTCOMES.map((k) => ({ k, exact: (calls * mix[k]) / total }));
  const counts = new Map(shares.map((s) => [s.k, Math.floor(s.exact)]));
  let left = calls - [...counts.values()].reduce((a, b) => a + b, 0);
  const byRemainder = [...shares].sort(
    (a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)),
  );
  for (const s of byRemainder) {
    if (left === 0) break;
    counts.set(s.k, (counts.get(s.k) ?? 0) + 1);
    left--;
  }
  const out: Outcome[] = [];
  for (const k of OUTCOMES) for (let i = 0; i < (counts.get(k) ?? 0); i++) out.push(k);
  return out;
}

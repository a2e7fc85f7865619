import { OUTCOMES, type Outcome, VIA_MIDDLE } from './ladder.js';
import type { CodecName } from './rtp.js';

/**
 * Relative weights of call outcomes; calls are apportioned to them exactly (largest remainder). Outcomes
 * with two variants alternate between them, call by call, so two calls of one show both.
 */
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
  /** The callee says no: 603 Decline after ringing, and 404 Not Found (alternately), each with a Q.850 Reason. */
  rejected: number;
  /** 302 Moved Temporarily with the new Contact and a Diversion header. */
  redirected: number;
  /** A server fails the call: 500 Server Internal Error, and 408 Request Timeout after 32 s (alternately). */
  failed: number;
  /** Answered, and the callee sends the BYE. */
  calleeHangup: number;
  /** Answered; a hold re-INVITE (a=sendonly) accepted, then a re-INVITE refused with 488; the call goes on. */
  reInvite: number;
  /** Caller → PBX (leg A) and PBX → callee (leg B, its own Call-ID, X-CID and Session-ID): two records. */
  b2bua: number;
  /** Caller → stateful record-routing proxy → callee, one Call-ID over two hops. */
  proxied: number;
  /** As proxied, but the proxy's first destination answers 503 and a second one the call. */
  proxiedFailover: number;
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
  /** b2bua calls: mid-call the PBX refreshes the session (RFC 4028) with a re-INVITE on each leg. */
  sessionRefresh?: boolean;
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
  sessionRefresh: boolean;
}

/** Weights of `weighed`, every other outcome 0. */
function mixOf(weighed: Partial<OutcomeMix>): OutcomeMix {
  return Object.fromEntries(OUTCOMES.map((k) => [k, weighed[k] ?? 0])) as unknown as OutcomeMix;
}

/** The original mix: the committed sample and every capture made without a mix keep their bytes with it. */
export const DEFAULT_OUTCOMES: OutcomeMix = mixOf({
  answered: 70,
  busy: 6,
  cancelled: 6,
  unavailable: 6,
  noAnswer: 6,
  challenged: 6,
});

/** Every outcome, once each. */
export const EVERY_OUTCOME: OutcomeMix = mixOf(Object.fromEntries(OUTCOMES.map((k) => [k, 1])));

/**
 * A mix from its command-line spelling: `all`, or outcomes separated by commas, each with an optional
 * weight (`answered=70,busy=6,b2bua`; a bare name weighs 1).
 */
export function parseOutcomeMix(text: string): OutcomeMix {
  if (text.trim() === 'all') return { ...EVERY_OUTCOME };
  const weighed: Partial<OutcomeMix> = {};
  for (const item of text.split(',')) {
    const [name, weight, ...rest] = item.trim().split('=');
    if (!(OUTCOMES as readonly string[]).includes(name))
      throw new RangeError(`unknown outcome "${name}" (known: all, ${OUTCOMES.join(', ')})`);
    const w = weight === undefined ? 1 : Number(weight);
    if (rest.length > 0 || weight === '' || !Number.isFinite(w) || w < 0)
      throw new RangeError(`outcome weight must be a number >= 0: "${item.trim()}"`);
    weighed[name as Outcome] = w;
  }
  return mixOf(weighed);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`generateCapture: ${what}`);
}

export function resolveOptions(o: GeneratorOptions): ResolvedOptions {
  const outcomes: OutcomeMix = o.outcomes ? mixOf(o.outcomes) : { ...DEFAULT_OUTCOMES };
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
    sessionRefresh: o.sessionRefresh ?? false,
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
  // A call through a PBX or proxy needs a third VM; a failover a fourth (its first destination).
  if (VIA_MIDDLE.some((k) => outcomes[k] > 0)) check(r.vms >= 3, 'b2bua and proxied calls need vms >= 3');
  if (outcomes.proxiedFailover > 0) check(r.vms >= 4, 'proxiedFailover calls need vms >= 4');
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

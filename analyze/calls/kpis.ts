/**
 * KPIs over call records, each call counted once (docs/CALLS.md has every formula and what the other
 * tools would count instead). Ratios are over completed attempts: calls still in progress when the
 * records were made have no outcome yet and are left out of them (and counted in `inProgress`).
 */
import { CALL_OUTCOMES, type CallOutcome, type CallRecord } from '../../core/call.js';
import { isEffective, isFailure, isIneffective } from './outcome.js';

/** Calls of one VM or peer, as caller (out) and as callee (in). */
export interface CallsBySide {
  attempts: number;
  answered: number;
  failed: number;
  failedRatio: number | null;
  asr: number | null;
}

export interface CallsByVm {
  vm: string;
  out: CallsBySide;
  in: CallsBySide;
}

export interface CallsByPeer {
  ip: string;
  out: CallsBySide;
  in: CallsBySide;
}

export interface CallKpis {
  /** Answered ÷ completed attempts. */
  asr: number | null;
  /** RFC 6076 SER: answered ÷ (completed − redirected). */
  ser: number | null;
  /** RFC 6076 SEER: (answered + 480, 486, 600, 603) ÷ (completed − redirected). */
  seer: number | null;
  /** callscope's NER: completed attempts not failed by the network ÷ completed attempts. */
  ner: number | null;
  /** RFC 6076 ISA: 408, 500, 503, 504 or no answer at all ÷ completed attempts. */
  isa: number | null;
  /** RFC 6076 SCR: answered and ended by a BYE answered 2xx ÷ completed attempts. */
  scr: number | null;
  /** Mean billable seconds of answered calls. */
  acdSec: number | null;
  /** The NOC's failed calls (failed, noAnswer) ÷ completed attempts. */
  failedRatio: number | null;
  pddMs: { mean: number | null; p50: number | null; p95: number | null; max: number | null };
}

export interface CallsSummary {
  /** Every call started (an initial INVITE), in progress or not, counted once at its edge. */
  attempts: number;
  /** Later legs of B2BUA calls (own Call-IDs, linked to an attempt): records, not attempts. */
  legs: number;
  answered: number;
  /** Failed by the network or a server, or never answered (failed + noAnswer). */
  failed: number;
  outcomes: Record<CallOutcome, number>;
  /** The final status each call's caller got, by code; "none" for no final response. */
  finalStatus: Record<string, number>;
  kpis: CallKpis;
  /** Most answered calls up at once, and most attempts waiting for their final answer at once. */
  peakConcurrent: number;
  peakPending: number;
  /** Most calls started within one second. */
  peakCps: number;
  /** Per VM and per peer address, every leg counts (the load a B2BUA call puts on each side). */
  byVm: CallsByVm[];
  byPeer: CallsByPeer[];
}

/** VMs and peers counted at most (their ids come from packets). */
const MAX_KEYS = 10_000;
/** PDD samples kept for the percentiles; beyond, every other one is dropped (the rest stay uniform). */
const MAX_PDD_SAMPLES = 1_000_000;

function ratio(n: number, d: number): number | null {
  return d > 0 ? Math.round((n / d) * 1e6) / 1e6 : null;
}

function emptySide() {
  return { attempts: 0, answered: 0, failed: 0 };
}

/** Per-second changes: starts, answered calls up, attempts waiting. */
interface Second {
  starts: number;
  up: number;
  waiting: number;
}

export class CallKpiCounter {
  private attempts = 0;
  private legs = 0;
  private answered = 0;
  private readonly outcomes = Object.fromEntries(CALL_OUTCOMES.map((o) => [o, 0])) as Record<
    CallOutcome,
    number
  >;
  private readonly finalStatus: Record<string, number> = {};
  private redirected = 0;
  private effective = 0;
  private ineffective = 0;
  private completedByBye = 0;
  private billsec = 0;
  private pdd: number[] = [];
  private pddStride = 1;
  private pddSeen = 0;
  private readonly seconds = new Map<number, Second>();
  private readonly vms = new Map<
    string,
    { out: ReturnType<typeof emptySide>; in: ReturnType<typeof emptySide> }
  >();
  private readonly peers = new Map<
    string,
    { out: ReturnType<typeof emptySide>; in: ReturnType<typeof emptySide> }
  >();

  add(r: CallRecord): void {
    const answered = r.outcome === 'answered';
    const failed = isFailure(r.outcome);
    // Per VM and per peer, every leg counts (a B2BUA call loads the VMs of both its legs).
    this.side(this.vms, r.caller.vm, 'out', answered, failed);
    this.side(this.vms, r.callee.vm, 'in', answered, failed);
    this.side(this.peers, r.caller.ip, 'out', answered, failed);
    this.side(this.peers, r.callee.ip, 'in', answered, failed);
    // The KPIs count a call once, at its edge: later legs of a B2BUA call are legs, not attempts.
    if (r.edgeCallId !== r.callId) {
      this.legs++;
      return;
    }
    this.attempts++;
    this.outcomes[r.outcome]++;
    const status = r.finalStatus === null ? 'none' : String(r.finalStatus);
    this.finalStatus[status] = (this.finalStatus[status] ?? 0) + 1;
    if (answered) {
      this.answered++;
      this.billsec += r.billsec;
      if (r.byeAnswered) this.completedByBye++;
    }
    if (r.outcome === 'redirected') this.redirected++;
    if (isEffective(r.outcome, r.finalStatus)) this.effective++;
    if (isIneffective(r.outcome, r.finalStatus)) this.ineffective++;
    if (r.pddMs !== null) this.samplePdd(r.pddMs);
    this.second(r.start).starts++;
    const settled = r.answer ?? (r.outcome === 'inProgress' ? null : r.end);
    this.second(r.start).waiting++;
    if (settled !== null) this.second(settled).waiting--;
    if (r.answer !== null) {
      this.second(r.answer).up++;
      this.second(r.end).up--;
    }
  }

  summary(): CallsSummary {
    const completed = this.attempts - this.outcomes.inProgress;
    const failed = this.outcomes.failed + this.outcomes.noAnswer;
    const setupBase = completed - this.redirected;
    const sorted = [...this.pdd].sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted.length === 0
        ? null
        : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    let peakConcurrent = 0;
    let peakPending = 0;
    let peakCps = 0;
    let up = 0;
    let waiting = 0;
    for (const s of [...this.seconds.keys()].sort((a, b) => a - b)) {
      const d = this.seconds.get(s)!;
      up += d.up;
      waiting += d.waiting;
      peakConcurrent = Math.max(peakConcurrent, up);
      peakPending = Math.max(peakPending, waiting);
      peakCps = Math.max(peakCps, d.starts);
    }
    const finish = (m: typeof this.vms) =>
      [...m]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, v]) => ({ key, out: sideOf(v.out), in: sideOf(v.in) }));
    return {
      attempts: this.attempts,
      legs: this.legs,
      answered: this.answered,
      failed,
      outcomes: { ...this.outcomes },
      finalStatus: Object.fromEntries(
        Object.entries(this.finalStatus).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      ),
      kpis: {
        asr: ratio(this.answered, completed),
        ser: ratio(this.answered, setupBase),
        seer: ratio(this.effective, setupBase),
        ner: ratio(completed - failed, completed),
        isa: ratio(this.ineffective, completed),
        scr: ratio(this.completedByBye, completed),
        acdSec: this.answered > 0 ? Math.round((this.billsec / this.answered) * 1000) / 1000 : null,
        failedRatio: ratio(failed, completed),
        pddMs: {
          mean:
            sorted.length === 0
              ? null
              : Math.round((sorted.reduce((a, b) => a + b, 0) / sorted.length) * 1000) / 1000,
          p50: pct(50),
          p95: pct(95),
          max: sorted.length === 0 ? null : sorted[sorted.length - 1]!,
        },
      },
      peakConcurrent,
      peakPending,
      peakCps,
      byVm: finish(this.vms).map(({ key, ...rest }) => ({ vm: key, ...rest })),
      byPeer: finish(this.peers).map(({ key, ...rest }) => ({ ip: key, ...rest })),
    };
  }

  private second(ms: number): Second {
    const key = Math.floor(ms / 1000);
    let s = this.seconds.get(key);
    if (s === undefined) {
      s = { starts: 0, up: 0, waiting: 0 };
      this.seconds.set(key, s);
    }
    return s;
  }

  private samplePdd(ms: number): void {
    if (this.pddSeen++ % this.pddStride !== 0) return;
    this.pdd.push(ms);
    if (this.pdd.length >= MAX_PDD_SAMPLES) {
      this.pdd = this.pdd.filter((_, i) => i % 2 === 0);
      this.pddStride *= 2;
    }
  }

  private side(
    map: Map<string, { out: ReturnType<typeof emptySide>; in: ReturnType<typeof emptySide> }>,
    key: string | null,
    dir: 'out' | 'in',
    answered: boolean,
    failed: boolean,
  ): void {
    if (key === null || key === '') return;
    let entry = map.get(key);
    if (entry === undefined) {
      if (map.size >= MAX_KEYS) return;
      entry = { out: emptySide(), in: emptySide() };
      map.set(key, entry);
    }
    const s = entry[dir];
    s.attempts++;
    if (answered) s.answered++;
    if (failed) s.failed++;
  }
}

function sideOf(s: { attempts: number; answered: number; failed: number }): CallsBySide {
  return { ...s, failedRatio: ratio(s.failed, s.attempts), asr: ratio(s.answered, s.attempts) };
}

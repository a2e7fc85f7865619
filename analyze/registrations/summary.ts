/**
 * The registrations summary: every attempt counted once (never per message or per hop), per user and
 * per VM, RRD statistics, the attempts over time (a wave of re-REGISTERs after a failover shows as a
 * peak), and the bindings live now. docs/REGISTRATIONS.md has every field.
 */
import { DelaySampler, type DelayStats } from '../tracking.js';
import {
  isRegistrationSuccess,
  REGISTRATION_OUTCOMES,
  type RegistrationOutcome,
  type RegistrationRecord,
} from './record.js';

/** Attempts and their results for one user, one VM side, or everything. */
export interface RegistrationStats {
  /** Attempts closed (records): in progress ones included. */
  attempts: number;
  /** Registered, unregistered or queried (a 2xx). */
  successes: number;
  /** Failed, challenged (never answered) or noResponse. */
  failures: number;
  /** Failures by the final status the UA got ("none": no response within Timer F). */
  failuresByStatus: Record<string, number>;
  /** RFC 6076 RRD of the successes: first REGISTER → 2xx, ms. */
  rrdMs: DelayStats;
}

export interface RegistrationsByUser extends RegistrationStats {
  /** User part and domain of the To URI (the address of record). */
  user: string | null;
  domain: string | null;
}

export interface RegistrationsByVm {
  vm: string;
  /** Attempts made by UAs on this VM (the REGISTER's sending side). */
  asUa: RegistrationStats;
  /** Attempts this VM answered as registrar (or first proxy: the REGISTER's receiving side). */
  asRegistrar: RegistrationStats;
}

/** A binding live at the summary's time: a contact of an AoR until its granted expiry runs out. */
export interface RegistrationBinding {
  user: string | null;
  domain: string | null;
  /** The contact URI as the REGISTER (or, for the AoR's other devices, the 2xx) wrote it. */
  contact: string;
  /** Capture time (ms) of the 2xx that last refreshed it, and when it runs out (+ granted expires). */
  registeredAt: number;
  expiresAt: number;
  uaIp: string;
  uaPort: number;
  srcVm: string | null;
  registrarIp: string;
  registrarPort: number;
  dstVm: string | null;
}

/** Registration attempts that started in one interval, and how those that closed ended. */
export interface RegistrationSeriesBucket {
  /** Start of the interval, ms since the Unix epoch (capture time). */
  start: number;
  /** Attempts whose first REGISTER is in the interval (counted when seen, open ones included). */
  attempts: number;
  successes: number;
  failures: number;
}

export interface RegistrationsSummary {
  /** Attempts closed into records (in progress at the end included; open ones are in `counters.open`). */
  attempts: number;
  /** REGISTER transactions of those attempts (a challenge answered makes two in one attempt). */
  transactions: number;
  outcomes: Record<RegistrationOutcome, number>;
  successes: number;
  failures: number;
  failuresByStatus: Record<string, number>;
  /** The final status each attempt ended with, by code; "none" without one. */
  finalStatus: Record<string, number>;
  /** 401/407 challenges answered by the UA, and 423s answered with a longer expiry. */
  authChallenges: number;
  intervalRetries: number;
  /** REGISTERs and final responses retransmitted at the edge. */
  retransmissions: number;
  /**
   * RFC 6076 IRA (Ineffective Registration Attempts) as a ratio: failures ÷ attempts with an outcome
   * (in progress ones left out); null without any.
   */
  ira: number | null;
  /** RFC 6076 RRD over the successful attempts (first REGISTER → its 2xx, challenges included), ms. */
  rrdMs: DelayStats;
  /** First REGISTER → final response of every attempt that got one, whatever the status, ms. */
  responseMs: DelayStats;
  /** Most attempts started within one second of capture time, and the start of that second (ms). */
  peakPerSecond: number;
  peakAt: number | null;
  /** Attempts per interval, non-empty intervals only, by start time. */
  series: { bucketSec: number; buckets: RegistrationSeriesBucket[] };
  /** Bindings live at `asOf` (the tracker's clock: the latest capture time, or the end given to close). */
  bindings: {
    asOf: number | null;
    live: number;
    /** Addresses of record with at least one live binding. */
    aors: number;
    /** The live bindings, by user, domain, contact (at most 10,000; the rest counted in `omitted`). */
    listed: RegistrationBinding[];
    omitted: number;
  };
  /** Per user (at most 10,000 users; attempts of others are counted in `counters.usersOmitted`). */
  byUser: RegistrationsByUser[];
  /** Per VM, as UA and as registrar (at most 10,000 VMs). */
  byVm: RegistrationsByVm[];
  counters: {
    open: number;
    evicted: number;
    recordsDropped: number;
    orphanMessages: number;
    copies: number;
    conflicts: number;
    badExpires: number;
    unparsed: number;
    bindingsEvicted: number;
    /** Attempts of users, VMs beyond the 10,000 counted. */
    usersOmitted: number;
    vmsOmitted: number;
  };
}

/** Users and VMs counted at most (their names come from packets). */
const MAX_KEYS = 10_000;
/** RRD samples kept per user or VM side (percentiles; mean and max stay exact). */
const KEY_SAMPLES = 256;
/** Bindings listed in a summary. */
const MAX_LISTED_BINDINGS = 10_000;

class Side {
  attempts = 0;
  successes = 0;
  failures = 0;
  readonly failuresByStatus: Record<string, number> = {};
  readonly rrd: DelaySampler;

  constructor(samples: number) {
    this.rrd = new DelaySampler(samples);
  }

  add(r: RegistrationRecord, failure: boolean): void {
    this.attempts++;
    if (isRegistrationSuccess(r.outcome)) {
      this.successes++;
      if (r.rrdMs !== null) this.rrd.add(r.rrdMs);
    } else if (failure) {
      this.failures++;
      const key = r.finalStatus === null ? 'none' : String(r.finalStatus);
      this.failuresByStatus[key] = (this.failuresByStatus[key] ?? 0) + 1;
    }
  }

  stats(): RegistrationStats {
    return {
      attempts: this.attempts,
      successes: this.successes,
      failures: this.failures,
      failuresByStatus: sortedCounts(this.failuresByStatus),
      rrdMs: this.rrd.stats(),
    };
  }
}

function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function compare(a: string | null, b: string | null): number {
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Seconds kept for the per-second peak behind the latest one (events arrive nearly in time order). */
const PEAK_WINDOW_SEC = 120;

/** Counts records into the summary; the tracker feeds it (and tells it when attempts start). */
export class RegistrationCounter {
  private readonly all = new Side(1_000_000);
  private readonly response = new DelaySampler(1_000_000);
  private transactions = 0;
  private authChallenges = 0;
  private intervalRetries = 0;
  private retransmissions = 0;
  private readonly outcomes = Object.fromEntries(REGISTRATION_OUTCOMES.map((o) => [o, 0])) as Record<
    RegistrationOutcome,
    number
  >;
  private readonly finalStatus: Record<string, number> = {};
  /** Users by domain, then user part (no key built per record). */
  private readonly users = new Map<
    string,
    Map<string, { user: string | null; domain: string | null; side: Side }>
  >();
  private userCount = 0;
  private readonly vms = new Map<string, { asUa: Side; asRegistrar: Side }>();
  private usersOmitted = 0;
  private vmsOmitted = 0;
  private bucketMs: number;
  private buckets = new Map<number, { attempts: number; successes: number; failures: number }>();
  private readonly seconds = new Map<number, number>();
  private latestSecond = -Infinity;
  private peak = 0;
  private peakSecond: number | null = null;

  constructor(
    bucketSec: number,
    private readonly maxBuckets: number,
  ) {
    this.bucketMs = Math.max(1, Math.round(bucketSec * 1000));
  }

  /** An attempt's first REGISTER, at capture time `t` (ms). */
  started(t: number): void {
    this.bucket(t).attempts++;
    const second = Math.floor(t / 1000);
    const n = (this.seconds.get(second) ?? 0) + 1;
    this.seconds.set(second, n);
    if (n > this.peak || (n === this.peak && this.peakSecond !== null && second < this.peakSecond)) {
      this.peak = n;
      this.peakSecond = second;
    }
    if (second > this.latestSecond) this.latestSecond = second;
    if (this.seconds.size > 2 * PEAK_WINDOW_SEC)
      for (const s of this.seconds.keys())
        if (s < this.latestSecond - PEAK_WINDOW_SEC) this.seconds.delete(s);
  }

  add(r: RegistrationRecord, failure: boolean): void {
    this.all.add(r, failure);
    this.outcomes[r.outcome]++;
    const status = r.finalStatus === null ? 'none' : String(r.finalStatus);
    this.finalStatus[status] = (this.finalStatus[status] ?? 0) + 1;
    this.transactions += r.transactions;
    this.authChallenges += r.authChallenges;
    this.intervalRetries += r.intervalRetries;
    this.retransmissions += r.retransmissions;
    if (r.responseMs !== null) this.response.add(r.responseMs);
    const b = this.bucket(r.time);
    if (isRegistrationSuccess(r.outcome)) b.successes++;
    else if (failure) b.failures++;
    let domain = this.users.get(r.domain ?? '');
    if (domain === undefined && this.userCount < MAX_KEYS) {
      domain = new Map();
      this.users.set(r.domain ?? '', domain);
    }
    let user = domain?.get(r.user ?? '');
    if (user === undefined && domain !== undefined && this.userCount < MAX_KEYS) {
      user = { user: r.user, domain: r.domain, side: new Side(KEY_SAMPLES) };
      domain.set(r.user ?? '', user);
      this.userCount++;
    }
    if (user === undefined) this.usersOmitted++;
    else user.side.add(r, failure);
    for (const [vm, role] of [
      [r.srcVm, 'asUa'],
      [r.dstVm, 'asRegistrar'],
    ] as const) {
      if (vm === null || vm === '') continue;
      let entry = this.vms.get(vm);
      if (entry === undefined && this.vms.size < MAX_KEYS) {
        entry = { asUa: new Side(KEY_SAMPLES), asRegistrar: new Side(KEY_SAMPLES) };
        this.vms.set(vm, entry);
      }
      if (entry === undefined) this.vmsOmitted++;
      else entry[role].add(r, failure);
    }
  }

  summary(
    counters: Omit<RegistrationsSummary['counters'], 'usersOmitted' | 'vmsOmitted'>,
    live: RegistrationBinding[],
    asOf: number | null,
  ): RegistrationsSummary {
    const all = this.all.stats();
    const completed = all.attempts - this.outcomes.inProgress;
    live.sort(
      (a, b) => compare(a.user, b.user) || compare(a.domain, b.domain) || compare(a.contact, b.contact),
    );
    const aors = new Set(live.map((b) => `${b.user ?? ''}@${b.domain ?? ''}`)).size;
    return {
      attempts: all.attempts,
      transactions: this.transactions,
      outcomes: { ...this.outcomes },
      successes: all.successes,
      failures: all.failures,
      failuresByStatus: all.failuresByStatus,
      finalStatus: sortedCounts(this.finalStatus),
      authChallenges: this.authChallenges,
      intervalRetries: this.intervalRetries,
      retransmissions: this.retransmissions,
      ira: completed > 0 ? Math.round((all.failures / completed) * 1e6) / 1e6 : null,
      rrdMs: all.rrdMs,
      responseMs: this.response.stats(),
      peakPerSecond: this.peak,
      peakAt: this.peakSecond === null ? null : this.peakSecond * 1000,
      series: {
        bucketSec: this.bucketMs / 1000,
        buckets: [...this.buckets]
          .sort(([a], [b]) => a - b)
          .map(([index, b]) => ({ start: index * this.bucketMs, ...b })),
      },
      bindings: {
        asOf,
        live: live.length,
        aors,
        listed: live.slice(0, MAX_LISTED_BINDINGS),
        omitted: Math.max(0, live.length - MAX_LISTED_BINDINGS),
      },
      byUser: [...this.users.values()]
        .flatMap((d) => [...d.values()])
        .sort((a, b) => compare(a.user, b.user) || compare(a.domain, b.domain))
        .map((u) => ({ user: u.user, domain: u.domain, ...u.side.stats() })),
      byVm: [...this.vms]
        .sort(([a], [b]) => compare(a, b))
        .map(([vm, v]) => ({ vm, asUa: v.asUa.stats(), asRegistrar: v.asRegistrar.stats() })),
      counters: { ...counters, usersOmitted: this.usersOmitted, vmsOmitted: this.vmsOmitted },
    };
  }

  private bucket(t: number): { attempts: number; successes: number; failures: number } {
    const index = Math.floor(t / this.bucketMs);
    let b = this.buckets.get(index);
    if (b === undefined) {
      b = { attempts: 0, successes: 0, failures: 0 };
      this.buckets.set(index, b);
      if (this.buckets.size > this.maxBuckets) {
        this.widen();
        return this.bucket(t);
      }
    }
    return b;
  }

  /** Doubles the buckets' width (merging pairs), so that their count stays within the bound. */
  private widen(): void {
    while (this.buckets.size > this.maxBuckets) {
      const merged = new Map<number, { attempts: number; successes: number; failures: number }>();
      for (const [index, b] of this.buckets) {
        const key = Math.floor(index / 2);
        const m = merged.get(key);
        if (m === undefined) merged.set(key, { ...b });
        else {
          m.attempts += b.attempts;
          m.successes += b.successes;
          m.failures += b.failures;
        }
      }
      this.buckets = merged;
      this.bucketMs *= 2;
    }
  }
}

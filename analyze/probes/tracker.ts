/**
 * Peer health from OPTIONS keep-alives (Kamailio dispatcher's `ds_ping_interval`, SBC and PBX
 * qualify pings): per pair prober → probed, the probes sent, how they were answered, which failed,
 * and the peer's state up/down with every change, at capture times (docs/REGISTRATIONS.md).
 *
 * Built like the registration tracker (analyze/registrations/tracker.ts):
 * - an OptionsProbeTracker the caller owns: `add(event)`, `close(endMs)`, `summary()`;
 * - capture time is the clock; deadlines (Timer F) are swept before an event is taken;
 * - a probe is an OPTIONS transaction (Call-ID + CSeq), counted once at the edge where it enters the
 *   capture; the same OPTIONS on another hop or from another capture node is a copy, and a repeat at
 *   the edge from the same node (the retransmission flag, or the same bottom Via branch) a
 *   retransmission, not another probe;
 * - a probe fails when no final response comes within Timer F, or when it is answered 5xx or 408;
 *   any other final response (even 404 or 405) is an answer from a live peer;
 * - bounded: pairs (the least recently active evicted), probes in flight (the oldest evicted), state
 *   changes listed per pair; each bound counts what it gave up.
 */

import { BoundedMap } from '../../capture/sip/bounded-map.js';
import type { CaptureEvent } from '../../core/event.js';
import { HEP_PROTO_SIP } from '../../core/event.js';
import type { SipMessage } from '../../core/sip-message.js';
import { owned } from '../registrations/sip.js';
import { addressOf, DeadlineHeap, DelaySampler, type DelayStats, eventTimeMs, roundUs } from '../tracking.js';

/** Timer F (64·T1, T1 = 500 ms): an OPTIONS without a final response by then has failed. */
export const TIMER_F_MS = 32_000;
const KEY_CHARS = 256;

export type ProbeState = 'unknown' | 'up' | 'down';

/** A change of a peer's state, at capture time. */
export interface ProbeTransition {
  /** When it changed (ms): the answer's capture time, or the probe's start + Timer F for a timeout. */
  at: number;
  from: ProbeState;
  to: ProbeState;
  /** What decided it: the status that answered the probe ("200", "503"...), or "timeout". */
  cause: string;
}

/** Probes from one prober (address:port) to one probed peer (address:port). */
export interface ProbePair {
  prober: string;
  probed: string;
  proberIp: string;
  proberPort: number;
  probedIp: string;
  probedPort: number;
  /** VM ids of the two sides (OVS attribution), null when unknown. */
  proberVm: string | null;
  probedVm: string | null;
  transport: string;
  /** User-Agent of the prober's OPTIONS; Server (else User-Agent) of the peer's last answer. */
  userAgent: string | null;
  server: string | null;
  /** OPTIONS transactions sent (retransmissions not counted). */
  sent: number;
  /** Probes that got a final response, whatever the status. */
  answered: number;
  /** Failed probes: no final response within Timer F (`timeouts`), or answered 5xx or 408. */
  failing: number;
  timeouts: number;
  /** Probes still waiting for their answer (within Timer F) at the summary's time. */
  pending: number;
  /**
   * Retransmitted OPTIONS and final responses at the edge, also after the probe was settled (a prober
   * may keep retransmitting past Timer F; an answer is sent again for a retransmitted OPTIONS).
   */
  retransmissions: number;
  /** Final responses that came after their probe had timed out (the probe stays failed). */
  lateAnswers: number;
  /**
   * Probes forgotten in flight to stay within maxPending: neither answered nor failed. So
   * sent = answered + timeouts + pending + forgotten.
   */
  forgotten: number;
  /** Final statuses of the answered probes, by code. */
  statusCounts: Record<string, number>;
  /** Capture times (ms) of the first and the last probe sent, of the last answer, and its status. */
  firstSent: number;
  lastSent: number;
  lastAnswerAt: number | null;
  lastStatus: number | null;
  /** Probe → final response, ms. */
  responseMs: DelayStats;
  state: ProbeState;
  /** When the current state began (ms), null while unknown. */
  since: number | null;
  /** Failed probes in a row now, and the longest such run. */
  consecutiveFailures: number;
  maxConsecutiveFailures: number;
  /** State changes in time order (the latest 100; earlier ones counted in `transitionsOmitted`). */
  transitions: ProbeTransition[];
  transitionsOmitted: number;
}

export interface ProbesSummary {
  /** The tracker's clock: the latest capture time, or the end given to close (ms); null before any. */
  asOf: number | null;
  /** Every pair, by prober then probed. */
  pairs: ProbePair[];
  /** Sums over the pairs. */
  sent: number;
  answered: number;
  failing: number;
  timeouts: number;
  pending: number;
  /** Pairs up, down, unknown (no probe decided yet). */
  up: number;
  down: number;
  unknown: number;
  counters: {
    /** Pairs forgotten (least recently probed) to stay within maxPairs. */
    pairsEvicted: number;
    /** Probes forgotten in flight (the oldest) to stay within maxPending; not counted as failing. */
    pendingEvicted: number;
    /**
     * OPTIONS messages of no probe in flight: a response to a probe sent before the capture, already
     * answered (a repeated answer) or timed out (a late answer), or forgotten; a retransmission whose
     * first copy was not seen.
     */
    orphanMessages: number;
    /** Copies of a message already counted: another hop, another capture node, a response off the edge. */
    copies: number;
    /** SIP events without a parsed message (HEP from elsewhere). */
    unparsed: number;
  };
}

export interface OptionsProbeTrackerOptions {
  /** Timer F, ms (default 32,000). */
  timerFMs?: number;
  /** Failed probes in a row that mark a peer down (default 1, Kamailio's ds_probing_threshold). */
  downAfter?: number;
  /** Answered probes in a row that mark it up again (default 1, Kamailio's ds_inactive_threshold). */
  upAfter?: number;
  /** Pairs kept at most (default 10,000). */
  maxPairs?: number;
  /** Probes in flight kept at most (default 100,000). */
  maxPending?: number;
}

/** State changes listed per pair. */
const MAX_TRANSITIONS = 100;

interface Pair {
  key: string;
  evicted: boolean;
  proberIp: string;
  proberPort: number;
  probedIp: string;
  probedPort: number;
  proberVm: string | null;
  probedVm: string | null;
  transport: string;
  userAgent: string | null;
  server: string | null;
  sent: number;
  answered: number;
  failing: number;
  timeouts: number;
  pending: number;
  retransmissions: number;
  lateAnswers: number;
  forgotten: number;
  statusCounts: Record<string, number>;
  firstSent: number;
  lastSent: number;
  lastAnswerAt: number | null;
  lastStatus: number | null;
  response: DelaySampler;
  state: ProbeState;
  since: number | null;
  consecutiveFailures: number;
  maxConsecutiveFailures: number;
  successesInRow: number;
  transitions: ProbeTransition[];
  transitionsOmitted: number;
}

interface Probe {
  key: string;
  pair: Pair;
  start: number;
  branch: string;
  node: string;
  /** 'open' until answered, timed out or forgotten (then 'gone': remembered a while as settled). */
  phase: 'open' | 'gone';
  /** How it was settled; 'late' once a late answer came. */
  settledAs: 'answered' | 'timedOut' | 'late' | 'forgotten' | null;
  stamp: number;
}

function keyOf(callId: string): string {
  return callId.length > KEY_CHARS ? callId.slice(0, KEY_CHARS) : callId;
}

function isFailureStatus(status: number): boolean {
  return status === 408 || (status >= 500 && status < 600);
}

export class OptionsProbeTracker {
  private readonly pairs = new Map<string, Pair>();
  private readonly probes = new Map<string, Probe>();
  /** Probes answered or timed out lately, to tell their retransmissions and late answers (bounded). */
  private readonly settled: BoundedMap<Probe>;
  /** Probes in creation order, gone ones skipped lazily (the oldest in O(1)). */
  private order: Probe[] = [];
  private orderHead = 0;
  private inFlight = 0;
  private readonly due = new DeadlineHeap<Probe>();
  private readonly timerFMs: number;
  private readonly downAfter: number;
  private readonly upAfter: number;
  private readonly maxPairs: number;
  private readonly maxPending: number;
  private readonly counters = {
    pairsEvicted: 0,
    pendingEvicted: 0,
    orphanMessages: 0,
    copies: 0,
    unparsed: 0,
  };
  private now = -Infinity;
  private closed = false;
  /** The end given to close, if any: what the summary is as of. */
  private endMs: number | null = null;

  constructor(options: OptionsProbeTrackerOptions = {}) {
    this.timerFMs = options.timerFMs ?? TIMER_F_MS;
    this.downAfter = Math.max(1, options.downAfter ?? 1);
    this.upAfter = Math.max(1, options.upAfter ?? 1);
    this.maxPairs = Math.max(1, options.maxPairs ?? 10_000);
    this.maxPending = Math.max(1, options.maxPending ?? 100_000);
    this.settled = new BoundedMap(this.maxPending);
  }

  /** Takes one capture event (only OPTIONS transactions are followed). */
  add(event: CaptureEvent): void {
    if (this.closed) return;
    const sip = event.sip;
    if (sip === undefined) {
      if (event.protoType === HEP_PROTO_SIP) this.counters.unparsed++;
      return;
    }
    const t = eventTimeMs(event.timestampNs);
    if (t > this.now) {
      this.now = t;
      this.sweep();
    }
    const cseq = sip.cseq;
    if (cseq === null || cseq.method !== 'OPTIONS' || sip.callId === null) return;
    const key = `${keyOf(sip.callId)}\n${cseq.seq}`;
    if (sip.isRequest) {
      if (sip.method === 'OPTIONS') this.request(event, sip, key, t);
    } else this.response(event, sip, key, t);
  }

  /** The input ended at `endMs` (default the latest SIP event): probes past Timer F by then fail. */
  close(endMs?: number): void {
    if (this.closed) return;
    if (endMs !== undefined && endMs > this.now) {
      this.now = endMs;
      this.sweep();
    }
    // The summary is as of the end given (the input's, in whole ms as a run keeps it), even when the
    // last event came a fraction of a ms after it: a store's summary then says the same.
    if (endMs !== undefined) this.endMs = endMs;
    this.closed = true;
  }

  summary(): ProbesSummary {
    const pairs = [...this.pairs.values()]
      .map((p) => this.pairOf(p))
      .sort((a, b) => compare(a.prober, b.prober) || compare(a.probed, b.probed));
    const sum = (f: (p: ProbePair) => number) => pairs.reduce((n, p) => n + f(p), 0);
    return {
      asOf: this.endMs ?? (Number.isFinite(this.now) ? this.now : null),
      pairs,
      sent: sum((p) => p.sent),
      answered: sum((p) => p.answered),
      failing: sum((p) => p.failing),
      timeouts: sum((p) => p.timeouts),
      pending: sum((p) => p.pending),
      up: pairs.filter((p) => p.state === 'up').length,
      down: pairs.filter((p) => p.state === 'down').length,
      unknown: pairs.filter((p) => p.state === 'unknown').length,
      counters: { ...this.counters },
    };
  }

  // ------------------------------------------------------------------------------------------------

  private request(event: CaptureEvent, sip: SipMessage, key: string, t: number): void {
    const bottom = sip.via.at(-1)?.branch ?? '';
    const known = this.probes.get(key) ?? this.settled.get(key);
    if (known !== undefined) {
      const p = known.pair;
      const atEdge =
        event.srcIp === p.proberIp &&
        event.srcPort === p.proberPort &&
        event.dstIp === p.probedIp &&
        event.dstPort === p.probedPort;
      if (atEdge && event.nodeName === known.node && (event.retransmission || bottom === known.branch))
        p.retransmissions++;
      else this.counters.copies++;
      return;
    }
    if (event.retransmission) {
      // Its first copy was before the capture (or forgotten): not a probe we saw start.
      this.counters.orphanMessages++;
      return;
    }
    const pair = this.pairFor(event, sip, t);
    if (this.inFlight >= this.maxPending) this.evictOldest();
    const ownedKey = owned(key) ?? '';
    const probe: Probe = {
      key: ownedKey,
      pair,
      start: t,
      branch: owned(bottom) ?? '',
      node: event.nodeName,
      phase: 'open',
      settledAs: null,
      stamp: 0,
    };
    this.probes.set(ownedKey, probe);
    this.order.push(probe);
    this.inFlight++;
    pair.sent++;
    pair.pending++;
    pair.lastSent = t;
    this.schedule(probe, t + this.timerFMs);
  }

  private response(event: CaptureEvent, sip: SipMessage, key: string, t: number): void {
    const status = sip.statusCode ?? 0;
    if (status < 200) return;
    const probe = this.probes.get(key) ?? this.settled.get(key);
    if (probe === undefined) {
      this.counters.orphanMessages++;
      return;
    }
    const pair = probe.pair;
    if (event.srcIp !== pair.probedIp || event.dstIp !== pair.proberIp || event.dstPort !== pair.proberPort) {
      this.counters.copies++;
      return;
    }
    if (probe.phase === 'gone') {
      if (event.nodeName !== probe.node) this.counters.copies++;
      else if (probe.settledAs === 'forgotten') this.counters.orphanMessages++;
      else if (probe.settledAs === 'timedOut') {
        probe.settledAs = 'late'; // one late answer per probe; its repeats are retransmissions
        pair.lateAnswers++;
      } else pair.retransmissions++;
      return;
    }
    // The first final response: the probe is answered.
    this.settle(probe, 'answered');
    pair.answered++;
    pair.statusCounts[status] = (pair.statusCounts[status] ?? 0) + 1;
    pair.lastAnswerAt = Math.floor(t);
    pair.lastStatus = status;
    pair.server = owned(sip.server ?? sip.userAgent) ?? pair.server;
    pair.response.add(roundUs(t - probe.start));
    if (isFailureStatus(status)) this.failed(pair, t, String(status));
    else this.succeeded(pair, t, String(status));
  }

  /** A probe stops being in flight (answered, timed out, or evicted). */
  private settle(probe: Probe, how: 'answered' | 'timedOut' | 'forgotten'): void {
    probe.phase = 'gone';
    probe.settledAs = how;
    if (this.probes.get(probe.key) === probe) this.probes.delete(probe.key);
    this.settled.set(probe.key, probe);
    this.inFlight--;
    if (!probe.pair.evicted) probe.pair.pending--;
  }

  private failed(pair: Pair, at: number, cause: string): void {
    if (pair.evicted) return;
    pair.failing++;
    pair.successesInRow = 0;
    pair.consecutiveFailures++;
    if (pair.consecutiveFailures > pair.maxConsecutiveFailures)
      pair.maxConsecutiveFailures = pair.consecutiveFailures;
    if (pair.state !== 'down' && pair.consecutiveFailures >= this.downAfter)
      this.transition(pair, at, 'down', cause);
  }

  private succeeded(pair: Pair, at: number, cause: string): void {
    if (pair.evicted) return;
    pair.consecutiveFailures = 0;
    pair.successesInRow++;
    if (pair.state !== 'up' && pair.successesInRow >= this.upAfter) this.transition(pair, at, 'up', cause);
  }

  private transition(pair: Pair, at: number, to: ProbeState, cause: string): void {
    const change = { at: Math.floor(at), from: pair.state, to, cause };
    pair.state = to;
    pair.since = change.at;
    pair.transitions.push(change);
    if (pair.transitions.length > MAX_TRANSITIONS) {
      pair.transitions.shift();
      pair.transitionsOmitted++;
    }
  }

  private pairFor(event: CaptureEvent, sip: SipMessage, t: number): Pair {
    const key = `${addressOf(event.srcIp, event.srcPort)}>${addressOf(event.dstIp, event.dstPort)}`;
    let pair = this.pairs.get(key);
    if (pair !== undefined) {
      // Most recently probed last: the first in the map is the one to forget.
      this.pairs.delete(key);
      this.pairs.set(key, pair);
      return pair;
    }
    if (this.pairs.size >= this.maxPairs) {
      const oldest = this.pairs.values().next().value!;
      oldest.evicted = true;
      this.pairs.delete(oldest.key);
      this.counters.pairsEvicted++;
    }
    pair = {
      key,
      evicted: false,
      proberIp: event.srcIp,
      proberPort: event.srcPort,
      probedIp: event.dstIp,
      probedPort: event.dstPort,
      proberVm: event.srcVm ?? null,
      probedVm: event.dstVm ?? null,
      transport: event.transport,
      userAgent: owned(sip.userAgent),
      server: null,
      sent: 0,
      answered: 0,
      failing: 0,
      timeouts: 0,
      pending: 0,
      retransmissions: 0,
      lateAnswers: 0,
      forgotten: 0,
      statusCounts: {},
      firstSent: Math.floor(t),
      lastSent: t,
      lastAnswerAt: null,
      lastStatus: null,
      response: new DelaySampler(1024),
      state: 'unknown',
      since: null,
      consecutiveFailures: 0,
      maxConsecutiveFailures: 0,
      successesInRow: 0,
      transitions: [],
      transitionsOmitted: 0,
    };
    this.pairs.set(key, pair);
    return pair;
  }

  private schedule(probe: Probe, at: number): void {
    probe.stamp++;
    this.due.push({ at, owner: probe, stamp: probe.stamp });
  }

  private sweep(): void {
    for (let d = this.due.popDue(this.now); d !== undefined; d = this.due.popDue(this.now)) {
      const probe = d.owner;
      if (probe.phase === 'gone' || probe.stamp !== d.stamp) continue;
      this.settle(probe, 'timedOut');
      const pair = probe.pair;
      if (!pair.evicted) pair.timeouts++;
      this.failed(pair, d.at, 'timeout');
    }
    this.due.compact((d) => d.owner.phase !== 'gone' && d.owner.stamp === d.stamp, this.inFlight);
    this.tidyOrder();
  }

  private tidyOrder(): void {
    const open = (p: Probe) => p.phase === 'open';
    while (this.orderHead < this.order.length && !open(this.order[this.orderHead]!)) this.orderHead++;
    if (this.order.length - this.orderHead > 2 * this.inFlight + 1024) {
      this.order = this.order.filter((p, i) => i >= this.orderHead && open(p));
      this.orderHead = 0;
    } else if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
  }

  private evictOldest(): void {
    this.tidyOrder();
    const oldest = this.order[this.orderHead];
    if (oldest === undefined) return;
    this.counters.pendingEvicted++;
    this.settle(oldest, 'forgotten');
    if (!oldest.pair.evicted) oldest.pair.forgotten++;
    this.orderHead++;
  }

  private pairOf(p: Pair): ProbePair {
    return {
      prober: addressOf(p.proberIp, p.proberPort),
      probed: addressOf(p.probedIp, p.probedPort),
      proberIp: p.proberIp,
      proberPort: p.proberPort,
      probedIp: p.probedIp,
      probedPort: p.probedPort,
      proberVm: p.proberVm,
      probedVm: p.probedVm,
      transport: p.transport,
      userAgent: p.userAgent,
      server: p.server,
      sent: p.sent,
      answered: p.answered,
      failing: p.failing,
      timeouts: p.timeouts,
      pending: p.pending,
      retransmissions: p.retransmissions,
      lateAnswers: p.lateAnswers,
      forgotten: p.forgotten,
      statusCounts: Object.fromEntries(Object.entries(p.statusCounts).sort(([a], [b]) => compare(a, b))),
      firstSent: p.firstSent,
      lastSent: Math.floor(p.lastSent),
      lastAnswerAt: p.lastAnswerAt,
      lastStatus: p.lastStatus,
      responseMs: p.response.stats(),
      state: p.state,
      since: p.since,
      consecutiveFailures: p.consecutiveFailures,
      maxConsecutiveFailures: p.maxConsecutiveFailures,
      transitions: [...p.transitions],
      transitionsOmitted: p.transitionsOmitted,
    };
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

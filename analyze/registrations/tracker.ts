/**
 * Registrations: REGISTER transactions followed from the SIP messages as they come (capture order),
 * one RegistrationRecord per REGISTER attempt, the bindings they leave, and the summary a NOC reads
 * (docs/REGISTRATIONS.md). The sibling of the call engine (analyze/calls/), built the same way:
 *
 * - State lives in a RegistrationTracker the caller owns: `add(event)` for each capture event,
 *   `close(endMs)` at the end of the input, then `records()` and `summary()`.
 * - Time is capture time (the events'), so a file gives the same records however fast it is read.
 *   The clock moves with every SIP event; deadlines (Timer F, the wait for a challenge's answer, the
 *   linger for retransmissions) are swept before an event is taken, so a final response later than
 *   Timer F finds its transaction timed out, as the UA's transaction would be.
 * - A transaction is keyed by Call-ID + CSeq number. A 401/407 (or 423) followed by a new REGISTER on
 *   the same Call-ID with a higher CSeq, from the same UA, is the same attempt: the challenge is
 *   counted, not a failure.
 * - A message is counted once at the edge where it enters the capture: the first REGISTER seen names
 *   the UA's and the registrar's side (addresses on the wire) and the capture node. The same REGISTER
 *   on another hop (proxy → registrar) or from another node is a copy, not a retransmission; on the
 *   edge, from the same node, a repeat (the retransmission flag, or the same bottom Via branch) is a
 *   retransmission. Responses count on the edge only (registrar side → UA side).
 * - Memory is bounded: open attempts (evicting the longest-open, counted), records kept for
 *   `records()`, bindings, users and VMs in the summary. Every bound that gives something up counts it.
 */
import type { CaptureEvent } from '../../core/event.js';
import { HEP_PROTO_SIP } from '../../core/event.js';
import { type Logger, silentLogger } from '../../core/log.js';
import type { SipMessage } from '../../core/sip-message.js';
import { DeadlineHeap, eventTimeMs, fnv1a, roundUs } from '../tracking.js';
import {
  isRegistrationFailure,
  isRegistrationSuccess,
  type RegistrationContact,
  type RegistrationOutcome,
  type RegistrationRecord,
} from './record.js';
import { contactKey, contactUri, headerOf, owned, paramOf, parseDeltaSeconds } from './sip.js';
import {
  type RegistrationBinding,
  RegistrationCounter,
  type RegistrationSeriesBucket,
  type RegistrationsSummary,
} from './summary.js';

/** Timer F (64·T1, T1 = 500 ms): a REGISTER without a final response by then has timed out. */
export const TIMER_F_MS = 32_000;
/** Transactions in one attempt at most (a UA challenged over and over starts a new attempt). */
const MAX_TRANSACTIONS = 16;
/** Contacts kept per record. */
const MAX_CONTACTS = 16;
/** Call-IDs are keyed by their first 256 characters, as the rest of the capture keys them. */
const KEY_CHARS = 256;
/** A binding whose 2xx names no expiry, nor the REGISTER: RFC 3261 registrars default to 3600 s. */
const DEFAULT_EXPIRES_SEC = 3600;

export interface RegistrationTrackerOptions {
  /** Each record, once its attempt is closed. */
  onRecord?: (record: RegistrationRecord) => void;
  /**
   * Records kept for `records()`: the latest ones (default 10,000; 0 keeps none), the older ones are
   * dropped and counted. Every record goes to `onRecord` and into the summary whatever this is.
   */
  maxRecords?: number;
  /** Open attempts kept at most (default 100,000): beyond, the longest-open one is closed ('evicted'). */
  maxOpen?: number;
  /** Bindings kept at most (default 200,000): beyond, expired ones go, then the oldest AoRs' (counted). */
  maxBindings?: number;
  /** Timer F, ms (default 32,000: 64·T1 with RFC 3261's T1 of 500 ms). */
  timerFMs?: number;
  /** How long a 401/407/423 waits for the UA's new REGISTER (default: Timer F). */
  retryWaitMs?: number;
  /** After its final response an attempt waits this long for retransmissions (default 5,000: T4). */
  lingerMs?: number;
  /** Width of the attempt time series' buckets, seconds (default 10). */
  bucketSec?: number;
  /** Buckets kept at most (default 8,640: a day of 10 s); past it, buckets double in width. */
  maxBuckets?: number;
  logger?: Logger;
}

/** The tracker's own counters (also in the summary's `counters`). */
export interface RegistrationTrackerCounters {
  /** Attempts open now. */
  open: number;
  /** Attempts closed early to stay within maxOpen. */
  evicted: number;
  /** Records no longer kept for records() (they still count in the summary). */
  recordsDropped: number;
  /** REGISTER messages or responses of no open transaction (started before the capture, or closed). */
  orphanMessages: number;
  /** Copies of a message already counted: another hop, another capture node, a response off the edge. */
  copies: number;
  /** A REGISTER reusing an open transaction's Call-ID and CSeq with another branch; a second, different final. */
  conflicts: number;
  /** Expires headers or `expires` parameters that were not delta-seconds (taken as absent). */
  badExpires: number;
  /** SIP events without a parsed message (HEP from elsewhere): registrations cannot be read from them. */
  unparsed: number;
  /** Bindings given up to stay within maxBindings. */
  bindingsEvicted: number;
}

interface Attempt {
  /** Closed into its record (the creation-order queue and the deadlines skip it). */
  closed: boolean;
  /** Bumped on every change of what decides when the attempt may be closed. */
  stamp: number;
  callId: string;
  callKey: string;
  /** CSeqs of the attempt's earlier transactions (challenged ones), null without. */
  earlier: number[] | null;
  /** The next older open attempt of the same Call-ID (a refresh while this one lingers), or null. */
  older: Attempt | null;
  firstCseq: number;
  cseq: number;
  /** Hash of the bottom Via branch of the current REGISTER (to tell its retransmissions). */
  branch: number;
  start: number;
  /** The current REGISTER's capture time. */
  txnStart: number;
  lastSeen: number;
  uaIp: string;
  uaPort: number;
  registrarIp: string;
  registrarPort: number;
  srcVm: string | null;
  dstVm: string | null;
  transport: string;
  node: string;
  user: string | null;
  domain: string | null;
  userAgent: string | null;
  contacts: RegistrationContact[];
  /** Contact keys of the current REGISTER (matching the 2xx's), `*` for a remove-all. */
  contactKeys: string[];
  requestedExpires: number | null;
  finalStatus: number | null;
  finalAt: number | null;
  reasonPhrase: string | null;
  server: string | null;
  grantedExpires: number | null;
  transactions: number;
  authChallenges: number;
  intervalRetries: number;
  retransmissions: number;
}

interface Binding {
  user: string | null;
  domain: string | null;
  contact: string;
  registeredAt: number;
  expiresAt: number;
  uaIp: string;
  uaPort: number;
  srcVm: string | null;
  registrarIp: string;
  registrarPort: number;
  dstVm: string | null;
}

function isRetryable(status: number | null): boolean {
  return status === 401 || status === 407 || status === 423;
}

/** A Via branch compared by hash, not kept. */
const hash = (text: string): number => fnv1a(text);

/** Open attempts kept per Call-ID (a refresh while the previous attempt lingers makes two). */
const MAX_PER_CALL = 8;

/** The attempt of a Call-ID's chain that has a transaction with this CSeq. */
function transactionOf(latest: Attempt, seq: number): Attempt | undefined {
  for (let a: Attempt | null = latest; a !== null; a = a.older)
    if (a.cseq === seq || a.earlier?.includes(seq)) return a;
  return undefined;
}

/** Distinct short strings (User-Agent, Server, domain) shared between attempts, at most this many. */
const MAX_INTERNED = 4096;

function keyOf(callId: string): string {
  return callId.length > KEY_CHARS ? callId.slice(0, KEY_CHARS) : callId;
}

export class RegistrationTracker {
  /**
   * Open attempts in creation order, closed ones skipped lazily: the longest-open one in O(1) (taking
   * the first key of a big Map after many deletions gets slower and slower in V8).
   */
  private order: Attempt[] = [];
  private orderHead = 0;
  private open = 0;
  /**
   * Open attempts by Call-ID: the latest, linked to older ones still open (at most MAX_PER_CALL). A
   * transaction is found by its CSeq in that short chain; a 401/407/423 on the latest one is what the
   * UA's next REGISTER answers.
   */
  private readonly byCall = new Map<string, Attempt>();
  private readonly due = new DeadlineHeap<Attempt>();
  private readonly bindings = new Map<string, Map<string, Binding>>();
  private readonly interned = new Map<string, string>();
  private bindingCount = 0;
  private readonly counter: RegistrationCounter;
  /** The latest records, a ring of maxRecords slots. */
  private readonly kept: RegistrationRecord[] = [];
  private keptNext = 0;
  private readonly maxRecords: number;
  private readonly maxOpen: number;
  private readonly maxBindings: number;
  private readonly timerFMs: number;
  private readonly retryWaitMs: number;
  private readonly lingerMs: number;
  private readonly logger: Logger;
  private readonly counters = {
    evicted: 0,
    recordsDropped: 0,
    orphanMessages: 0,
    copies: 0,
    conflicts: 0,
    badExpires: 0,
    unparsed: 0,
    bindingsEvicted: 0,
  };
  /** Latest capture time seen (ms); -Infinity before the first SIP event. */
  private now = -Infinity;
  private closed = false;
  /** The end given to close, if any: what the summary is as of. */
  private endMs: number | null = null;

  constructor(private readonly options: RegistrationTrackerOptions = {}) {
    this.maxRecords = Math.max(0, options.maxRecords ?? 10_000);
    this.maxOpen = Math.max(1, options.maxOpen ?? 100_000);
    this.maxBindings = Math.max(1, options.maxBindings ?? 200_000);
    this.timerFMs = options.timerFMs ?? TIMER_F_MS;
    this.retryWaitMs = options.retryWaitMs ?? this.timerFMs;
    this.lingerMs = options.lingerMs ?? 5_000;
    this.logger = options.logger ?? silentLogger;
    this.counter = new RegistrationCounter(options.bucketSec ?? 10, options.maxBuckets ?? 8_640);
  }

  /** Takes one capture event (any kind: only SIP REGISTER transactions are followed). */
  add(event: CaptureEvent): void {
    if (this.closed) return;
    const sip = event.sip;
    if (sip === undefined) {
      if (event.protoType === HEP_PROTO_SIP) this.counters.unparsed++;
      return;
    }
    const timeMs = eventTimeMs(event.timestampNs);
    if (timeMs > this.now) {
      this.now = timeMs;
      this.sweep();
    }
    const cseq = sip.cseq;
    if (cseq === null || cseq.method !== 'REGISTER' || sip.callId === null) return;
    if (sip.isRequest) {
      if (sip.method === 'REGISTER') this.request(event, sip, cseq.seq, timeMs);
    } else this.response(event, sip, cseq.seq, timeMs);
  }

  /**
   * The input ended at `endMs` (capture time; default the latest SIP event): attempts whose time is up
   * by then close as usual, every other one now ('end-of-capture' when its end was not seen).
   */
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
    for (const attempt of this.order.slice(this.orderHead))
      if (!attempt.closed) this.finish(attempt, 'end-of-capture');
    this.order = [];
    this.orderHead = 0;
  }

  /** The records kept (the last `maxRecords`), in the order their attempts closed. */
  records(): RegistrationRecord[] {
    return [...this.kept.slice(this.keptNext), ...this.kept.slice(0, this.keptNext)];
  }

  trackerCounters(): RegistrationTrackerCounters {
    return {
      ...this.counters,
      recordsDropped: this.counters.recordsDropped,
      open: this.open,
    };
  }

  /**
   * The summary of every record so far, with the bindings live at the tracker's clock (the latest
   * capture time, or `endMs` after close). JSON-able.
   */
  summary(): RegistrationsSummary {
    const asOf = this.endMs ?? (Number.isFinite(this.now) ? this.now : null);
    return this.counter.summary(this.trackerCounters(), this.liveBindings(asOf), asOf);
  }

  // ------------------------------------------------------------------------------------------------

  private request(event: CaptureEvent, sip: SipMessage, seq: number, t: number): void {
    const callKey = keyOf(sip.callId!);
    const bottom = sip.via.at(-1)?.branch ?? '';
    const latest = this.byCall.get(callKey);
    const open = latest === undefined ? undefined : transactionOf(latest, seq);
    if (open !== undefined) {
      if (this.fromUa(open, event) && event.nodeName === open.node) {
        if (event.retransmission || hash(bottom) === open.branch) {
          open.retransmissions++;
          open.lastSeen = t;
        } else this.counters.conflicts++;
      } else this.counters.copies++;
      return;
    }
    if (event.retransmission) {
      this.counters.orphanMessages++;
      return;
    }
    const waiting = latest;
    if (
      waiting !== undefined &&
      isRetryable(waiting.finalStatus) &&
      seq > waiting.cseq &&
      waiting.transactions < MAX_TRANSACTIONS &&
      event.srcIp === waiting.uaIp &&
      event.dstIp === waiting.registrarIp
    ) {
      if (waiting.finalStatus === 423) waiting.intervalRetries++;
      else waiting.authChallenges++;
      waiting.transactions++;
      if (waiting.earlier === null) waiting.earlier = [waiting.cseq];
      else waiting.earlier.push(waiting.cseq);
      waiting.cseq = seq;
      waiting.branch = hash(bottom);
      waiting.txnStart = t;
      waiting.lastSeen = t;
      waiting.finalStatus = null;
      waiting.finalAt = null;
      waiting.reasonPhrase = null;
      waiting.server = null;
      this.readContacts(waiting, sip);
      this.schedule(waiting);
      return;
    }
    if (this.open >= this.maxOpen) this.evictOldest();
    let chain = 0;
    for (let a = this.byCall.get(callKey) ?? null; a !== null; a = a.older) {
      // Hostile traffic can open any number of attempts on one Call-ID: the oldest of them goes.
      if (++chain >= MAX_PER_CALL) {
        this.evict(a);
        break;
      }
    }
    const older = this.byCall.get(callKey) ?? null;
    // Kept strings are copies: a substring of the message would keep its whole text alive.
    const ownKey = older?.callKey ?? owned(callKey) ?? '';
    const callId = sip.callId!.length > KEY_CHARS ? (owned(sip.callId) ?? '') : ownKey;
    const toUri = sip.to?.uri ?? null;
    const attempt: Attempt = {
      closed: false,
      stamp: 0,
      callId,
      callKey: ownKey,
      earlier: null,
      older,
      firstCseq: seq,
      cseq: seq,
      branch: hash(bottom),
      start: t,
      txnStart: t,
      lastSeen: t,
      uaIp: event.srcIp,
      uaPort: event.srcPort,
      registrarIp: event.dstIp,
      registrarPort: event.dstPort,
      srcVm: event.srcVm ?? null,
      dstVm: event.dstVm ?? null,
      transport: event.transport,
      node: event.nodeName,
      user: owned(toUri?.user),
      domain: toUri === null ? null : this.intern(toUri.host.toLowerCase()),
      userAgent: this.intern(sip.userAgent),
      contacts: [],
      contactKeys: [],
      requestedExpires: null,
      finalStatus: null,
      finalAt: null,
      reasonPhrase: null,
      server: null,
      grantedExpires: null,
      transactions: 1,
      authChallenges: 0,
      intervalRetries: 0,
      retransmissions: 0,
    };
    this.readContacts(attempt, sip);
    this.open++;
    this.order.push(attempt);
    this.byCall.set(ownKey, attempt);
    this.counter.started(t);
    this.schedule(attempt);
  }

  private response(event: CaptureEvent, sip: SipMessage, seq: number, t: number): void {
    const latest = this.byCall.get(keyOf(sip.callId!));
    const attempt = latest === undefined ? undefined : transactionOf(latest, seq);
    if (attempt === undefined) {
      this.counters.orphanMessages++;
      return;
    }
    // The edge: registrar side → UA side (the UA's port is where the response must go; a UDP server may
    // answer from another port of the same address).
    if (
      event.srcIp !== attempt.registrarIp ||
      event.dstIp !== attempt.uaIp ||
      event.dstPort !== attempt.uaPort
    ) {
      this.counters.copies++;
      return;
    }
    const status = sip.statusCode ?? 0;
    if (status < 200) return;
    attempt.lastSeen = Math.max(attempt.lastSeen, t);
    if (seq !== attempt.cseq || attempt.finalStatus !== null) {
      // A final response again: to an earlier REGISTER of the attempt, or to this one.
      if (event.nodeName !== attempt.node) this.counters.copies++;
      else if (seq !== attempt.cseq || status === attempt.finalStatus || event.retransmission)
        attempt.retransmissions++;
      else this.counters.conflicts++;
      return;
    }
    attempt.finalStatus = status;
    attempt.finalAt = t;
    attempt.reasonPhrase = owned(sip.reasonPhrase);
    attempt.server = this.intern(sip.server ?? sip.userAgent);
    if (status < 300) this.registered(attempt, sip, t);
    this.schedule(attempt);
  }

  /** Reads the Contacts and expiries of a REGISTER into the attempt. */
  private readContacts(attempt: Attempt, sip: SipMessage): void {
    const header = this.expires(headerOf(sip, 'Expires'));
    attempt.contacts = [];
    attempt.contactKeys = [];
    for (const c of sip.contact) {
      if (attempt.contacts.length >= MAX_CONTACTS) break;
      const own = c.uri === null ? null : this.expires(paramOf(c.params, 'expires'));
      attempt.contacts.push({ uri: contactUri(c), expires: own ?? header });
      attempt.contactKeys.push(contactKey(c));
    }
    attempt.requestedExpires = attempt.contacts[0]?.expires ?? header;
  }

  /** One copy of a value that many attempts share (a UA model, a registrar's name, a domain). */
  private intern(text: string | null | undefined): string | null {
    if (text === null || text === undefined) return null;
    const known = this.interned.get(text);
    if (known !== undefined) return known;
    const copy = owned(text)!;
    if (this.interned.size < MAX_INTERNED) this.interned.set(copy, copy);
    return copy;
  }

  private expires(value: string | undefined): number | null {
    const parsed = parseDeltaSeconds(value);
    if (parsed === 'bad') {
      this.counters.badExpires++;
      return null;
    }
    return parsed;
  }

  /** A 2xx at the edge: the granted expiry, and the AoR's bindings as the registrar now has them. */
  private registered(attempt: Attempt, sip: SipMessage, t: number): void {
    const header = this.expires(headerOf(sip, 'Expires'));
    const listed = new Map<string, number | null>();
    for (const c of sip.contact) {
      if (c.uri === null) continue;
      listed.set(contactKey(c), this.expires(paramOf(c.params, 'expires')));
    }
    const first = attempt.contactKeys[0];
    let granted: number | null = null;
    if (first !== undefined && first !== '*') {
      granted = listed.get(first) ?? null;
      if (granted === null && listed.size === 1 && attempt.contactKeys.length === 1)
        granted = [...listed.values()][0] ?? null;
      granted ??= header;
    }
    attempt.grantedExpires = granted;
    if (attempt.contactKeys.length === 0) return; // a query changes nothing
    const aor = `${attempt.user ?? ''}@${attempt.domain ?? ''}`;
    let set = this.bindings.get(aor);
    if (attempt.contactKeys.includes('*')) {
      if (set !== undefined) {
        this.bindingCount -= set.size;
        this.bindings.delete(aor);
      }
      return;
    }
    if (set === undefined) set = new Map();
    else this.bindings.delete(aor); // re-inserted below: the map's order is the AoRs' last update
    const put = (key: string, contact: string, seconds: number) => {
      const existing = set.get(key);
      if (seconds <= 0) {
        if (existing !== undefined) {
          set.delete(key);
          this.bindingCount--;
        }
        return;
      }
      if (existing === undefined) this.bindingCount++;
      set.set(key, {
        user: attempt.user,
        domain: attempt.domain,
        contact,
        registeredAt: Math.floor(t),
        expiresAt: Math.floor(t + seconds * 1000),
        uaIp: attempt.uaIp,
        uaPort: attempt.uaPort,
        srcVm: attempt.srcVm,
        registrarIp: attempt.registrarIp,
        registrarPort: attempt.registrarPort,
        dstVm: attempt.dstVm,
      });
    };
    attempt.contactKeys.forEach((key, i) => {
      const asked = attempt.contacts[i]!;
      if (listed.size > 0) {
        // The registrar lists the bindings it keeps: a contact it left out is not bound (any more).
        if (!listed.has(key)) {
          put(key, asked.uri, 0);
          return;
        }
        put(key, asked.uri, listed.get(key) ?? header ?? asked.expires ?? DEFAULT_EXPIRES_SEC);
      } else put(key, asked.uri, asked.expires === 0 ? 0 : (header ?? asked.expires ?? DEFAULT_EXPIRES_SEC));
    });
    // Other bindings the 2xx lists (the AoR's other devices) are the registrar's word too.
    for (const c of sip.contact) {
      if (c.uri === null) continue;
      const key = contactKey(c);
      if (attempt.contactKeys.includes(key) || set.has(key)) continue;
      const seconds = listed.get(key) ?? header;
      if (seconds !== null && seconds !== undefined) put(key, contactUri(c), seconds);
    }
    if (set.size > 0) this.bindings.set(aor, set);
    if (this.bindingCount > this.maxBindings) this.trimBindings();
  }

  private trimBindings(): void {
    for (const [aor, set] of this.bindings) {
      for (const [key, b] of set)
        if (b.expiresAt <= this.now) {
          set.delete(key);
          this.bindingCount--;
        }
      if (set.size === 0) this.bindings.delete(aor);
    }
    const target = Math.floor(this.maxBindings * 0.9);
    for (const [aor, set] of this.bindings) {
      if (this.bindingCount <= target) break;
      this.bindingCount -= set.size;
      this.counters.bindingsEvicted += set.size;
      this.bindings.delete(aor);
    }
  }

  private liveBindings(asOf: number | null): RegistrationBinding[] {
    const out: RegistrationBinding[] = [];
    if (asOf === null) return out;
    for (const set of this.bindings.values())
      for (const b of set.values()) if (b.expiresAt > asOf) out.push({ ...b });
    return out;
  }

  private fromUa(attempt: Attempt, event: CaptureEvent): boolean {
    return (
      event.srcIp === attempt.uaIp &&
      event.srcPort === attempt.uaPort &&
      event.dstIp === attempt.registrarIp &&
      event.dstPort === attempt.registrarPort
    );
  }

  /** When an attempt should be looked at next: Timer F, the wait for a new REGISTER, or the linger. */
  private deadlineOf(a: Attempt): number {
    if (a.finalStatus === null || a.finalAt === null) return a.txnStart + this.timerFMs;
    if (isRetryable(a.finalStatus)) return a.finalAt + this.retryWaitMs;
    return a.finalAt + this.lingerMs;
  }

  private schedule(a: Attempt): void {
    a.stamp++;
    this.due.push({ at: this.deadlineOf(a), owner: a, stamp: a.stamp });
  }

  private sweep(): void {
    for (let d = this.due.popDue(this.now); d !== undefined; d = this.due.popDue(this.now)) {
      if (d.owner.closed || d.owner.stamp !== d.stamp) continue;
      this.finish(d.owner, null);
    }
    this.due.compact((d) => !d.owner.closed && d.owner.stamp === d.stamp, this.open);
    this.tidyOrder();
  }

  /** Drops closed attempts from the creation-order queue once they outnumber the open ones. */
  private tidyOrder(): void {
    while (this.orderHead < this.order.length && this.order[this.orderHead]!.closed) this.orderHead++;
    if (this.order.length - this.orderHead > 2 * this.open + 1024) {
      this.order = this.order.filter((a, i) => i >= this.orderHead && !a.closed);
      this.orderHead = 0;
    } else if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
  }

  private evictOldest(): void {
    this.tidyOrder();
    const oldest = this.order[this.orderHead];
    if (oldest !== undefined) this.evict(oldest);
  }

  private evict(attempt: Attempt): void {
    if (this.counters.evicted++ === 0)
      this.logger.warn(
        'registrations: a bound of open attempts was reached (maxOpen, or 8 on one Call-ID); the longest-open are closed early',
        { maxOpen: this.maxOpen },
      );
    this.finish(attempt, 'evicted');
  }

  private outcomeOf(a: Attempt): RegistrationOutcome {
    const status = a.finalStatus;
    if (status === null) return this.now - a.txnStart >= this.timerFMs ? 'noResponse' : 'inProgress';
    if (status >= 200 && status < 300) {
      if (a.contactKeys.length === 0) return 'queried';
      if (a.contactKeys.includes('*')) return 'unregistered';
      return a.contacts.every((c) => c.expires === 0) ? 'unregistered' : 'registered';
    }
    if (status === 401 || status === 407) return 'challenged';
    return 'failed';
  }

  private finish(a: Attempt, reason: 'end-of-capture' | 'evicted' | null): void {
    a.closed = true;
    this.open--;
    // Out of its Call-ID's chain.
    const latest = this.byCall.get(a.callKey);
    if (latest === a) {
      if (a.older === null) this.byCall.delete(a.callKey);
      else this.byCall.set(a.callKey, a.older);
    } else
      for (let n = latest ?? null; n !== null; n = n.older)
        if (n.older === a) {
          n.older = a.older;
          break;
        }
    a.older = null;
    a.stamp++;
    const outcome = this.outcomeOf(a);
    const ended = outcome !== 'inProgress' && !(reason !== null && isRetryable(a.finalStatus));
    let end: number;
    if (a.finalAt !== null) end = a.finalAt;
    else if (outcome === 'noResponse') end = a.txnStart + this.timerFMs;
    else end = a.lastSeen;
    const responseMs = a.finalAt === null ? null : roundUs(a.finalAt - a.start);
    const record: RegistrationRecord = {
      callId: a.callId,
      firstCseq: a.firstCseq,
      cseq: a.cseq,
      time: Math.floor(a.start),
      end: Math.floor(end),
      user: a.user,
      domain: a.domain,
      contacts: a.contacts,
      requestedExpires: a.requestedExpires,
      grantedExpires: a.grantedExpires,
      uaIp: a.uaIp,
      uaPort: a.uaPort,
      registrarIp: a.registrarIp,
      registrarPort: a.registrarPort,
      srcVm: a.srcVm,
      dstVm: a.dstVm,
      transport: a.transport,
      userAgent: a.userAgent,
      server: a.server,
      finalStatus: a.finalStatus,
      reasonPhrase: a.reasonPhrase,
      outcome,
      rrdMs: isRegistrationSuccess(outcome) ? responseMs : null,
      responseMs,
      transactions: a.transactions,
      authChallenges: a.authChallenges,
      intervalRetries: a.intervalRetries,
      retransmissions: a.retransmissions,
      closedBy: ended ? null : reason,
      node: a.node,
    };
    this.counter.add(record, isRegistrationFailure(outcome));
    if (this.maxRecords === 0) this.counters.recordsDropped++;
    else if (this.kept.length < this.maxRecords) this.kept.push(record);
    else {
      this.kept[this.keptNext] = record;
      this.keptNext = (this.keptNext + 1) % this.maxRecords;
      this.counters.recordsDropped++;
    }
    this.options.onRecord?.(record);
  }
}

export type {
  RegistrationBinding,
  RegistrationContact,
  RegistrationOutcome,
  RegistrationRecord,
  RegistrationSeriesBucket,
  RegistrationsSummary,
};

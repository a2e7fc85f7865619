/**
 * One call, built from its SIP messages as they come (capture order), with only what the record needs
 * kept: no message is retained. What a call is (CONTEXT §3, docs/CALLS.md):
 *
 * - It starts with an initial INVITE (no To tag); the first one seen names the caller and the edge
 *   hop (the address pair where the call enters what the capture sees).
 * - The caller's INVITE transactions are its INVITEs on the edge hop (new CSeq each). A 401/407
 *   followed by a new INVITE is the same call, one more challenge; retransmissions are not attempts.
 * - Through a stateful proxy the same Call-ID crosses several hops (caller → proxy → destination):
 *   one call. A hop is where INVITEs leave from with as many Vias (the caller's carry one, a proxy's
 *   forwards one more); each keeps its INVITE transactions as branches, each with its destination (a
 *   proxy's failover is a second branch to another destination). The call's outcome is what the
 *   caller got on the edge hop, not what a branch got.
 * - A message seen on several hops is one message: messages are told apart by their bottom Via branch
 *   (the originator's, kept by every proxy), CSeq, method or status and To tag. Seen again on the same
 *   hop it is a resend (counted in retransmissions), or, within 20 ms, a copy of the same packet from
 *   another capture point (ignored).
 * - In-dialog INVITEs and UPDATEs are re-INVITEs: counted, and a refusal does not end the call.
 */

import { sdpMediaCodecs } from '../../capture/rtp/payload-types.js';
import { ownedCopy } from '../../capture/sip/bounded-map.js';
import type { CallHop, CallParty, CallRecord, CallStream } from '../../core/call.js';
import type { CaptureEvent } from '../../core/event.js';
import type { Sdp, SipMessage, SipReason } from '../../core/sip-message.js';
import type { KeyHash } from '../tracking.js';
import { type LegKeys, type LegLink, legKeysOf } from './linker.js';
import { outcomeOf } from './outcome.js';

/** Timer B (64·T1): an INVITE without any response by then has timed out. */
export const TIMER_B_MS = 32_000;
/**
 * After a provisional response Timer B no longer runs (RFC 3261 §17.1.1.2: the transaction is
 * proceeding); a call may ring for minutes (we take 18x only: 100 Trying comes from the next hop). A proxy gives up on a ringing branch with Timer C, more
 * than 3 minutes after its last provisional (§16.6): a call that rang with nothing since is over.
 */
export const TIMER_C_MS = 180_000;
/** Bounds of one call's state (hostile traffic can reuse one Call-ID for anything). */
const MAX_HOPS = 16;
const MAX_BRANCHES = 16;
const MAX_MESSAGE_KEYS = 512;
const MAX_STREAMS = 16;
const MAX_REINVITES = 64;
const MAX_LINKED = 16;
/** The same packet seen again this soon on the same hop is a copy (two capture points), not a resend (T1 ≥ 100 ms in practice). */
const DUPLICATE_COPY_MS = 20;

interface Branch {
  /** Its Via branch. */
  id: string;
  /** Where this INVITE transaction went. */
  to: string;
  start: number;
  finalStatus: number | null;
  retransmissions: number;
  answered: boolean;
}

/** One step of the path: INVITEs from one address carrying as many Vias (the caller, then each proxy). */
interface Hop {
  from: string;
  firstSeen: number;
  /** In the order they were tried (at most MAX_BRANCHES). */
  branches: Branch[];
}

/** Where a hop's INVITE got: the destination that answered, else the last one tried. */
function hopTarget(hop: Hop): string {
  let last: Branch | null = null;
  for (const b of hop.branches) {
    if (b.answered) return b.to;
    last = b;
  }
  return last?.to ?? '';
}

/** The caller's INVITE transaction on the edge hop. */
interface CallerInvite {
  cseq: number;
  finalStatus: number | null;
  finalAt: number | null;
  /** The latest provisional response to it other than 100 Trying, before its final one. */
  provisionalAt: number | null;
  reasonPhrase: string | null;
  reason: SipReason | null;
}

function addressOf(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function codecsOf(sdp: Sdp | null): string[] {
  if (sdp === null) return [];
  const out: string[] = [];
  for (const m of sdp.media) {
    if (m.port === 0) continue;
    for (const name of sdpMediaCodecs(m)) if (!out.includes(name)) out.push(name);
  }
  return out;
}

const NO_LINKS: ReadonlySet<string> = new Set();

function owned(text: string | null): string | null {
  return text === null ? null : ownedCopy(text);
}

/** The message's two ends into the hash (as `ip:port > ip:port` would, without building them). */
function wire(hash: KeyHash, event: CaptureEvent): KeyHash {
  return hash.text(event.srcIp).number(event.srcPort).text(event.dstIp).number(event.dstPort);
}

/** A re-INVITE or UPDATE: From tag, CSeq number and method. */
function reInviteKey(hash: KeyHash, sip: SipMessage, cseq: number, method: string): number {
  return hash
    .reset()
    .text(sip.from?.tag ?? '')
    .number(cseq)
    .text(method)
    .value();
}

export class CallBuilder {
  readonly callId: string;
  /** The Call-ID's first 256 characters: the call's key in the sink (as the capture keys Call-IDs). */
  readonly key: string;
  readonly start: number;
  /** Capture time (ms) of the latest message or report. */
  lastSeen: number;
  private readonly fromTag: string;
  private readonly from: string;
  private readonly to: string;
  private readonly requestUri: string | null;
  private readonly caller: CallParty;
  private readonly edgeTo: string;
  /** The edge hop's two ends as the events carry them, compared without building `ip:port` per message. */
  private readonly edgeToIp: string;
  private readonly edgeToPort: number;
  private readonly node: string;
  private readonly hops = new Map<string, Hop>();
  /** Every hop's INVITE transactions by Via branch: responses and resends find theirs by it. */
  private readonly branches = new Map<string, Branch>();
  private readonly callerInvites: CallerInvite[] = [];
  /**
   * Each distinct message, by the hash of what makes it one (its copies on other hops included).
   * Arrays scanned in place: a call holds tens of messages, and a Set or Map per call costs more to
   * make and fill than the scans (bounded by MAX_MESSAGE_KEYS).
   */
  private readonly messageKeys: number[] = [];
  /** Each message as seen on each hop (hash), with when it was last seen there (resends and copies). */
  private readonly hopKeys: number[] = [];
  private readonly hopTimes: number[] = [];
  /** Re-INVITEs and UPDATEs (hash of From tag, CSeq, method), and those rejected; made on the first. */
  private reInviteKeys: Set<number> | null = null;
  private reInvitesRejected: Set<number> | null = null;
  private readonly streams: CallStream[] = [];
  /** Streams with an interval report and no final one yet, and those that ended (hashed keys). */
  private mediaRunning: Set<number> | null = null;
  private mediaEnded: Set<number> | null = null;
  /** The latest final report of a stream that ended by silence. */
  private mediaSilentSince: number | null = null;
  private messages = 0;
  private retransmissions = 0;
  private authChallenges = 0;
  private ringing: number | null = null;
  private answer: number | null = null;
  private toTag: string | null = null;
  private cancelledAt: number | null = null;
  private cancelReason: SipReason | null = null;
  private byeAt: number | null = null;
  private byeByCaller = false;
  private byeReason: SipReason | null = null;
  private byeAnswered = false;
  private offered: string[];
  private answered: string[] = [];
  private calleeAgent: string | null = null;
  /** VM of the deepest INVITE's destination, when attributed. */
  private calleeVm: string | null = null;
  /** What the initial INVITE offers for linking legs, and the link the sink found for it. */
  readonly keys: LegKeys;
  link: LegLink;
  private linked: Set<string> | null = null;
  /** Bumped on every change of what decides when the call may be closed (see CallSink). */
  stamp = 0;

  /** Starts a call from its first initial INVITE. */
  /** `hash` is the caller's scratch for message keys (the sink owns one for all its calls). */
  constructor(event: CaptureEvent, sip: SipMessage, timeMs: number, hash: KeyHash) {
    // Strings kept for the call's life are copies: a substring would keep its message alive.
    this.callId = ownedCopy(sip.callId ?? '');
    this.key = this.callId.length > 256 ? this.callId.slice(0, 256) : this.callId;
    this.start = timeMs;
    this.lastSeen = timeMs;
    this.fromTag = ownedCopy(sip.from?.tag ?? '');
    this.from = ownedCopy(sip.from?.uri?.user ?? '');
    this.to = ownedCopy(sip.to?.uri?.user ?? '');
    this.requestUri = owned(sip.requestUri?.raw ?? null);
    this.caller = {
      ip: event.srcIp,
      port: event.srcPort,
      vm: event.srcVm ?? null,
      userAgent: owned(sip.userAgent ?? sip.server),
    };
    this.edgeTo = addressOf(event.dstIp, event.dstPort);
    this.edgeToIp = event.dstIp;
    this.edgeToPort = event.dstPort;
    this.node = event.nodeName;
    this.offered = codecsOf(sip.sdp);
    this.keys = legKeysOf(sip, timeMs, event.srcIp, event.dstIp);
    this.link = { edgeCallId: this.callId, linkedBy: null, linkedTo: null };
    this.add(event, sip, timeMs, hash);
  }

  /** True once the call has ended (answered and hung up, cancelled, or failed): only stragglers may follow. */
  get ended(): boolean {
    if (this.byeAt !== null) return true;
    if (this.answer !== null) return false;
    if (this.cancelledAt !== null) return true;
    const last = this.callerInvites.at(-1);
    return (
      last !== undefined &&
      last.finalStatus !== null &&
      last.finalStatus >= 300 &&
      !this.challengePending(last)
    );
  }

  get isAnswered(): boolean {
    return this.answer !== null;
  }

  /**
   * When an unanswered call is over without a final response: Timer B after its start while nothing
   * answered the INVITE, Timer C after the last provisional once something did.
   */
  get noAnswerAt(): number {
    const provisional = this.callerInvites.at(-1)?.provisionalAt ?? null;
    return provisional === null
      ? this.start + TIMER_B_MS
      : Math.max(this.start + TIMER_B_MS, provisional + TIMER_C_MS);
  }

  /** When the call ended (or null while it has not). */
  get endedAt(): number | null {
    if (this.byeAt !== null) return this.byeAt;
    if (this.answer !== null) return null;
    if (this.cancelledAt !== null) return this.cancelledAt;
    const last = this.callerInvites.at(-1);
    return last?.finalAt ?? null;
  }

  /** The other legs of the same end-to-end call known so far. */
  get linkedCallIds(): ReadonlySet<string> {
    return this.linked ?? NO_LINKS;
  }

  /** Another leg of the same end-to-end call (bounded). */
  addLinked(callId: string): void {
    this.linked ??= new Set();
    if (callId !== this.callId && this.linked.size < MAX_LINKED) this.linked.add(callId);
  }

  /** A 401/407 the caller may still answer with a new INVITE. */
  private challengePending(invite: CallerInvite): boolean {
    return invite.finalStatus === 401 || invite.finalStatus === 407;
  }

  /** Adds one SIP message of this Call-ID. */
  add(event: CaptureEvent, sip: SipMessage, timeMs: number, hash: KeyHash): void {
    const cseq = sip.cseq;
    const topBranch = sip.via[0]?.branch ?? '';
    // What makes a message one, whichever hop it is seen on: kind, CSeq, the bottom Via branch (the
    // originator's) and the To tag. 100 Trying is hop by hop (never relayed): each hop's is its own.
    const h = hash.reset();
    if (sip.isRequest) h.text(sip.method ?? '');
    else h.number(sip.statusCode ?? 0);
    h.number(cseq?.seq ?? -1)
      .text(cseq?.method ?? '')
      .text(sip.via.at(-1)?.branch ?? '')
      .text(sip.to?.tag ?? '');
    if (sip.statusCode === 100) wire(h, event);
    const key = h.value();
    // The same message again on the same hop: a copy of the same packet (a second capture point,
    // a mirror of both directions) within a few ms, else a resend. Told from the messages themselves,
    // so events that lost their retransmission flag on the way (HEP, Kafka) count the same.
    const onHop = wire(h, event).value();
    const at = this.hopKeys.indexOf(onHop);
    if (at >= 0 || event.retransmission) {
      if (at >= 0 && Math.abs(timeMs - this.hopTimes[at]!) < DUPLICATE_COPY_MS) return;
      if (timeMs > this.lastSeen) this.lastSeen = timeMs;
      if (at >= 0) this.hopTimes[at] = timeMs;
      this.retransmissions++;
      this.messages++;
      if (sip.isRequest && sip.method === 'INVITE') {
        const branch = this.branches.get(topBranch);
        if (branch !== undefined) branch.retransmissions++;
      }
      return;
    }
    if (timeMs > this.lastSeen) this.lastSeen = timeMs;
    if (this.hopKeys.length < MAX_MESSAGE_KEYS * 2) {
      this.hopKeys.push(onHop);
      this.hopTimes.push(timeMs);
    }
    if (!this.messageKeys.includes(key)) {
      if (this.messageKeys.length < MAX_MESSAGE_KEYS) this.messageKeys.push(key);
      this.messages++;
    }
    if (sip.isRequest) {
      // The deepest INVITE's destination is the callee's side: its VM, when attributed.
      if (sip.method === 'INVITE' && !sip.to?.tag && event.dstVm !== undefined) this.calleeVm = event.dstVm;
      this.request(sip, event, topBranch, timeMs, hash);
    } else this.response(sip, event, topBranch, timeMs, hash);
  }

  private request(sip: SipMessage, event: CaptureEvent, branch: string, timeMs: number, hash: KeyHash): void {
    const method = sip.method;
    const cseq = sip.cseq?.seq ?? -1;
    const inDialog = sip.to?.tag !== null && sip.to?.tag !== undefined;
    if (method === 'INVITE' && !inDialog) {
      const hop = this.hopOf(event, sip.via.length, timeMs);
      if (hop !== null && hop.branches.length < MAX_BRANCHES && !hop.branches.some((b) => b.id === branch)) {
        const b: Branch = {
          id: ownedCopy(branch),
          to: addressOf(event.dstIp, event.dstPort),
          start: timeMs,
          finalStatus: null,
          retransmissions: 0,
          answered: false,
        };
        hop.branches.push(b);
        this.branches.set(b.id, b);
      }
      if (this.fromCaller(event) && !this.callerInvites.some((i) => i.cseq === cseq)) {
        const previous = this.callerInvites.at(-1);
        if (previous !== undefined && this.challengePending(previous)) this.authChallenges++;
        if (this.callerInvites.length < MAX_BRANCHES)
          this.callerInvites.push({
            cseq,
            finalStatus: null,
            finalAt: null,
            provisionalAt: null,
            reasonPhrase: null,
            reason: null,
          });
        if (this.offered.length === 0) this.offered = codecsOf(sip.sdp);
        this.stamp++;
      }
      return;
    }
    if ((method === 'INVITE' || method === 'UPDATE') && inDialog) {
      this.reInviteKeys ??= new Set();
      if (this.reInviteKeys.size < MAX_REINVITES) this.reInviteKeys.add(reInviteKey(hash, sip, cseq, method));
      return;
    }
    if (method === 'CANCEL') {
      if (
        event.srcIp === this.caller.ip &&
        event.srcPort === this.caller.port &&
        this.answer === null &&
        this.cancelledAt === null
      ) {
        this.cancelledAt = timeMs;
        this.cancelReason = sip.reason;
        this.stamp++;
      }
      return;
    }
    if (method === 'BYE' && this.byeAt === null) {
      this.byeAt = timeMs;
      this.byeByCaller = sip.from?.tag === this.fromTag;
      this.byeReason = sip.reason;
      this.stamp++;
    }
  }

  private response(
    sip: SipMessage,
    event: CaptureEvent,
    branch: string,
    timeMs: number,
    hash: KeyHash,
  ): void {
    const status = sip.statusCode ?? 0;
    const method = sip.cseq?.method;
    const cseq = sip.cseq?.seq ?? -1;
    if (method === 'BYE') {
      if (status >= 200 && status < 300 && this.byeAt !== null) this.byeAnswered = true;
      return;
    }
    if (method !== 'INVITE' && method !== 'UPDATE') return;
    const reKey = this.reInviteKeys === null ? 0 : reInviteKey(hash, sip, cseq, method);
    if (this.reInviteKeys?.has(reKey)) {
      if (status >= 300) {
        this.reInvitesRejected ??= new Set();
        this.reInvitesRejected.add(reKey);
      }
      return;
    }
    if (method !== 'INVITE') return;
    // The branch of the hop this answer travels back over.
    const b = this.branches.get(branch);
    if (b !== undefined && status >= 200 && b.finalStatus === null) {
      b.finalStatus = status;
      b.answered = status < 300;
    }
    if (!this.toCaller(event)) return;
    const invite = this.callerInvites.find((i) => i.cseq === cseq);
    if (invite === undefined) return;
    // A provisional after the final answer (reordered on the way, as with a proxy's several workers)
    // is no alerting: PDD is to the first 18x or final response, whichever came first (RFC 6076).
    // 100 Trying is the next hop's, not the callee's: only a provisional from further on (18x) says
    // the call is ringing or progressing, and the call may then ring past Timer B.
    if (
      status > 100 &&
      status < 200 &&
      invite.finalStatus === null &&
      (invite.provisionalAt ?? -1) < timeMs
    ) {
      invite.provisionalAt = timeMs;
      this.stamp++;
    }
    if (status >= 180 && status < 200 && this.ringing === null && invite.finalStatus === null) {
      this.ringing = timeMs;
      if (this.answered.length === 0) this.answered = codecsOf(sip.sdp);
      this.stamp++;
    }
    if (status < 200 || invite.finalStatus !== null) return;
    invite.finalStatus = status;
    invite.finalAt = timeMs;
    invite.reasonPhrase = sip.reasonPhrase;
    invite.reason = sip.reason;
    if (status < 300 && this.answer === null) {
      this.answer = timeMs;
      this.toTag = owned(sip.to?.tag ?? null);
      const answerCodecs = codecsOf(sip.sdp);
      if (answerCodecs.length > 0) this.answered = answerCodecs;
      this.calleeAgent = owned(sip.server ?? sip.userAgent);
    } else if (status >= 300 && this.toTag === null) {
      this.toTag = owned(sip.to?.tag ?? null);
      this.calleeAgent ??= owned(sip.server ?? sip.userAgent);
    }
    if (this.calleeAgent === null) this.calleeAgent = owned(sip.server ?? sip.userAgent);
    this.stamp++;
  }

  /** A final media report of one of the call's streams. */
  addStream(stream: CallStream, timeMs: number): void {
    if (timeMs > this.lastSeen) this.lastSeen = timeMs;
    if (this.streams.length < MAX_STREAMS) this.streams.push(stream);
  }

  /**
   * What the media reports say of the call's streams (any report, interval or final): a stream with
   * an interval report and no final one is running; a final one that ended by silence (idle, RTCP
   * BYE) is over. `key` tells the streams apart (its 5-tuple and SSRC, hashed).
   */
  mediaReport(key: number, final: boolean, silent: boolean, timeMs: number): void {
    if (!final) {
      if (this.mediaEnded?.has(key)) return;
      this.mediaRunning ??= new Set();
      if (this.mediaRunning.size < MAX_STREAMS * 4 && !this.mediaRunning.has(key)) {
        this.mediaRunning.add(key);
        this.stamp++;
      }
      return;
    }
    this.mediaRunning?.delete(key);
    this.mediaEnded ??= new Set();
    if (this.mediaEnded.size < MAX_STREAMS * 4) this.mediaEnded.add(key);
    if (silent && (this.mediaSilentSince === null || timeMs > this.mediaSilentSince))
      this.mediaSilentSince = timeMs;
    this.stamp++;
  }

  /**
   * When an answered call whose end was not seen is over because its media went silent: every stream
   * known to it has ended by silence, and nothing (SIP or media) came for `silenceMs` after the last
   * of them. Null while a stream runs, without any, or when the call ended otherwise.
   */
  mediaSilentAt(silenceMs: number): number | null {
    if (silenceMs <= 0 || this.answer === null || this.byeAt !== null) return null;
    if (this.mediaSilentSince === null || (this.mediaRunning?.size ?? 0) > 0) return null;
    return Math.max(this.lastSeen, this.mediaSilentSince) + silenceMs;
  }

  private hopOf(event: CaptureEvent, depth: number, timeMs: number): Hop | null {
    const from = addressOf(event.srcIp, event.srcPort);
    const key = `${from}|${depth}`;
    let hop = this.hops.get(key);
    if (hop === undefined) {
      if (this.hops.size >= MAX_HOPS) return null;
      hop = { from, firstSeen: timeMs, branches: [] };
      this.hops.set(key, hop);
    }
    return hop;
  }

  /** Sent on the edge hop by the caller (its address to the edge's destination). */
  private fromCaller(event: CaptureEvent): boolean {
    return (
      event.srcPort === this.caller.port &&
      event.dstPort === this.edgeToPort &&
      event.srcIp === this.caller.ip &&
      event.dstIp === this.edgeToIp
    );
  }

  /** Sent on the edge hop back to the caller. */
  private toCaller(event: CaptureEvent): boolean {
    return (
      event.dstPort === this.caller.port &&
      event.srcPort === this.edgeToPort &&
      event.dstIp === this.caller.ip &&
      event.srcIp === this.edgeToIp
    );
  }

  /** The callee's side: where the call was answered, else the deepest hop the INVITE reached. */
  private calleeParty(): CallParty {
    let best: Hop | null = null;
    let bestAnswered = false;
    for (const hop of this.hops.values()) {
      const answered = hop.branches.some((b) => b.answered);
      if (
        best === null ||
        (answered && !bestAnswered) ||
        (answered === bestAnswered && hop.firstSeen >= best.firstSeen)
      ) {
        best = hop;
        bestAnswered = answered;
      }
    }
    const to = (best === null ? '' : hopTarget(best)) || this.edgeTo;
    const cut = to.lastIndexOf(':');
    const ip = to.slice(0, cut).replace(/^\[|\]$/g, '');
    return { ip, port: Number(to.slice(cut + 1)), vm: this.calleeVm, userAgent: this.calleeAgent };
  }

  /**
   * The record as of `now` (capture time, ms). `closedBy` says why a call whose end was not seen is
   * being closed (null: it ended, or it is still in progress and this is a progress version).
   */
  record(now: number, closedBy: CallRecord['closedBy']): CallRecord {
    const last = this.callerInvites.at(-1);
    const finalStatus = last?.finalStatus ?? null;
    const answeredAt = this.answer;
    const timedOut = last !== undefined && finalStatus === null && now >= this.noAnswerAt;
    const outcome = outcomeOf(finalStatus, answeredAt !== null, this.cancelledAt !== null, timedOut);
    let end: number;
    let endedBy: CallRecord['endedBy'];
    let reason: SipReason | null = null;
    if (this.byeAt !== null) {
      end = this.byeAt;
      endedBy = this.byeByCaller ? 'caller' : 'callee';
      reason = this.byeReason;
    } else if (answeredAt !== null) {
      end = Math.max(this.lastSeen, answeredAt);
      endedBy = closedBy === 'max-duration' || closedBy === 'media-silence' ? 'timeout' : 'unknown';
    } else if (this.cancelledAt !== null) {
      end = this.cancelledAt;
      endedBy = 'caller';
      reason = this.cancelReason;
    } else if (last?.finalAt != null && finalStatus !== null) {
      end = last.finalAt;
      endedBy = outcome === 'failed' ? 'network' : 'callee';
      reason = last.reason;
    } else if (outcome === 'noAnswer') {
      end = this.noAnswerAt;
      endedBy = 'network';
    } else {
      end = this.lastSeen;
      endedBy = 'unknown';
    }
    const firstResponse = this.ringing ?? this.callerInvites.find((i) => i.finalAt !== null)?.finalAt ?? null;
    const hops: CallHop[] = [...this.hops.values()].map((h) => ({
      from: h.from,
      to: hopTarget(h),
      branches: h.branches.map((b) => ({
        branch: b.id,
        to: b.to,
        start: b.start,
        finalStatus: b.finalStatus,
        retransmissions: b.retransmissions,
      })),
    }));
    return {
      callId: this.callId,
      linkedCallIds: [...this.linkedCallIds],
      edgeCallId: this.link.edgeCallId,
      linkedBy: this.link.linkedBy,
      correlation: { xCid: this.keys.xCid, sessionId: this.keys.sessionId, icid: this.keys.icid },
      from: this.from,
      to: this.to,
      fromTag: this.fromTag,
      toTag: this.toTag,
      requestUri: this.requestUri,
      caller: this.caller,
      callee: this.calleeParty(),
      start: this.start,
      ringing: this.ringing,
      answer: answeredAt,
      end,
      pddMs: firstResponse === null ? null : firstResponse - this.start,
      setupMs: answeredAt === null ? null : answeredAt - this.start,
      ringMs: this.ringing === null ? null : (answeredAt ?? end) - this.ringing,
      billsec: answeredAt === null ? 0 : Math.max(0, end - answeredAt) / 1000,
      durationSec: Math.max(0, end - this.start) / 1000,
      outcome,
      finalStatus:
        answeredAt !== null
          ? (this.callerInvites.find((i) => i.finalAt === answeredAt)?.finalStatus ?? 200)
          : finalStatus,
      reasonPhrase: last?.reasonPhrase ?? null,
      reason: reason === null ? null : { protocol: reason.protocol, cause: reason.cause, text: reason.text },
      endedBy,
      // A timed-out INVITE has its end (Timer B): only calls whose end is unknown say why they closed.
      closedBy: this.ended || outcome === 'noAnswer' ? null : closedBy,
      codecs: { offered: this.offered, answered: this.answered },
      // In a canonical order: a capture and the store deliver a call's final reports in different orders.
      streams: [...this.streams].sort(compareStreams),
      inviteTransactions: this.callerInvites.length,
      authChallenges: this.authChallenges,
      reInvites: this.reInviteKeys?.size ?? 0,
      reInvitesRejected: this.reInvitesRejected?.size ?? 0,
      messages: this.messages,
      retransmissions: this.retransmissions,
      byeAnswered: this.byeAnswered,
      hops,
      node: this.node,
    };
  }
}

/** A canonical order of streams (capture and store deliver final reports in different orders). */
export function compareStreams(a: CallStream, b: CallStream): number {
  const key = (s: CallStream) => `${s.src}|${s.srcPort}|${s.dst}|${s.dstPort}|${s.ssrc}`;
  const ka = key(a);
  const kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

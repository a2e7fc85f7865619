/**
 * What every call plan is made of: the outcomes the generator can write, the SIP events of a ladder,
 * and the ground truth of each Call-ID in the call record's own terms (core/call.ts), so that the call
 * engine's tests compare a record with its truth field by field.
 */
import type { CallEndedBy, CallHop, CallOutcome } from '../../core/call.js';
import type { Host } from './frames.js';
import type { Rng } from './random.js';
import type { Codec, RtpStreamPlan } from './rtp.js';
import { type SipReason, sipAddress } from './sip-text.js';

/**
 * What the generator makes of a call. The first six are the original mix; later ones are only drawn when
 * the options weigh them, so captures of the original mix keep their bytes.
 */
export type Outcome =
  | 'answered'
  | 'busy'
  | 'cancelled'
  | 'unavailable'
  | 'noAnswer'
  | 'challenged'
  | 'rejected'
  | 'redirected'
  | 'failed'
  | 'calleeHangup'
  | 'reInvite'
  | 'b2bua'
  | 'proxied'
  | 'proxiedFailover';

// Order matters: apportion() and the draws behind it follow it, so new outcomes go at the end.
export const OUTCOMES: readonly Outcome[] = [
  'answered',
  'busy',
  'cancelled',
  'unavailable',
  'noAnswer',
  'challenged',
  'rejected',
  'redirected',
  'failed',
  'calleeHangup',
  'reInvite',
  'b2bua',
  'proxied',
  'proxiedFailover',
];

/** Outcomes whose calls cross a third VM (a PBX or a proxy). */
export const VIA_MIDDLE: readonly Outcome[] = ['b2bua', 'proxied', 'proxiedFailover'];

/** One SIP message as the mirror sees it. */
export interface SipEvent {
  /** Capture time, ns relative to the capture start. */
  time: number;
  src: Host;
  dst: Host;
  callId: string;
  text: string;
  /** Request method, or null for a response. */
  method: string | null;
  /** Response status code, or null for a request. */
  code: number | null;
  /** A UDP retransmission of an earlier request (same bytes, same branch and CSeq). */
  resent: boolean;
  /** A proxy's forward of a message already on the wire (a request on its next hop, a relayed response). */
  copy: boolean;
}

export interface CallTruth {
  callId: string;
  /** From / To address-of-record URIs of the initial INVITE. */
  from: string;
  to: string;
  /** The VMs at the ends of this Call-ID: a B2BUA leg ends at the PBX; a proxied call at the VM that answered. */
  callerVm: string;
  calleeVm: string;
  outcome: Outcome;
  /** Final response to the last INVITE; null when none came (timeout). */
  finalStatus: number | null;
  /** Epoch seconds (as written to the capture) of the first INVITE. */
  start: number;
  /** First 18x (post-dial delay ends here); null when none was sent. */
  ringing: number | null;
  /** 200 OK to INVITE; null when not answered. */
  answer: number | null;
  /** BYE (answered), CANCEL (cancelled), final response (refused) or Timer B expiry (32 s). */
  end: number;
  hangupBy: 'caller' | 'callee' | null;
  /** INVITE transactions (2 for a 407-challenged call); retransmissions are not new attempts. */
  attempts: number;
  /**
   * SIP messages of this Call-ID written to the capture, retransmissions included. Unlike the record's
   * `messages`, a proxied call counts each hop's copy (the mirror wrote them all): see distinctMessages.
   */
  messages: number;

  // ---- The same call in the call record's terms (core/call.ts): same names, same values. ----
  recordOutcome: CallOutcome;
  endedBy: CallEndedBy;
  /** Reason phrase of `finalStatus`'s response. */
  reasonPhrase: string | null;
  /** Reason header of the ending message (BYE, CANCEL or final response); null when it had none. */
  reason: SipReason | null;
  /** From tag of the initial INVITE. */
  fromTag: string;
  /** To tag of the answered dialog, else of the final response, else null. */
  toTag: string | null;
  /** The other leg's Call-ID for a B2BUA leg, else empty. */
  linkedCallIds: string[];
  /** B2BUA legs: 'a' is the caller's edge (caller VM → PBX), 'b' the PBX → callee leg; null otherwise. */
  leg: 'a' | 'b' | null;
  /** The proxy a proxied call crossed; null otherwise. */
  proxyVm: string | null;
  /** Address pairs the INVITE crossed: 1 direct, 2 through a proxy (the record's hops.length). */
  hops: number;
  /**
   * The record's `hops`: per hop its INVITE transactions. A proxy's failover is a second branch of the
   * proxy's hop even though it goes to another address; the hop's `to` is the destination that answered.
   */
  hopPath: CallHop[];
  /** The caller's INVITE transactions (re-INVITEs are not counted here but in reInvites). */
  inviteTransactions: number;
  authChallenges: number;
  reInvites: number;
  reInvitesRejected: number;
  /** Messages of this Call-ID that were resends. */
  retransmissions: number;
  /**
   * The record's `messages`: as `messages`, but a proxy's forwards of a message counted once. The proxy's
   * own messages (its 100 Trying, its ACK of a failed branch) are messages of their own.
   */
  distinctMessages: number;
  /** Answered, and ended by a BYE answered 2xx (every answered call the generator writes is). */
  byeAnswered: boolean;
  /** The first leg of the end-to-end call: leg A's Call-ID for both B2BUA legs, else the call's own. */
  edgeCallId: string;
  /** How leg B links to leg A (its X-CID, the strongest key it carries); null for leg A and other calls. */
  linkedBy: 'x-cid' | null;
  /** What the initial INVITE carried for linking: X-CID, the sender's RFC 7989 UUID (not the null one). */
  correlation: { xCid: string | null; sessionId: string | null; icid: string | null };
  /**
   * Capture times in ms since the Unix epoch, at the capture's resolution. Through a proxy, ringing and
   * answer are the caller's edge (the 18x and 200 the proxy relayed to it), start and end the first
   * INVITE and BYE on the wire (a callee's BYE reaches the proxy before the caller).
   */
  startMs: number;
  ringingMs: number | null;
  answerMs: number | null;
  endMs: number;
  /** Start → first 18x, else → the final response; null without either. */
  pddMs: number | null;
  /** Start → answer. */
  setupMs: number | null;
  /** First 18x → answer (→ end when not answered); null without an 18x. */
  ringMs: number | null;
  /** Answer → end, seconds (fractional, at capture resolution); 0 when not answered. */
  billsec: number;
  /** Start → end, seconds. */
  durationSec: number;
}

/** A media stream and the Call-ID whose SDP set it up. */
export interface CallMedia {
  callId: string;
  stream: RtpStreamPlan;
}

/** Everything fixed at the moment a call starts; the generator turns it into sources. */
export interface CallPlan {
  /** One per Call-ID: a B2BUA call has two. */
  truths: CallTruth[];
  /** Time-ordered. */
  events: SipEvent[];
  media: CallMedia[];
}

export interface CallSetup {
  callId: string;
  startNs: number;
  outcome: Outcome;
  /** How many calls of this outcome came before: outcomes with two variants alternate on it. */
  ordinal: number;
  caller: Host;
  callee: Host;
  /** The PBX (b2bua) or proxy (proxied, proxiedFailover); null for direct calls. */
  middle: Host | null;
  /** proxiedFailover: the destination the proxy tries first, which answers 503. */
  firstDestination: Host | null;
  /** b2bua: leg B's Call-ID, the PBX's RTP ports towards caller and callee, and its SSRCs that way. */
  legB: { callId: string; rtpPorts: [number, number]; ssrcs: [number, number] } | null;
  callerRtpPort: number;
  calleeRtpPort: number;
  talkMs: number;
  codec: Codec;
  ptimeMs: number;
  rtpEnabled: boolean;
  jitterMs: number;
  lossRate: number;
  reorderRate: number;
  vlan: number | null;
  /** b2bua: the PBX refreshes the session mid-call with a re-INVITE on each leg. */
  sessionRefresh: boolean;
  /** Distinct SSRCs for the two directions. */
  ssrcs: [number, number];
  /** Capture time as written, epoch seconds. */
  toEpoch: (ns: number) => number;
  /** Capture time as written, ms since the epoch. */
  toEpochMs: (ns: number) => number;
  /** Written time of `toNs` minus written time of `fromNs`, ns (an integer: no rounding from the epoch). */
  nsBetween: (fromNs: number, toNs: number) => number;
}

/** The SIP messages of one call plan, on a clock of ms since the call's start. */
export class Ladder {
  readonly events: SipEvent[] = [];

  constructor(private readonly startNs: number) {}

  /** ns since the capture start of `ms` on the call's clock. */
  at(ms: number): number {
    return this.startNs + Math.round(ms * 1e6);
  }

  send(
    ms: number,
    src: Host,
    dst: Host,
    callId: string,
    text: string,
    method: string | null,
    code: number | null,
    resent = false,
    copy = false,
  ): void {
    this.events.push({ time: this.at(ms), src, dst, callId, text, method, code, resent, copy });
  }

  /** Events in capture order; equal times keep the order they were sent in. */
  sorted(): SipEvent[] {
    return this.events.sort((a, b) => a.time - b.time);
  }
}

/** A fresh RFC 3261 branch (the magic cookie, then random hex). */
export function newBranch(rng: Rng): string {
  return `z9hG4bK${rng.hex(8)}`;
}

/** One INVITE transaction of a hop, on the call's clock. */
export interface BranchFacts {
  branch: string;
  /** Where this INVITE went when not the hop's `to` (a proxy's failed first destination). */
  to?: Host;
  startAt: number;
  finalStatus: number | null;
  retransmissions: number;
}

export interface HopFacts {
  from: Host;
  to: Host;
  branches: BranchFacts[];
}

/** What a planner knows about one Call-ID; times in ms on the call's clock, as passed to Ladder.send. */
export interface LegFacts {
  callId: string;
  from: string;
  to: string;
  caller: Host;
  callee: Host;
  fromTag: string;
  toTag: string | null;
  finalStatus: number | null;
  reasonPhrase: string | null;
  reason: SipReason | null;
  recordOutcome: CallOutcome;
  endedBy: CallEndedBy;
  hangupBy: 'caller' | 'callee' | null;
  startAt: number;
  ringingAt: number | null;
  answerAt: number | null;
  /** The final response the caller got (for the PDD when no 18x came). */
  finalAt: number | null;
  endAt: number;
  inviteTransactions: number;
  authChallenges?: number;
  reInvites?: number;
  reInvitesRejected?: number;
  linkedCallIds?: string[];
  leg?: 'a' | 'b' | null;
  edgeCallId?: string;
  linkedBy?: 'x-cid' | null;
  correlation?: CallTruth['correlation'];
  proxy?: Host | null;
  hops: HopFacts[];
}

/** One leg's truth: the facts, the message counts of its Call-ID, and the times as the capture has them. */
export function legTruth(s: CallSetup, ladder: Ladder, f: LegFacts, outcome: Outcome): CallTruth {
  let messages = 0;
  let retransmissions = 0;
  let copies = 0;
  for (const e of ladder.events) {
    if (e.callId !== f.callId) continue;
    messages++;
    if (e.resent) retransmissions++;
    if (e.copy) copies++;
  }
  const ns = (ms: number) => ladder.at(ms);
  const epochOrNull = (ms: number | null) => (ms === null ? null : s.toEpoch(ns(ms)));
  const epochMsOrNull = (ms: number | null) => (ms === null ? null : s.toEpochMs(ns(ms)));
  // Dividing the integer ns once gives the double nearest the true value (no 1.0350650000000001).
  const msBetween = (a: number, b: number) => s.nsBetween(ns(a), ns(b)) / 1e6;
  const secondsBetween = (a: number, b: number) => s.nsBetween(ns(a), ns(b)) / 1e9;
  const pddEnd = f.ringingAt ?? f.finalAt;
  return {
    callId: f.callId,
    from: f.from,
    to: f.to,
    callerVm: f.caller.name,
    calleeVm: f.callee.name,
    outcome,
    finalStatus: f.finalStatus,
    start: s.toEpoch(ns(f.startAt)),
    ringing: epochOrNull(f.ringingAt),
    answer: epochOrNull(f.answerAt),
    end: s.toEpoch(ns(f.endAt)),
    hangupBy: f.hangupBy,
    attempts: f.inviteTransactions,
    messages,
    recordOutcome: f.recordOutcome,
    endedBy: f.endedBy,
    reasonPhrase: f.reasonPhrase,
    reason: f.reason === null ? null : { ...f.reason },
    fromTag: f.fromTag,
    toTag: f.toTag,
    linkedCallIds: f.linkedCallIds ?? [],
    leg: f.leg ?? null,
    proxyVm: f.proxy?.name ?? null,
    hops: f.hops.length,
    hopPath: f.hops.map((h) => ({
      from: sipAddress(h.from),
      to: sipAddress(h.to),
      branches: h.branches.map((b) => ({
        branch: b.branch,
        to: sipAddress(b.to ?? h.to),
        start: s.toEpochMs(ns(b.startAt)),
        finalStatus: b.finalStatus,
        retransmissions: b.retransmissions,
      })),
    })),
    inviteTransactions: f.inviteTransactions,
    authChallenges: f.authChallenges ?? 0,
    reInvites: f.reInvites ?? 0,
    reInvitesRejected: f.reInvitesRejected ?? 0,
    retransmissions,
    distinctMessages: messages - copies,
    byeAnswered: f.answerAt !== null,
    edgeCallId: f.edgeCallId ?? f.callId,
    linkedBy: f.linkedBy ?? null,
    correlation: f.correlation ?? { xCid: null, sessionId: null, icid: null },
    startMs: s.toEpochMs(ns(f.startAt)),
    ringingMs: epochMsOrNull(f.ringingAt),
    answerMs: epochMsOrNull(f.answerAt),
    endMs: s.toEpochMs(ns(f.endAt)),
    pddMs: pddEnd === null ? null : msBetween(f.startAt, pddEnd),
    setupMs: f.answerAt === null ? null : msBetween(f.startAt, f.answerAt),
    ringMs: f.ringingAt === null ? null : msBetween(f.ringingAt, f.answerAt ?? f.endAt),
    billsec: f.answerAt === null ? 0 : secondsBetween(f.answerAt, f.endAt),
    durationSec: secondsBetween(f.startAt, f.endAt),
  };
}

/** One direction of a call's media: `talkMs` worth of packets from `startMs` on the call's clock. */
export function streamPlan(
  s: CallSetup,
  ladder: Ladder,
  src: Host,
  dst: Host,
  srcPort: number,
  dstPort: number,
  ssrc: number,
  startMs: number,
): RtpStreamPlan {
  return {
    src,
    dst,
    srcPort,
    dstPort,
    ssrc,
    codec: s.codec,
    ptimeMs: s.ptimeMs,
    startNs: ladder.at(startMs),
    packets: Math.floor(s.talkMs / s.ptimeMs),
    jitterMs: s.jitterMs,
    lossRate: s.lossRate,
    reorderRate: s.reorderRate,
    vlan: s.vlan,
  };
}

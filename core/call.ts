/**
 * The call record: one per call, however many messages, retransmissions, hops and re-INVITEs it
 * took. The call engine (analyze/calls/) makes them from SIP messages; the summary, the store,
 * dashboards and alerts read them. docs/CALLS.md defines every field, outcome and KPI.
 */

/**
 * How a call ended, from the caller's side (the final response of its INVITE, or the lack of one):
 * - answered: a 2xx;
 * - busy: 486 or 600;
 * - cancelled: the caller cancelled before an answer (CANCEL, 487);
 * - rejected: the user side said no: 401/407 left unanswered, 403, 404, 480, 603, 604, 606, 607, 608;
 * - redirected: a 3xx;
 * - failed: the network or a server failed it: 5xx, other 6xx, 408, any other 4xx;
 * - noAnswer: no final response at all (the INVITE timed out: Timer B, 32 s, or Timer C, 3 min after
 *   the last 18x of a call that rang);
 * - inProgress: no final response yet when the capture ended (or the record was written).
 */
export type CallOutcome =
  | 'answered'
  | 'busy'
  | 'cancelled'
  | 'rejected'
  | 'redirected'
  | 'failed'
  | 'noAnswer'
  | 'inProgress';

export const CALL_OUTCOMES: readonly CallOutcome[] = [
  'answered',
  'busy',
  'cancelled',
  'rejected',
  'redirected',
  'failed',
  'noAnswer',
  'inProgress',
];

/** Who or what ended the call. */
export type CallEndedBy =
  | 'caller' // BYE from the caller, or its CANCEL
  | 'callee' // BYE from the callee, or its final refusal
  | 'network' // a failure response from a proxy or server (5xx, 408...) or no answer at all
  | 'timeout' // closed by callscope: longer than the maximum duration, or its media went silent
  | 'unknown'; // answered, end not seen (capture ended, or the BYE was not mirrored)

/** How a later leg of a call was linked to an earlier one (analyze/calls/linker.ts). */
export type CallLinkMethod = 'x-cid' | 'session-id' | 'icid' | 'call-id-rule' | 'heuristic';

/** A transport address of a party: where its SIP came from or went to. */
export interface CallParty {
  ip: string;
  port: number;
  /** The VM it belongs to (OVS attribution), when known. */
  vm: string | null;
  userAgent: string | null;
}

/** One media stream linked to the call (a final media report), per direction. */
export interface CallStream {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  ssrc: number;
  codec: string | null;
  packets: number;
  lost: number;
  lossPercent: number;
  maxJitterMs: number;
  meanJitterMs: number;
  mos: number | null;
}

/**
 * One step of the call's path (caller → proxy, proxy → destination): the INVITEs one address sent
 * with as many Vias. `to` is the destination that answered, else the last one tried.
 */
export interface CallHop {
  from: string;
  to: string;
  /** The INVITE transactions of this hop (branches: a proxy's failover is a second one). */
  branches: CallBranch[];
}

/** One INVITE transaction of a hop, where it went, and how it ended. */
export interface CallBranch {
  /** Via branch of the INVITE. */
  branch: string;
  /** Its destination address. */
  to: string;
  /** Capture time (ms since the Unix epoch) of the first INVITE of the transaction. */
  start: number;
  /** Final status it got; null when none (no answer: the proxy timed it out, or it never came). */
  finalStatus: number | null;
  /** The INVITE's retransmissions on this hop. */
  retransmissions: number;
}

export interface CallRecord {
  /** The Call-ID (of the caller's leg). */
  callId: string;
  /**
   * Call-IDs of the other legs of the same end-to-end call (a B2BUA's legs: X-CID, Session-ID,
   * icid-value...), as known when the record was made.
   */
  linkedCallIds: string[];
  /**
   * The first leg of the end-to-end call, where the KPIs count it: this record's own Call-ID unless it
   * is a later leg (then `linkedBy` says how it was linked to an earlier one).
   */
  edgeCallId: string;
  linkedBy: CallLinkMethod | null;
  /** What the leg's initial INVITE carried for linking (docs/CALLS.md, "Legs"). */
  correlation: { xCid: string | null; sessionId: string | null; icid: string | null };
  /** The user parts and tags of From and To of the first INVITE, and its Request-URI. */
  from: string;
  to: string;
  fromTag: string;
  toTag: string | null;
  requestUri: string | null;
  caller: CallParty;
  callee: CallParty;
  /** Capture times, ms since the Unix epoch. */
  start: number;
  /** First 18x (before the final answer: one after it is no alerting). */
  ringing: number | null;
  /** 2xx to the INVITE. */
  answer: number | null;
  /** BYE, CANCEL, the final failure, the timeout, or the last message when the end was not seen. */
  end: number;
  /** Post-dial delay: start → first 18x, else → the final response; null without either. */
  pddMs: number | null;
  /** Start → answer. */
  setupMs: number | null;
  /** First 18x → answer (or → end when not answered). */
  ringMs: number | null;
  /** Answer → end (billable seconds). */
  billsec: number;
  /** Start → end. */
  durationSec: number;
  outcome: CallOutcome;
  /** The final status the caller got for its (last) INVITE; null without one. */
  finalStatus: number | null;
  reasonPhrase: string | null;
  /** The Reason header of the ending message (BYE, CANCEL or final response). */
  reason: { protocol: string; cause: number | null; text: string | null } | null;
  endedBy: CallEndedBy;
  /**
   * The call was closed without its end being seen, and why: longer than the maximum duration, the
   * capture ended, or its state was evicted to stay within the bound of open calls.
   */
  closedBy: 'max-duration' | 'media-silence' | 'end-of-capture' | 'evicted' | null;
  /** Codecs of the SDP offer (the caller's) and answer (the callee's), by rtpmap name. */
  codecs: { offered: string[]; answered: string[] };
  streams: CallStream[];
  /** INVITE transactions of the caller (a 407 challenge then retry is 2; the call is one attempt). */
  inviteTransactions: number;
  /** 401/407 challenges the caller answered with a new INVITE. */
  authChallenges: number;
  /** Re-INVITEs and UPDATEs in the dialog, and how many were refused (a refusal does not end a call). */
  reInvites: number;
  reInvitesRejected: number;
  /** SIP messages of the call, retransmissions included (each seen once: copies on other hops excluded). */
  messages: number;
  retransmissions: number;
  /** A BYE of the call was answered 2xx (RFC 6076 session completion; SCR counts answered calls only). */
  byeAnswered: boolean;
  hops: CallHop[];
  /** Capture node that saw it. */
  node: string;
}

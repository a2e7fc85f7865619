/**
 * The registration record: one per REGISTER attempt, however many transactions (a 401/407 challenge
 * and the new REGISTER that answers it), retransmissions and proxy hops it took. docs/REGISTRATIONS.md
 * defines every field and outcome. Times are capture times in ms since the Unix epoch.
 */

/**
 * How a REGISTER attempt ended, from the UA's side (the final response of its last REGISTER):
 * - registered: a 2xx to a REGISTER that adds or refreshes at least one binding (expires > 0);
 * - unregistered: a 2xx to a REGISTER that removes bindings only (every contact expires 0, or `*`);
 * - queried: a 2xx to a REGISTER without Contact (a query of the bindings: nothing changed);
 * - failed: a final ≥ 300 other than a challenge the UA answered (403, 404, 423, 5xx, 408...);
 * - challenged: a 401/407 the UA never answered with a new REGISTER on the same Call-ID;
 * - noResponse: no final response within Timer F (64·T1 = 32 s) of the last REGISTER;
 * - inProgress: no final response yet when the capture ended or the record was forced out.
 */
export type RegistrationOutcome =
  | 'registered'
  | 'unregistered'
  | 'queried'
  | 'failed'
  | 'challenged'
  | 'noResponse'
  | 'inProgress';

export const REGISTRATION_OUTCOMES: readonly RegistrationOutcome[] = [
  'registered',
  'unregistered',
  'queried',
  'failed',
  'challenged',
  'noResponse',
  'inProgress',
];

/** Outcomes that are a success of the registrar (RRD is measured for these only). */
export function isRegistrationSuccess(outcome: RegistrationOutcome): boolean {
  return outcome === 'registered' || outcome === 'unregistered' || outcome === 'queried';
}

/** Outcomes that are a failed registration (RFC 6076 IRA's numerator). */
export function isRegistrationFailure(outcome: RegistrationOutcome): boolean {
  return outcome === 'failed' || outcome === 'challenged' || outcome === 'noResponse';
}

/** One Contact of the REGISTER: its URI and the expiry it asked for (seconds; null: not said). */
export interface RegistrationContact {
  uri: string;
  expires: number | null;
}

export interface RegistrationRecord {
  callId: string;
  /** CSeq numbers of the first and of the last REGISTER of the attempt (equal without a challenge). */
  firstCseq: number;
  cseq: number;
  /** The first REGISTER of the attempt (capture time, ms). */
  time: number;
  /** Its final response; time + Timer F for noResponse; the last message seen while in progress. */
  end: number;
  /** The address of record: user and domain of the To URI (null when absent). */
  user: string | null;
  domain: string | null;
  /** The Contacts of the last REGISTER (at most 16; `*` is listed as the URI "*"). */
  contacts: RegistrationContact[];
  /**
   * Expiry asked for, seconds: the first contact's `expires` parameter, else the Expires header, else
   * null (the registrar's default applies).
   */
  requestedExpires: number | null;
  /**
   * Expiry the registrar granted (2xx only), seconds: the `expires` parameter of the 2xx's Contact that
   * matches the REGISTER's first contact, else the 2xx's Expires header, else null.
   */
  grantedExpires: number | null;
  /** The UA's side: where the REGISTER came from on the wire (the edge where it entered the capture). */
  uaIp: string;
  uaPort: number;
  /** The registrar's side (or the first proxy): where that REGISTER went. */
  registrarIp: string;
  registrarPort: number;
  /** VM ids of the UA's and the registrar's side (OVS attribution), null when unknown. */
  srcVm: string | null;
  dstVm: string | null;
  transport: string;
  /** User-Agent of the REGISTER; Server (else User-Agent) of the final response. */
  userAgent: string | null;
  server: string | null;
  /** Final status of the last REGISTER (null without one) and its reason phrase. */
  finalStatus: number | null;
  reasonPhrase: string | null;
  outcome: RegistrationOutcome;
  /**
   * RFC 6076 RRD (Registration Request Delay): the first REGISTER of the attempt → its final 2xx, in ms
   * (challenge round trips included, as the RFC's flow shows). Null unless the attempt succeeded.
   */
  rrdMs: number | null;
  /** The first REGISTER → the final response, whatever its status (null without one), ms. */
  responseMs: number | null;
  /** REGISTER transactions in the attempt (a challenge answered makes 2). */
  transactions: number;
  /** 401/407 challenges the UA answered with a new REGISTER (same Call-ID, higher CSeq). */
  authChallenges: number;
  /** 423 (Interval Too Brief) answered with a new REGISTER the same way. */
  intervalRetries: number;
  /** Retransmitted REGISTERs and final responses at the edge (copies on other hops or nodes excluded). */
  retransmissions: number;
  /**
   * Why a record was closed before its end was seen: the capture ended, or its state was evicted to
   * stay within the bound of open attempts. Null when the attempt ended (or timed out) in the capture.
   */
  closedBy: 'end-of-capture' | 'evicted' | null;
  /** Capture node that saw the first REGISTER. */
  node: string;
}

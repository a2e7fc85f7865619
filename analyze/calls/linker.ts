/**
 * B2BUA legs with different Call-IDs linked into one end-to-end call. Each leg is linked, when it
 * starts, to an earlier leg it names or shares a key with; the first leg of the chain is the call's
 * edge, where KPIs count it. Keys, strongest first (docs/CALLS.md, "Legs"):
 * - `x-cid`: the leg's INVITE names the other leg's Call-ID (X-CID, X-Call-ID and kin);
 * - `session-id`: RFC 7989 Session-ID, whose UUID a B2BUA passes through unchanged;
 * - `icid`: the P-Charging-Vector icid-value (IMS), the same on every leg;
 * - `call-id-rule`: the Call-ID with a configured prefix or suffix removed is the other leg's;
 * - `heuristic` (configurable, never certain): same dialled user, the leg leaves the address the
 *   earlier leg went to, within a short window.
 *
 * Legs are taken in start order (ties by Call-ID), which is the order a capture delivers them; the
 * store's job hands a group's legs in the same order, so both give the same links. State is a bounded
 * index of recent legs (oldest dropped first, counted): a leg starting after its partner was dropped
 * stays unlinked, and says so by being its own edge.
 */
import { ownedCopy, ownedKeyPart } from '../../capture/sip/bounded-map.js';
import type { CallLinkMethod } from '../../core/call.js';
import type { SipMessage } from '../../core/sip-message.js';

/** What a leg's initial INVITE offers for linking. */
export interface LegKeys {
  callId: string;
  start: number;
  /** The other leg's Call-ID named by the INVITE (X-CID...). */
  xCid: string | null;
  /** RFC 7989 Session-ID UUID of the INVITE's sender (lower case; null when absent or the null UUID). */
  sessionId: string | null;
  /** P-Charging-Vector icid-value. */
  icid: string | null;
  /** Dialled user (To), the leg's source address and the address its INVITE went to. */
  toUser: string;
  callerIp: string;
  calleeIp: string;
}

export interface LinkOptions {
  /** Call-ID affixes a B2BUA adds to make a leg's Call-ID from the first leg's (HOMER: suffix "_b2b-1"). */
  callIdPrefix?: string;
  callIdSuffix?: string;
  /** Window of the caller/callee/time heuristic in ms; 0 turns it off (default 2,000). */
  heuristicWindowMs?: number;
  /** Legs linked by a key within this long of the earlier leg's start (default 10 minutes). */
  windowMs?: number;
  /** Recent legs remembered (default 200,000). */
  maxLegs?: number;
}

export interface LegLink {
  /** Call-ID of the first leg of the chain (the leg's own when it links to nothing). */
  edgeCallId: string;
  /** How the leg was linked to an earlier one; null for an edge. */
  linkedBy: CallLinkMethod | null;
  /** The earlier leg it linked to. */
  linkedTo: string | null;
}

interface Known {
  keys: LegKeys;
  edgeCallId: string;
}

export const DEFAULT_LINK_WINDOW_MS = 600_000;
export const DEFAULT_HEURISTIC_WINDOW_MS = 2_000;
const NULL_UUID = /^0+$/;

/** The linking keys of an initial INVITE. */
export function legKeysOf(sip: SipMessage, start: number, callerIp: string, calleeIp: string): LegKeys {
  let sessionId: string | null = null;
  let icid: string | null = null;
  for (const [name, value] of sip.headers) {
    // Lengths first: most headers are neither, and lower-casing each name would allocate.
    if (name.length !== 10 && name.length !== 17) continue;
    if (sessionId === null && name.toLowerCase() === 'session-id') {
      const uuid = value.split(';', 1)[0]!.trim().toLowerCase();
      if (/^[0-9a-f]{32}$/.test(uuid) && !NULL_UUID.test(uuid)) sessionId = uuid;
    } else if (icid === null && name.toLowerCase() === 'p-charging-vector') {
      const m = /(?:^|;)\s*icid-value\s*=\s*("?)([^";\s]+)\1/i.exec(value);
      if (m) icid = m[2]!.slice(0, 256);
    }
  }
  // Kept while the leg is remembered: copies, not substrings of the message.
  return {
    callId: ownedCopy(sip.callId ?? ''),
    start,
    xCid: sip.correlationCallId ? ownedKeyPart(sip.correlationCallId) : null,
    sessionId: sessionId === null ? null : ownedCopy(sessionId),
    icid: icid === null ? null : ownedCopy(icid),
    toUser: ownedCopy(sip.to?.uri?.user ?? ''),
    callerIp,
    calleeIp,
  };
}

/** The index of recent legs and the rules: feed legs in start order. */
export class CallLinker {
  private readonly byCallId = new Map<string, Known>();
  private readonly byKey = new Map<string, Known>();
  private readonly recent: Known[] = [];
  private head = 0;
  private readonly windowMs: number;
  private readonly heuristicWindowMs: number;
  private readonly maxLegs: number;
  /** Legs dropped from the index to stay within maxLegs. */
  dropped = 0;

  constructor(private readonly options: LinkOptions = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_LINK_WINDOW_MS;
    this.heuristicWindowMs = options.heuristicWindowMs ?? DEFAULT_HEURISTIC_WINDOW_MS;
    this.maxLegs = Math.max(1, options.maxLegs ?? 200_000);
  }

  /** Links a leg to the legs before it, and remembers it for the legs after it. */
  link(keys: LegKeys): LegLink {
    this.expire(keys.start);
    const found = this.find(keys);
    const edgeCallId = found?.known.edgeCallId ?? keys.callId;
    const known: Known = { keys, edgeCallId };
    this.remember(known);
    return found === null
      ? { edgeCallId, linkedBy: null, linkedTo: null }
      : { edgeCallId, linkedBy: found.method, linkedTo: found.known.keys.callId };
  }

  private find(keys: LegKeys): { known: Known; method: CallLinkMethod } | null {
    const within = (k: Known | undefined, ms: number) =>
      k !== undefined && k.keys.callId !== keys.callId && keys.start - k.keys.start <= ms ? k : undefined;
    const byCid = within(keys.xCid ? this.byCallId.get(keys.xCid) : undefined, this.windowMs);
    if (byCid) return { known: byCid, method: 'x-cid' };
    const bySession = within(
      keys.sessionId ? this.byKey.get(`s|${keys.sessionId}`) : undefined,
      this.windowMs,
    );
    if (bySession) return { known: bySession, method: 'session-id' };
    const byIcid = within(keys.icid ? this.byKey.get(`i|${keys.icid}`) : undefined, this.windowMs);
    if (byIcid) return { known: byIcid, method: 'icid' };
    const base = this.ruleBase(keys.callId);
    const byRule = within(base === null ? undefined : this.byCallId.get(base), this.windowMs);
    if (byRule) return { known: byRule, method: 'call-id-rule' };
    if (this.heuristicWindowMs > 0) {
      const k = within(this.byKey.get(`h|${keys.toUser}|${keys.callerIp}`), this.heuristicWindowMs);
      if (k && k.keys.callerIp !== keys.callerIp) return { known: k, method: 'heuristic' };
    }
    return null;
  }

  /** The first leg's Call-ID under the configured affix rule, or null when the rule does not apply. */
  private ruleBase(callId: string): string | null {
    const { callIdPrefix: prefix, callIdSuffix: suffix } = this.options;
    let base = callId;
    if (prefix) {
      if (!base.startsWith(prefix)) return null;
      base = base.slice(prefix.length);
    }
    if (suffix) {
      if (!base.endsWith(suffix)) return null;
      base = base.slice(0, base.length - suffix.length);
    }
    return base === callId ? null : base;
  }

  private remember(known: Known): void {
    const { keys } = known;
    this.byCallId.set(keys.callId, known);
    // The first leg holding a key keeps it: later legs link to the chain's earliest.
    if (keys.sessionId && !this.byKey.has(`s|${keys.sessionId}`))
      this.byKey.set(`s|${keys.sessionId}`, known);
    if (keys.icid && !this.byKey.has(`i|${keys.icid}`)) this.byKey.set(`i|${keys.icid}`, known);
    // A B2BUA's next leg leaves the address this leg went to, for the same user: the latest leg wins.
    if (keys.toUser !== '') this.byKey.set(`h|${keys.toUser}|${keys.calleeIp}`, known);
    this.recent.push(known);
    if (this.recent.length - this.head > this.maxLegs) {
      this.forget(this.recent[this.head]!);
      this.recent[this.head++] = undefined as unknown as Known;
      this.dropped++;
    }
    if (this.head > 1024 && this.head * 2 > this.recent.length) {
      this.recent.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Legs older than the longest window can link to nothing more. */
  private expire(now: number): void {
    const horizon = now - Math.max(this.windowMs, this.heuristicWindowMs);
    while (this.head < this.recent.length && this.recent[this.head]!.keys.start < horizon) {
      this.forget(this.recent[this.head]!);
      this.recent[this.head++] = undefined as unknown as Known;
    }
  }

  private forget(known: Known): void {
    const { keys } = known;
    if (this.byCallId.get(keys.callId) === known) this.byCallId.delete(keys.callId);
    for (const key of [`s|${keys.sessionId}`, `i|${keys.icid}`, `h|${keys.toUser}|${keys.calleeIp}`])
      if (this.byKey.get(key) === known) this.byKey.delete(key);
  }
}

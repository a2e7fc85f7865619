/**
 * A failover: an address that served SIP or RTP showed up behind another MAC (another VM), as a VIP
 * moved by Pacemaker or keepalived does. Found by analyze/failover/tracker.ts in the capture process,
 * carried as a HEP_PROTO_FAILOVER_JSON event (this JSON), stored one row per failover in `failovers`.
 * docs/FAILOVER.md.
 */
import { parseIp } from './address.js';
import { type CaptureEvent, HEP_PROTO_FAILOVER_JSON } from './event.js';
import { finite, parseJsonObject } from './json.js';

/** What showed the move first. */
export type FailoverSignal = 'gratuitous-arp' | 'sip-from-new-mac' | 'rtp-from-new-mac';
export const FAILOVER_SIGNALS: readonly FailoverSignal[] = [
  'gratuitous-arp',
  'sip-from-new-mac',
  'rtp-from-new-mac',
];

/** Times are capture times in whole ms since the Unix epoch (the store keeps ms). */
export interface FailoverRecord {
  /** The move: the gratuitous ARP, or the first SIP / RTP packet from the address behind the new MAC. */
  time: number;
  /** The address that moved (the VIP). */
  address: string;
  /** Outer 802.1Q VLAN id of the frames, null when untagged (tenants may reuse addresses). */
  vlan: number | null;
  oldMac: string;
  newMac: string;
  /** The VM behind each MAC (capture/attribution.ts: the OVS inventory or a VM map), else the MAC. */
  oldVm: string;
  newVm: string;
  signal: FailoverSignal;
  /** The last SIP response the address sent from the old MAC (null: it answered nothing). */
  lastAnswerBefore: number | null;
  /** The first SIP response from the new MAC at or after the move (null: none within the wait). */
  firstAnswerAfter: number | null;
  /** firstAnswerAfter − lastAnswerBefore: how long the address answered nothing. */
  gapMs: number | null;
}

/** The JSON payload: the record's fields in this order (stable bytes, so a stable event id). */
export function failoverJson(r: FailoverRecord): string {
  return JSON.stringify({
    time: r.time,
    address: r.address,
    vlan: r.vlan,
    oldMac: r.oldMac,
    newMac: r.newMac,
    oldVm: r.oldVm,
    newVm: r.newVm,
    signal: r.signal,
    lastAnswerBefore: r.lastAnswerBefore,
    firstAnswerAfter: r.firstAnswerAfter,
    gapMs: r.gapMs,
  });
}

const MAX_TEXT = 256;

function text(value: unknown): string | null {
  return typeof value === 'string' && value.length <= MAX_TEXT && !/[\u0000-\u001f\u007f]/.test(value)
    ? value
    : null;
}

function wholeOrNull(value: unknown): number | null | undefined {
  if (value === null) return null;
  const n = finite(value);
  return n !== null && Number.isSafeInteger(n) ? n : undefined;
}

/**
 * A FailoverRecord from the JSON failoverJson writes, or null for any other shape (a HEP sender's
 * type 202 that is not ours, a broken agent): checked field by field, so nothing odd reaches a row.
 */
export function failoverFromJson(payload: Buffer): FailoverRecord | null {
  const o = parseJsonObject(payload);
  if (o === null) return null;
  const time = wholeOrNull(o.time);
  const address = text(o.address);
  const vlan = wholeOrNull(o.vlan);
  const oldMac = text(o.oldMac);
  const newMac = text(o.newMac);
  const oldVm = text(o.oldVm);
  const newVm = text(o.newVm);
  const signal = FAILOVER_SIGNALS.find((s) => s === o.signal);
  const before = wholeOrNull(o.lastAnswerBefore);
  const after = wholeOrNull(o.firstAnswerAfter);
  const gap = wholeOrNull(o.gapMs);
  if (
    time === null ||
    time === undefined ||
    address === null ||
    parseIp(address) === null ||
    vlan === undefined ||
    (vlan !== null && (vlan < 0 || vlan > 4095)) ||
    oldMac === null ||
    newMac === null ||
    oldVm === null ||
    newVm === null ||
    signal === undefined ||
    before === undefined ||
    after === undefined ||
    gap === undefined
  )
    return null;
  return {
    time,
    address,
    vlan,
    oldMac,
    newMac,
    oldVm,
    newVm,
    signal,
    lastAnswerBefore: before,
    firstAnswerAfter: after,
    gapMs: gap,
  };
}

/**
 * A failover as a HEP-like event: protocol type 0xca, the JSON as payload, the address as source, no
 * ports (IP protocol 0, which HEP gives back as transport udp). Stamped with the move's time.
 */
export function failoverEvent(
  r: FailoverRecord,
  provenance: { captureId?: number; nodeName?: string; source?: CaptureEvent['source'] },
): CaptureEvent {
  const v6 = r.address.includes(':');
  const event: CaptureEvent = {
    timestampNs: BigInt(r.time) * 1_000_000n,
    ipFamily: v6 ? 6 : 4,
    ipProtocol: 0,
    transport: 'udp',
    srcIp: r.address,
    dstIp: v6 ? '::' : '0.0.0.0',
    srcPort: 0,
    dstPort: 0,
    vlan: r.vlan,
    protoType: HEP_PROTO_FAILOVER_JSON,
    captureId: provenance.captureId ?? 0,
    nodeName: provenance.nodeName ?? '',
    correlationId: '',
    payload: Buffer.from(failoverJson(r)),
    failover: r,
    retransmission: false,
  };
  if (provenance.source !== undefined) event.source = provenance.source;
  return event;
}

/**
 * A call record as `callscope calls` shows it: one JSON object per call (every field of the record,
 * times as ISO text, the parties flattened as the NOC names them), one CSV row, or one terminal line.
 * docs/CALLS.md lists the fields.
 */
import type { CallRecord } from '../../core/call.js';

export interface CallView {
  callId: string;
  edgeCallId: string;
  linkedBy: CallRecord['linkedBy'];
  linkedCallIds: string[];
  start: string;
  ringing: string | null;
  answer: string | null;
  end: string;
  outcome: CallRecord['outcome'];
  finalStatus: number | null;
  reasonPhrase: string | null;
  reason: CallRecord['reason'];
  endedBy: CallRecord['endedBy'];
  closedBy: CallRecord['closedBy'];
  /** The call may still change (the store's open versions); false for a finished record. */
  open: boolean;
  pddMs: number | null;
  setupMs: number | null;
  ringMs: number | null;
  durationSec: number;
  billsec: number;
  from: string;
  to: string;
  fromTag: string;
  toTag: string | null;
  requestUri: string | null;
  callerIp: string;
  callerPort: number;
  calleeIp: string;
  calleePort: number;
  srcVm: string | null;
  dstVm: string | null;
  callerAgent: string | null;
  calleeAgent: string | null;
  codecs: CallRecord['codecs'];
  inviteTransactions: number;
  authChallenges: number;
  reInvites: number;
  reInvitesRejected: number;
  messages: number;
  retransmissions: number;
  byeAnswered: boolean;
  hops: CallRecord['hops'];
  /** Every INVITE branch of every hop, flattened, with its hop's index (0: the caller's). */
  branches: Array<CallRecord['hops'][number]['branches'][number] & { hop: number; from: string }>;
  streams: CallRecord['streams'];
  correlation: CallRecord['correlation'];
  node: string;
}

const iso = (ms: number | null): string | null => {
  if (ms === null || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return null;
  return new Date(ms).toISOString();
};

export function callView(r: CallRecord, open = false): CallView {
  return {
    callId: r.callId,
    edgeCallId: r.edgeCallId,
    linkedBy: r.linkedBy,
    linkedCallIds: r.linkedCallIds,
    start: iso(r.start) ?? '',
    ringing: iso(r.ringing),
    answer: iso(r.answer),
    end: iso(r.end) ?? '',
    outcome: r.outcome,
    finalStatus: r.finalStatus,
    reasonPhrase: r.reasonPhrase,
    reason: r.reason,
    endedBy: r.endedBy,
    closedBy: r.closedBy,
    open,
    pddMs: r.pddMs,
    setupMs: r.setupMs,
    ringMs: r.ringMs,
    durationSec: r.durationSec,
    billsec: r.billsec,
    from: r.from,
    to: r.to,
    fromTag: r.fromTag,
    toTag: r.toTag,
    requestUri: r.requestUri,
    callerIp: r.caller.ip,
    callerPort: r.caller.port,
    calleeIp: r.callee.ip,
    calleePort: r.callee.port,
    srcVm: r.caller.vm,
    dstVm: r.callee.vm,
    callerAgent: r.caller.userAgent,
    calleeAgent: r.callee.userAgent,
    codecs: r.codecs,
    inviteTransactions: r.inviteTransactions,
    authChallenges: r.authChallenges,
    reInvites: r.reInvites,
    reInvitesRejected: r.reInvitesRejected,
    messages: r.messages,
    retransmissions: r.retransmissions,
    byeAnswered: r.byeAnswered,
    hops: r.hops,
    branches: r.hops.flatMap((h, hop) => h.branches.map((b) => ({ hop, from: h.from, ...b }))),
    streams: r.streams,
    correlation: r.correlation,
    node: r.node,
  };
}

/** The CSV columns (flat fields; lists joined by spaces). */
export const CALL_CSV_COLUMNS = [
  'callId',
  'start',
  'answer',
  'end',
  'outcome',
  'finalStatus',
  'reason',
  'endedBy',
  'pddMs',
  'durationSec',
  'billsec',
  'from',
  'to',
  'callerIp',
  'calleeIp',
  'srcVm',
  'dstVm',
  'codecsOffered',
  'codecsAnswered',
  'hops',
  'branches',
  'retransmissions',
  'linkedCallIds',
  'edgeCallId',
  'linkedBy',
  'streams',
  'minMos',
  'open',
] as const;

/** RFC 4180 field: quoted when it holds a comma, quote or line break; a leading = + - @ is defused. */
export function csvField(value: unknown): string {
  let text = value === null || value === undefined ? '' : String(value);
  // A spreadsheet would run a Call-ID or user part starting with these as a formula.
  if (/^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function callCsvHeader(): string {
  return CALL_CSV_COLUMNS.join(',');
}

export function callCsvRow(v: CallView): string {
  const mos = v.streams.map((s) => s.mos).filter((m): m is number => m !== null);
  const values: Record<(typeof CALL_CSV_COLUMNS)[number], unknown> = {
    callId: v.callId,
    start: v.start,
    answer: v.answer,
    end: v.end,
    outcome: v.outcome,
    finalStatus: v.finalStatus,
    reason:
      v.reason === null
        ? ''
        : `${v.reason.protocol};cause=${v.reason.cause ?? ''}${v.reason.text ? ` ${v.reason.text}` : ''}`,
    endedBy: v.endedBy,
    pddMs: v.pddMs,
    durationSec: v.durationSec,
    billsec: v.billsec,
    from: v.from,
    to: v.to,
    callerIp: v.callerIp,
    calleeIp: v.calleeIp,
    srcVm: v.srcVm,
    dstVm: v.dstVm,
    codecsOffered: v.codecs.offered.join(' '),
    codecsAnswered: v.codecs.answered.join(' '),
    hops: v.hops.map((h) => `${h.from}>${h.to}`).join(' '),
    branches: v.branches.map((b) => `${b.to}:${b.finalStatus ?? '-'}`).join(' '),
    retransmissions: v.retransmissions,
    linkedCallIds: v.linkedCallIds.join(' '),
    edgeCallId: v.edgeCallId,
    linkedBy: v.linkedBy,
    streams: v.streams.length,
    minMos: mos.length === 0 ? '' : Math.min(...mos),
    open: v.open,
  };
  return CALL_CSV_COLUMNS.map((c) => csvField(values[c])).join(',');
}

/** Control characters and over-long text out of a terminal line (captured text is hostile). */
function clean(text: string, width: number): string {
  const printable = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return printable.length > width ? `${printable.slice(0, width - 1)}…` : printable.padEnd(width);
}

export function callTableHeader(): string {
  return `${'START (UTC)'.padEnd(23)} ${'FROM'.padEnd(14)} ${'TO'.padEnd(14)} ${'OUTCOME'.padEnd(10)} STATUS ${'PDD ms'.padStart(7)} ${'TALK s'.padStart(8)} ${'ENDED BY'.padEnd(8)} ${'CALLER → CALLEE'.padEnd(33)} CALL-ID`;
}

export function callTableRow(v: CallView): string {
  const status = v.finalStatus === null ? '-' : String(v.finalStatus);
  const legs =
    v.linkedCallIds.length > 0
      ? ` (+${v.linkedCallIds.length} leg${v.linkedCallIds.length === 1 ? '' : 's'})`
      : '';
  return [
    clean(v.start.replace('T', ' ').replace('Z', ''), 23),
    clean(v.from, 14),
    clean(v.to, 14),
    clean(v.outcome + (v.open ? '*' : ''), 10),
    status.padEnd(6),
    (v.pddMs === null ? '-' : String(v.pddMs)).padStart(7),
    v.billsec.toFixed(1).padStart(8),
    clean(v.endedBy, 8),
    clean(`${v.callerIp} → ${v.calleeIp}`, 33),
    clean(v.callId, 60).trimEnd() + legs,
  ].join(' ');
}

/**
 * Call records as rows of the `calls` table (ingest/schema/tables.ts, CALLS), and back. Text that
 * comes from SIP (Call-IDs, users, tags, agents, reasons) is stored byte for byte (latin1, as the
 * parser decoded it) and read back hex-encoded, so that a record survives the round trip exactly and
 * a Call-ID found in the table can be looked up again.
 */
import { createHash } from 'node:crypto';
import type { CallOutcome, CallRecord, CallStream } from '../core/call.js';
import type { RowWriter } from './row-writer.js';
import { CALLS, columnNames } from './schema/tables.js';

/** One version of a call: the record, and whether (and when) it may still change. */
export interface CallVersion {
  record: CallRecord;
  /** The call may still change: in progress, answered with its end not seen, or lingering. */
  open: boolean;
  /** Capture time (ms) at which an open call changes without new messages; its end for a closed one. */
  deadline: number;
}

/** A version as stored, with its row version and content digest. */
export interface StoredCallVersion extends CallVersion {
  version: bigint;
  digest: bigint;
}

const U16 = 0xffff;
const U32 = 0xffff_ffff;

/** The content hash stored with a version: equal for an unchanged call, whatever computed it. */
export function callDigest(v: CallVersion): bigint {
  const hash = createHash('sha256')
    .update(JSON.stringify([v.record, v.open, v.deadline]))
    .digest();
  return hash.readBigUInt64BE(0);
}

function nullableTime(out: RowWriter, ms: number | null): void {
  if (ms === null) out.null();
  else out.timeMs(ms);
}

function nullableInt(out: RowWriter, n: number | null): void {
  if (n === null) out.null();
  else out.int(n);
}

function worst(streams: CallStream[], pick: (s: CallStream) => number | null, min: boolean): number | null {
  let best: number | null = null;
  for (const s of streams) {
    const v = pick(s);
    if (v === null || !Number.isFinite(v)) continue;
    if (best === null || (min ? v < best : v > best)) best = v;
  }
  return best;
}

/** Appends one version's row. */
export function callRow(v: CallVersion, version: bigint, runId: string, out: RowWriter): void {
  const r = v.record;
  const branches = r.hops.flatMap((hop, i) => hop.branches.map((b) => ({ hop, i, b })));
  out.timeMs(r.start).latin1(r.callId).bigUint(version).uint(0).bigUint(callDigest(v));
  out.bool(v.open).timeMs(v.deadline);
  out
    .latin1(r.edgeCallId)
    .bool(r.edgeCallId === r.callId)
    .utf8(r.linkedBy ?? '')
    .stringArray(r.linkedCallIds, 'latin1')
    .latin1(r.correlation.xCid ?? '')
    .latin1(r.correlation.sessionId ?? '')
    .latin1(r.correlation.icid ?? '');
  out
    .latin1(r.from)
    .latin1(r.to)
    .latin1(r.fromTag)
    .latin1(r.toTag ?? '')
    .latin1(r.requestUri ?? '');
  out
    .utf8(r.caller.ip)
    .uint(r.caller.port, U16)
    .utf8(r.caller.vm ?? '')
    .latin1(r.caller.userAgent ?? '');
  out
    .utf8(r.callee.ip)
    .uint(r.callee.port, U16)
    .utf8(r.callee.vm ?? '')
    .latin1(r.callee.userAgent ?? '');
  nullableTime(out, r.ringing);
  nullableTime(out, r.answer);
  out.timeMs(r.end);
  nullableInt(out, r.pddMs);
  nullableInt(out, r.setupMs);
  nullableInt(out, r.ringMs);
  out.float(r.billsec).float(r.durationSec);
  out.utf8(r.outcome).bool(r.outcome === 'failed' || r.outcome === 'noAnswer');
  out.nullableUint(r.finalStatus, U16).latin1(r.reasonPhrase ?? '');
  out
    .latin1(r.reason?.protocol ?? '')
    .nullableUint(r.reason?.cause ?? null, U16)
    .latin1(r.reason?.text ?? '');
  out.utf8(r.endedBy).utf8(r.closedBy ?? '');
  out.stringArray(r.codecs.offered, 'latin1').stringArray(r.codecs.answered, 'latin1');
  out
    .uint(r.inviteTransactions, U16)
    .uint(r.authChallenges, U16)
    .uint(r.reInvites, U16)
    .uint(r.reInvitesRejected, U16)
    .uint(r.messages, U32)
    .uint(r.retransmissions, U32)
    .bool(r.byeAnswered);
  out
    .uintArray(
      branches.map(({ i }) => i),
      0xff,
    )
    .stringArray(
      branches.map(({ hop }) => hop.from),
      'utf8',
    )
    .stringArray(
      branches.map(({ b }) => b.to),
      'utf8',
    )
    .stringArray(
      branches.map(({ b }) => b.branch),
      'latin1',
    )
    .timeMsArray(branches.map(({ b }) => b.start))
    .uintArray(
      branches.map(({ b }) => b.finalStatus ?? 0),
      U16,
    )
    .uintArray(
      branches.map(({ b }) => b.retransmissions),
      U32,
    )
    .utf8(JSON.stringify(r.streams, (_k, value) => (typeof value === 'bigint' ? Number(value) : value)));
  out.nullableFloat(worst(r.streams, (s) => s.mos, true));
  out.nullableFloat(worst(r.streams, (s) => s.lossPercent, false));
  out.nullableFloat(worst(r.streams, (s) => s.maxJitterMs, false));
  out.utf8(r.node).utf8(runId).endRow();
}

/** A tombstone: deletes the row of `callId` keyed by `start` (its start changed) once its version wins. */
export function callTombstoneRow(callId: string, start: number, version: bigint, out: RowWriter): void {
  const columns = columnNames(CALLS);
  out.timeMs(start).latin1(callId).bigUint(version).uint(1).uint(0).bool(false).timeMs(start);
  // The rest are the columns' plain values; only the key, version and flag matter to a tombstone.
  for (const name of columns.slice(7)) {
    const type = CALLS.columns.find((c) => c.name === name)!.type;
    if (type.startsWith('Nullable')) out.null();
    else if (type.startsWith('Array')) out.uintArray([], 0);
    else if (type === 'Bool') out.bool(false);
    else if (type.startsWith('DateTime64')) out.timeMs(start);
    else if (/Int|Float/.test(type)) out.uint(0);
    else out.utf8('');
  }
  out.endRow();
}

/** Columns read back hex-encoded (bytes as captured); arrays of them element by element. */
const LATIN1 = new Set([
  'call_id',
  'edge_call_id',
  'x_cid',
  'session_id',
  'icid',
  'from_user',
  'to_user',
  'from_tag',
  'to_tag',
  'request_uri',
  'caller_agent',
  'callee_agent',
  'reason_phrase',
  'reason_protocol',
  'reason_text',
]);
const LATIN1_ARRAYS = new Set(['linked_call_ids', 'codecs_offered', 'codecs_answered', 'branch_id']);
const TIMES = new Set(['start', 'deadline', 'ringing', 'answer', 'end']);

/**
 * The SELECT list that reads rows for {@link callFromRow} (JSONEachRow). Converted columns get an alias
 * of their own (`<column>_out`): an alias taking a column's name would change what a WHERE on that
 * column means.
 */
export function callSelectList(): string {
  return columnNames(CALLS)
    .map((name) => {
      const q = `\`${name}\``;
      const as = `AS \`${name}_out\``;
      if (LATIN1.has(name)) return `hex(${q}) ${as}`;
      if (LATIN1_ARRAYS.has(name)) return `arrayMap(x -> hex(x), ${q}) ${as}`;
      if (TIMES.has(name)) return `toUnixTimestamp64Milli(${q}) ${as}`;
      if (name === 'branch_start') return `arrayMap(x -> toUnixTimestamp64Milli(x), ${q}) ${as}`;
      if (name === 'version' || name === 'digest') return `toString(${q}) ${as}`;
      return q;
    })
    .join(', ');
}

type Row = Record<string, unknown>;

const text = (hex: unknown): string => Buffer.from(String(hex ?? ''), 'hex').toString('latin1');
const orNull = (s: string): string | null => (s === '' ? null : s);
const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** A row read with {@link callSelectList} as the version it stores. */
export function callFromRow(selected: Row): StoredCallVersion {
  const row: Row = {};
  for (const [k, v] of Object.entries(selected)) row[k.endsWith('_out') ? k.slice(0, -4) : k] = v;
  const branchHop = list(row.branch_hop).map(num);
  const branchFrom = list(row.branch_from).map(String);
  const branchTo = list(row.branch_to).map(String);
  const branchId = list(row.branch_id).map(text);
  const branchStart = list(row.branch_start).map(num);
  const branchStatus = list(row.branch_status).map(num);
  const branchResends = list(row.branch_retransmissions).map(num);
  const hops: CallRecord['hops'] = [];
  branchHop.forEach((h, i) => {
    hops[h] ??= { from: branchFrom[i] ?? '', to: '', branches: [] };
    hops[h].branches.push({
      branch: branchId[i] ?? '',
      to: branchTo[i] ?? '',
      start: branchStart[i] ?? 0,
      finalStatus: branchStatus[i] ? branchStatus[i]! : null,
      retransmissions: branchResends[i] ?? 0,
    });
  });
  // A hop's destination: the branch that answered (2xx), else the last one tried (as the engine says).
  for (const hop of hops) {
    const answered = hop.branches.find((b) => b.finalStatus !== null && b.finalStatus < 300);
    hop.to = (answered ?? hop.branches.at(-1))?.to ?? '';
  }
  const reasonProtocol = text(row.reason_protocol);
  const record: CallRecord = {
    callId: text(row.call_id),
    linkedCallIds: list(row.linked_call_ids).map(text),
    edgeCallId: text(row.edge_call_id),
    linkedBy: (orNull(String(row.linked_by ?? '')) as CallRecord['linkedBy']) ?? null,
    correlation: {
      xCid: orNull(text(row.x_cid)),
      sessionId: orNull(text(row.session_id)),
      icid: orNull(text(row.icid)),
    },
    from: text(row.from_user),
    to: text(row.to_user),
    fromTag: text(row.from_tag),
    toTag: orNull(text(row.to_tag)),
    requestUri: orNull(text(row.request_uri)),
    caller: {
      ip: String(row.caller_ip),
      port: num(row.caller_port),
      vm: orNull(String(row.caller_vm ?? '')),
      userAgent: orNull(text(row.caller_agent)),
    },
    callee: {
      ip: String(row.callee_ip),
      port: num(row.callee_port),
      vm: orNull(String(row.callee_vm ?? '')),
      userAgent: orNull(text(row.callee_agent)),
    },
    start: num(row.start),
    ringing: numOrNull(row.ringing),
    answer: numOrNull(row.answer),
    end: num(row.end),
    pddMs: numOrNull(row.pdd_ms),
    setupMs: numOrNull(row.setup_ms),
    ringMs: numOrNull(row.ring_ms),
    billsec: num(row.billsec),
    durationSec: num(row.duration_sec),
    outcome: String(row.outcome) as CallOutcome,
    finalStatus: numOrNull(row.final_status),
    reasonPhrase: orNull(text(row.reason_phrase)),
    reason:
      reasonProtocol === ''
        ? null
        : {
            protocol: reasonProtocol,
            cause: numOrNull(row.reason_cause),
            text: orNull(text(row.reason_text)),
          },
    endedBy: String(row.ended_by) as CallRecord['endedBy'],
    closedBy: (orNull(String(row.closed_by ?? '')) as CallRecord['closedBy']) ?? null,
    codecs: { offered: list(row.codecs_offered).map(text), answered: list(row.codecs_answered).map(text) },
    streams: JSON.parse(String(row.streams || '[]')) as CallStream[],
    inviteTransactions: num(row.invite_transactions),
    authChallenges: num(row.auth_challenges),
    reInvites: num(row.re_invites),
    reInvitesRejected: num(row.re_invites_rejected),
    messages: num(row.messages),
    retransmissions: num(row.retransmissions),
    byeAnswered: row.bye_answered === true,
    hops,
    node: String(row.node ?? ''),
  };
  return {
    record,
    open: row.open === true,
    deadline: num(row.deadline),
    version: BigInt(String(row.version)),
    digest: BigInt(String(row.digest)),
  };
}

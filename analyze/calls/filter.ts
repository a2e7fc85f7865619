/**
 * Which calls a command means (`callscope calls`, `kpis`, `stats`): the same filter over the calls
 * table (as SQL, values as parameters) and over records in memory (a capture file, no store).
 */
import type { CallOutcome, CallRecord } from '../../core/call.js';

/** Which calls: every condition given must hold. */
export interface CallFilter {
  /** Calls that started at or after `since` and before `until`. */
  since?: Date;
  until?: Date;
  /** Calls computed by one capture run. */
  runId?: string;
  node?: string;
  /** The NOC's failed calls only (failed, noAnswer). */
  failed?: boolean;
  outcome?: CallOutcome;
  /** From / To user. */
  from?: string;
  to?: string;
  /** Calls with a side on this VM, or this peer address. */
  vm?: string;
  peer?: string;
  /** Every leg of the call this Call-ID belongs to. */
  callId?: string;
  /** Every leg (B2BUA), not only the edge where each call entered. */
  legs?: boolean;
}

export interface Where {
  sql: string;
  params: Record<string, unknown>;
}

/** The WHERE of a filter, over the calls table's columns. */
export function callWhere(filter: CallFilter, options: { edgesOnly?: boolean } = {}): Where {
  const conditions: string[] = [];
  const params: Record<string, unknown> = {};
  const add = (sql: string, name: string, value: unknown) => {
    conditions.push(sql);
    params[name] = value;
  };
  if (filter.since) add('start >= fromUnixTimestamp64Milli({since:Int64})', 'since', filter.since.getTime());
  if (filter.until) add('start < fromUnixTimestamp64Milli({until:Int64})', 'until', filter.until.getTime());
  if (filter.runId !== undefined) add('run_id = {run:String}', 'run', filter.runId);
  if (filter.node !== undefined) add('node = {node:String}', 'node', filter.node);
  if (filter.failed) conditions.push('failed');
  if (filter.outcome !== undefined) add('outcome = {outcome:String}', 'outcome', filter.outcome);
  if (filter.from !== undefined) add('from_user = {from:String}', 'from', filter.from);
  if (filter.to !== undefined) add('to_user = {to:String}', 'to', filter.to);
  if (filter.vm !== undefined) add('(caller_vm = {vm:String} OR callee_vm = {vm:String})', 'vm', filter.vm);
  if (filter.peer !== undefined)
    add('(caller_ip = {peer:String} OR callee_ip = {peer:String})', 'peer', filter.peer);
  if (filter.callId !== undefined)
    add(
      '(call_id = {cid:String} OR edge_call_id = {cid:String} OR has(linked_call_ids, {cid:String}))',
      'cid',
      filter.callId,
    );
  else if (options.edgesOnly !== false && !filter.legs) conditions.push('is_edge');
  return { sql: conditions.length === 0 ? '1' : conditions.join(' AND '), params };
}

/** The same filter over a record in memory. */
export function callMatches(filter: CallFilter, r: CallRecord): boolean {
  if (filter.since && r.start < filter.since.getTime()) return false;
  if (filter.until && r.start >= filter.until.getTime()) return false;
  if (filter.node !== undefined && r.node !== filter.node) return false;
  if (filter.failed && r.outcome !== 'failed' && r.outcome !== 'noAnswer') return false;
  if (filter.outcome !== undefined && r.outcome !== filter.outcome) return false;
  if (filter.from !== undefined && r.from !== filter.from) return false;
  if (filter.to !== undefined && r.to !== filter.to) return false;
  if (filter.vm !== undefined && r.caller.vm !== filter.vm && r.callee.vm !== filter.vm) return false;
  if (filter.peer !== undefined && r.caller.ip !== filter.peer && r.callee.ip !== filter.peer) return false;
  if (filter.callId !== undefined)
    return (
      r.callId === filter.callId || r.edgeCallId === filter.callId || r.linkedCallIds.includes(filter.callId)
    );
  return filter.legs === true || r.edgeCallId === r.callId;
}

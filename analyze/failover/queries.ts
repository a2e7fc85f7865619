/**
 * What a failover did, read from the store when asked (docs/FAILOVER.md, "Where each figure is
 * computed"): the calls it cut and the re-REGISTER wave after it. Both need what happens minutes after
 * the move (calls end, phones re-register on their own timers), and the calls table has every call's
 * end already: computing them in the capture would hold per-call state per address for minutes and
 * delay the failover's row until then. The move itself and its gap are the tracker's (frames only the
 * capture sees).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { FailoverRecord } from '../../core/failover.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';

/**
 * Grafana annotation query (the ClickHouse datasource's macros): one annotation per failover, at the
 * move, with both VMs and the gap; tags `failover`, the address and the new VM.
 */
export const FAILOVER_ANNOTATION_SQL = `SELECT time,
  concat('failover of ', address, ': ', old_vm, ' → ', new_vm, ' (', signal, ')',
         if(gap_ms IS NULL, ', no answer after the move', concat(', no answer for ', toString(assumeNotNull(gap_ms)), ' ms'))) AS text,
  ['failover', address, new_vm] AS tags
FROM failovers FINAL
WHERE $__timeFilter(time)
ORDER BY time
LIMIT 1000`;

/** Default window after (and before, for comparison) a move for the re-REGISTER wave: 5 minutes. */
export const REGISTER_WAVE_WINDOW_MS = 300_000;

/**
 * Calls cut by a failover: answered through the address (it sent or received one of their messages) by
 * the time it stopped answering, still up then, and never ended by a BYE answered 2xx (their BYE never
 * came, or came to the new node, which knew nothing of them). `without_bye`: those whose end nobody saw
 * (closed by media silence, the maximum duration, the end of the capture). The outage starts at the
 * last answer before the move, not at the move: a BYE sent in between is lost with the old node.
 * Parameters: {address:String}, {since:Int64} (ms: the failover's last_answer_before, else its time),
 * {lookback:Int64} (ms: how far back a call's messages are searched).
 */
export const failoverCallsCutSql = (
  database: string,
): string => `SELECT count() AS cut, countIf(closed_by != '') AS without_bye,
  groupArray(10)(call_id) AS examples
FROM ${qualifiedName(database, 'calls')} FINAL
WHERE is_deleted = 0 AND answer IS NOT NULL
  AND answer <= fromUnixTimestamp64Milli({since:Int64}) AND end >= fromUnixTimestamp64Milli({since:Int64})
  AND NOT bye_answered
  AND call_id IN (
    SELECT DISTINCT call_id FROM ${qualifiedName(database, 'sip_messages')}
    WHERE (src_ip = {address:String} OR dst_ip = {address:String})
      AND time >= fromUnixTimestamp64Milli({since:Int64} - {lookback:Int64})
      AND time <= fromUnixTimestamp64Milli({since:Int64}))`;

/**
 * REGISTERs sent to the address in the window after the move and in as long a window before it (the
 * usual rate), resends not counted, and the distinct users registering after.
 * Parameters: {address:String}, {move:Int64} (ms), {window:Int64} (ms).
 */
export const failoverRegisterWaveSql = (database: string): string => `SELECT
  countIf(time >= fromUnixTimestamp64Milli({move:Int64})) AS after,
  countIf(time < fromUnixTimestamp64Milli({move:Int64})) AS before,
  uniqExactIf(from_user, time >= fromUnixTimestamp64Milli({move:Int64})) AS users_after
FROM ${qualifiedName(database, 'sip_messages')} FINAL
WHERE is_request AND method = 'REGISTER' AND NOT retransmission AND dst_ip = {address:String}
  AND time >= fromUnixTimestamp64Milli({move:Int64} - {window:Int64})
  AND time < fromUnixTimestamp64Milli({move:Int64} + {window:Int64})`;

export interface FailoverImpact {
  /** Answered calls through the address, up at the move, not ended by an answered BYE. */
  callsCut: number;
  /** Of them, those whose end nobody saw (no BYE at all). */
  callsWithoutBye: number;
  /** Up to 10 of their Call-IDs. */
  examples: string[];
  /** REGISTERs to the address in the window after the move, and in the window before it. */
  registersAfter: number;
  registersBefore: number;
  /** Distinct users (From) registering to it after the move. */
  usersRegisteringAfter: number;
}

/** The calls a failover cut and the re-REGISTER wave after it, from the store. */
export async function failoverImpact(
  client: ClickHouseClient,
  database: string,
  failover: Pick<FailoverRecord, 'address' | 'time' | 'lastAnswerBefore'>,
  options: { windowMs?: number; lookbackMs?: number } = {},
): Promise<FailoverImpact> {
  const params = {
    address: failover.address,
    move: failover.time,
    since: failover.lastAnswerBefore ?? failover.time,
    lookback: options.lookbackMs ?? 6 * 3_600_000,
    window: options.windowMs ?? REGISTER_WAVE_WINDOW_MS,
  };
  const one = async (sql: string): Promise<Record<string, unknown>> => {
    const result = await client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
    return (await result.json<Record<string, unknown>>())[0] ?? {};
  };
  const cut = await one(failoverCallsCutSql(database));
  const wave = await one(failoverRegisterWaveSql(database));
  return {
    callsCut: Number(cut.cut ?? 0),
    callsWithoutBye: Number(cut.without_bye ?? 0),
    // Call-IDs are stored as captured bytes; JSON output gives them back as text (ASCII in practice).
    examples: Array.isArray(cut.examples) ? cut.examples.map(String) : [],
    registersAfter: Number(wave.after ?? 0),
    registersBefore: Number(wave.before ?? 0),
    usersRegisteringAfter: Number(wave.users_after ?? 0),
  };
}

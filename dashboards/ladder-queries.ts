/**
 * The ClickHouse queries behind the ladder panel (dashboards/ladder-panel/): one table frame each for
 * the messages of the call and of its linked B2BUA legs, the legs' call records, their final media
 * streams and their HEP logs. dashboards/ladder-panel/README.md lists the frames' columns.
 *
 * The Call-ID comes from the dashboard variable `call_id` and reaches SQL only as
 * `decodeURLComponent('${call_id:percentencode}')`: percentencode leaves nothing but [A-Za-z0-9-_.~]
 * in the literal, so a Call-ID holding `'` or `\` (legal, and attacker-controlled) cannot leave it.
 *
 * Every table is keyed (hour, Call-ID): a Call-ID condition on the key lets ClickHouse skip the other
 * calls' granules in each hour. Rows are read without FINAL (far cheaper for a handful of rows) and
 * deduplicated here as analyze/ladder/gather.ts does: `LIMIT 1 BY event_id` for events, the newest
 * version per (call_id, start) for call records.
 */

export interface LadderDatasourceRef {
  type: string;
  uid: string;
}

export interface LadderPanelTarget {
  refId: 'messages' | 'legs' | 'streams' | 'logs';
  datasource: LadderDatasourceRef;
  editorType: 'sql';
  rawSql: string;
  /** 1: table. */
  format: 1;
  queryType: 'table';
}

/** Messages returned at most (the panel says when the bound was reached). */
export const LADDER_MAX_MESSAGES = 2000;
/** Bytes of each raw message returned (the whole length comes in `raw_bytes`). */
export const LADDER_MAX_RAW_BYTES = 16_384;
export const LADDER_MAX_STREAMS = 200;
export const LADDER_MAX_LOGS = 500;

/** The Call-ID asked for, as a constant expression: the one way the variable enters SQL. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
export const WANTED_CALL_ID = "decodeURLComponent('${call_id:percentencode}')";

/**
 * The tables' prefix: none by default (the datasource's default database, as the other dashboards'
 * queries read), else `database.` for a plain identifier (no quoting games).
 */
function prefix(database: string | undefined): string {
  if (database === undefined) return '';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(database)) throw new Error(`bad database name ${database}`);
  return `${database}.`;
}

/**
 * The Call-IDs of the call's legs: the one asked for, and every leg whose edge is its edge (or which
 * is its edge), found through the calls table's bloom indexes on call_id and edge_call_id.
 */
function legIds(db: string): string {
  const edge = `SELECT edge_call_id FROM ${db}calls WHERE call_id = ${WANTED_CALL_ID}`;
  return `(
    SELECT ${WANTED_CALL_ID}
    UNION DISTINCT
    SELECT call_id FROM ${db}calls
    WHERE call_id = ${WANTED_CALL_ID} OR edge_call_id IN (${edge}) OR call_id IN (${edge})
  )`;
}

export function ladderMessagesSql(database?: string): string {
  const db = prefix(database);
  return `SELECT
  time,
  toFloat64(toUnixTimestamp64Micro(time)) / 1000 AS time_ms,
  call_id, is_request, method, status, reason_phrase, cseq_num, cseq_method, from_user, to_user,
  src_ip, src_port, dst_ip, dst_port, src_vm, dst_vm, transport, retransmission, via_branch, to_tag,
  base64Encode(substring(raw, 1, ${LADDER_MAX_RAW_BYTES})) AS raw_b64,
  length(raw) AS raw_bytes
FROM ${db}sip_messages
WHERE call_id IN ${legIds(db)}
ORDER BY time, event_id
LIMIT 1 BY event_id
LIMIT ${LADDER_MAX_MESSAGES + 1}`;
}

export function ladderLegsSql(database?: string): string {
  const db = prefix(database);
  return `SELECT
  call_id, edge_call_id, linked_by, outcome, final_status, reason_phrase, from_user, to_user,
  toFloat64(toUnixTimestamp64Milli(start)) AS start_ms,
  toFloat64(toUnixTimestamp64Milli(answer)) AS answer_ms,
  toFloat64(toUnixTimestamp64Milli(end)) AS end_ms,
  pdd_ms, duration_sec, billsec, ended_by, reason_protocol, reason_cause, reason_text
FROM (
  SELECT * FROM ${db}calls
  WHERE call_id IN ${legIds(db)}
  ORDER BY version DESC
  LIMIT 1 BY call_id, start
)
WHERE is_deleted = 0
ORDER BY call_id = edge_call_id DESC, start, call_id
LIMIT 100`;
}

export function ladderStreamsSql(database?: string): string {
  const db = prefix(database);
  return `SELECT
  call_id, src_ip, src_port, dst_ip, dst_port, ssrc, codec, packets, lost, loss_percent,
  max_jitter_ms, mean_jitter_ms, mos
FROM ${db}media_reports
WHERE kind = 'final' AND call_id IN ${legIds(db)}
ORDER BY time, event_id
LIMIT 1 BY event_id
LIMIT ${LADDER_MAX_STREAMS}`;
}

export function ladderLogsSql(database?: string): string {
  const db = prefix(database);
  return `SELECT toFloat64(toUnixTimestamp64Micro(time)) / 1000 AS time_ms, correlation_id, text
FROM ${db}hep_logs
WHERE correlation_id IN ${legIds(db)}
ORDER BY time, event_id
LIMIT 1 BY event_id
LIMIT ${LADDER_MAX_LOGS}`;
}

/**
 * The panel's four queries, refIds as the panel reads them; tables in the datasource's default
 * database unless `database` names one.
 */
export function ladderPanelTargets(datasource: LadderDatasourceRef, database?: string): LadderPanelTarget[] {
  const target = (refId: LadderPanelTarget['refId'], rawSql: string): LadderPanelTarget => ({
    refId,
    datasource: { type: datasource.type, uid: datasource.uid },
    editorType: 'sql',
    rawSql,
    format: 1,
    queryType: 'table',
  });
  return [
    target('messages', ladderMessagesSql(database)),
    target('legs', ladderLegsSql(database)),
    target('streams', ladderStreamsSql(database)),
    target('logs', ladderLogsSql(database)),
  ];
}

/**
 * The SQL of each alert KPI, written once with the Grafana ClickHouse datasource's time macros
 * (`$__fromTime`, `$__toTime`): the built-in evaluator expands them for its window (dashboards/
 * macros.ts, as the plugin does) and the generated Grafana alert rules send the same text, so both
 * judge the same numbers. Each query returns one row per group: the grouping columns (named as the
 * labels they become), `value` (NULL: nothing to judge), `attempts` (what the value counts over) and
 * `examples` (a few ids of what made the value: Call-IDs of failed calls...).
 *
 * Counting follows analyze/calls/stored-kpis.ts: calls once each, at their edge leg (is_edge), read
 * with FINAL; the failed-call ratio is failed ÷ settled calls, as `callscope kpis` computes it.
 */
import type { AlertRule, KpiKind } from './rules.js';

/** How a table is named in the SQL (database-qualified for the evaluator, bare for Grafana). */
export type TableName = (table: string) => string;

/** A grouping's expression; a VM grouping over both sides is an arrayJoin of the two. */
const CALL_GROUPS: Record<string, string> = {
  callee_vm: 'callee_vm',
  caller_vm: 'caller_vm',
  vm: 'arrayJoin(arrayDistinct([caller_vm, callee_vm]))',
  callee_ip: 'callee_ip',
  caller_ip: 'caller_ip',
  node: 'node',
};
const MEDIA_GROUPS: Record<string, string> = {
  dst_vm: 'dst_vm',
  src_vm: 'src_vm',
  dst_ip: 'dst_ip',
  src_ip: 'src_ip',
  node: 'node',
};

/** Groups whose key is unknown ('' VM) are left out: the by-address rules cover that traffic. */
function groupSelect(
  by: readonly string[],
  expressions: Record<string, string>,
): { select: string; keep: string } {
  const select = by.map((b) => `${expressions[b] ?? b} AS g_${b}`).join(', ');
  const keep = by.map((b) => `g_${b} != ''`).join(' AND ');
  return { select: select === '' ? '' : `${select}, `, keep: keep === '' ? '1' : keep };
}

function outerGroups(by: readonly string[]): { select: string; groupBy: string } {
  return {
    select: by.map((b) => `g_${b} AS ${b}`).join(', ') + (by.length > 0 ? ', ' : ''),
    groupBy: by.length > 0 ? `GROUP BY ${by.map((b) => `g_${b}`).join(', ')}` : '',
  };
}

const seconds = (ms: number): number => Math.round(ms / 1000);

/** The window an evaluation at `at` judges (ms): it ends `delay` before the evaluation. */
export function windowOf(rule: AlertRule, delayMs: number, at: number): { from: number; to: number } {
  return { from: at - delayMs - rule.windowMs, to: at - delayMs };
}

/** Nearest-rank percentile of a sorted array (the same rank analyze/calls/kpis.ts takes). */
const nearestRank = (sorted: string, n: string, p: number) =>
  `if(${n} = 0, NULL, toFloat64(${sorted}[toUInt64(greatest(1, ceil(${p} * ${n})))]))`;

/**
 * The KPI query of a rule, grouped as the rule says, over [$__fromTime, $__toTime]. `examples` is the
 * number of example ids kept per group; `delayMs` how long after the window's end the evaluation
 * runs (an OPTIONS answer may come until then).
 */
export function kpiSql(rule: AlertRule, table: TableName, examples: number, delayMs: number): string {
  const n = Math.max(0, Math.min(10, examples));
  // groupArray(0) is not allowed: no examples is an empty array.
  const some = (expression: string) => (n === 0 ? "CAST([], 'Array(String)')" : expression);
  const g = outerGroups(rule.by);
  const inWindow = (c: string) => `${c} >= $__fromTime AND ${c} <= $__toTime`;
  const calls = `${table('calls')} FINAL`;
  switch (rule.kpi as KpiKind) {
    case 'failed-call-ratio': {
      const s = groupSelect(rule.by, CALL_GROUPS);
      return `SELECT ${g.select}count() AS attempts, countIf(f) AS bad,
  if(attempts = 0, NULL, bad / attempts) AS value, ${some(`groupArrayIf(${n})(id, f)`)} AS examples
FROM (SELECT ${s.select}call_id AS id, failed AS f FROM ${calls}
      WHERE is_edge AND outcome != 'inProgress' AND ${inWindow('start')})
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'asr-drop': {
      // The window's ASR over the ASR of the same window `offset` earlier (a week: same hour, same weekday).
      const s = groupSelect(rule.by, CALL_GROUPS);
      const off = seconds(rule.offsetMs);
      return `SELECT ${g.select}countIf(now_) AS attempts, countIf(NOT now_) AS base_attempts,
  countIf(now_ AND o = 'answered') AS answered, countIf(NOT now_ AND o = 'answered') AS base_answered,
  if(attempts = 0 OR base_attempts < ${rule.minAttempts} OR base_answered = 0, NULL,
     (answered / attempts) / (base_answered / base_attempts)) AS value,
  ${some(`groupArrayIf(${n})(id, now_ AND o != 'answered')`)} AS examples
FROM (SELECT ${s.select}call_id AS id, outcome AS o, start >= $__fromTime AS now_ FROM ${calls}
      WHERE is_edge AND outcome != 'inProgress' AND (${inWindow('start')}
        OR (start >= $__fromTime - INTERVAL ${off} SECOND AND start <= $__toTime - INTERVAL ${off} SECOND)))
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'pdd-p95': {
      const s = groupSelect(rule.by, CALL_GROUPS);
      return `SELECT ${g.select}count() AS attempts, ${nearestRank('arraySort(groupArray(p))', 'attempts', 0.95)} AS value,
  ${some(`arrayMap(x -> x.2, arraySlice(arrayReverseSort(x -> x.1, groupArray((p, id))), 1, ${n}))`)} AS examples
FROM (SELECT ${s.select}call_id AS id, assumeNotNull(pdd_ms) AS p FROM ${calls}
      WHERE is_edge AND pdd_ms IS NOT NULL AND ${inWindow('start')})
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'silence': {
      // Calls in the window, of the groups that had calls in the lookback (offset) before it.
      const s = groupSelect(rule.by, CALL_GROUPS);
      const off = seconds(rule.offsetMs);
      return `SELECT ${g.select}countIf(NOT now_) AS attempts, countIf(now_) AS value,
  ${some(`groupArrayIf(${n})(id, NOT now_)`)} AS examples
FROM (SELECT ${s.select}call_id AS id, start >= $__fromTime AS now_ FROM ${calls}
      WHERE start >= $__fromTime - INTERVAL ${off} SECOND AND start <= $__toTime)
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'low-mos-share': {
      const s = groupSelect(rule.by, MEDIA_GROUPS);
      return `SELECT ${g.select}count() AS attempts, countIf(m < ${rule.mosBelow}) AS bad,
  if(attempts = 0, NULL, bad / attempts) AS value, ${some(`groupArrayIf(${n})(id, m < ${rule.mosBelow} AND id != '')`)} AS examples
FROM (SELECT ${s.select}call_id AS id, assumeNotNull(mos) AS m FROM ${table('media_reports')}
      WHERE kind = 'final' AND mos IS NOT NULL AND ${inWindow('time')})
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'options-unanswered': {
      // A probe (an OPTIONS transaction) fails without a final response below 500 other than 408
      // (analyze/probes/tracker.ts): answers are looked for until the evaluation time (window + delay).
      const groups: Record<string, string> = { peer: 'dst_ip', peer_vm: 'dst_vm', node: 'node' };
      const s = groupSelect(rule.by, groups);
      return `SELECT ${g.select}count() AS attempts, countIf(NOT ok) AS bad,
  if(attempts = 0, NULL, bad / attempts) AS value, ${some(`groupArrayIf(${n})(id, NOT ok)`)} AS examples
FROM (
  SELECT ${s.select}call_id AS id, any(dst_ip) AS peer_ip, cseq_num AS cseq FROM ${table('sip_messages')}
  WHERE is_request AND method = 'OPTIONS' AND ${inWindow('time')}
  GROUP BY ${[...rule.by.map((b) => `g_${b}`), 'id', 'cseq'].join(', ')}
) AS probes
LEFT JOIN (
  SELECT DISTINCT src_ip AS peer_ip, call_id AS id, cseq_num AS cseq, true AS ok FROM ${table('sip_messages')}
  WHERE NOT is_request AND cseq_method = 'OPTIONS' AND status >= 200 AND status < 500 AND status != 408
    AND time >= $__fromTime AND time <= $__toTime + INTERVAL ${seconds(delayMs)} SECOND
) AS answers USING (peer_ip, id, cseq)
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'register-failures': {
      // A REGISTER transaction fails on a final response ≥ 300 other than a challenge (401, 407) or
      // 423 (interval too brief): the share of failed registrations, per registrar.
      const groups: Record<string, string> = { registrar: 'src_ip', registrar_vm: 'src_vm', node: 'node' };
      const s = groupSelect(rule.by, groups);
      return `SELECT ${g.select}count() AS attempts, countIf(f) AS bad,
  if(attempts = 0, NULL, bad / attempts) AS value, ${some(`groupArrayIf(${n})(id, f)`)} AS examples
FROM (
  SELECT ${s.select}call_id AS id, cseq_num AS cseq, max(status >= 300 AND status NOT IN (401, 407, 423)) AS f
  FROM ${table('sip_messages')}
  WHERE NOT is_request AND cseq_method = 'REGISTER' AND status >= 200 AND ${inWindow('time')}
  GROUP BY ${[...rule.by.map((b) => `g_${b}`), 'id', 'cseq'].join(', ')}
)
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'capture-drops': {
      const groups: Record<string, string> = { node: 'node', interface: 'interface' };
      const s = groupSelect(rule.by, groups);
      return `SELECT ${g.select}sum(p) AS attempts, sum(d) AS value, CAST([], 'Array(String)') AS examples
FROM (SELECT ${s.select}packets_delta AS p, dropped_kernel_delta + dropped_interface_delta + dropped_overload_delta AS d
      FROM ${table('capture_health')} WHERE ${inWindow('time')})
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'ingest-lag': {
      // Capture → stored, seconds, of the SIP stored in the window (captured within the last hour:
      // a capture file of last week stored now is not a lag).
      const s = groupSelect(rule.by, { node: 'node' });
      return `SELECT ${g.select}count() AS attempts, ${nearestRank('arraySort(groupArray(l))', 'attempts', 0.95)} AS value,
  CAST([], 'Array(String)') AS examples
FROM (SELECT ${s.select}greatest(0, toUnixTimestamp(stored_at) - toUnixTimestamp64Milli(time) / 1000) AS l
      FROM ${table('sip_messages')}
      WHERE ${inWindow('stored_at')} AND time >= $__fromTime - INTERVAL 1 HOUR)
WHERE ${s.keep} ${g.groupBy}`;
    }
    case 'failover': {
      const groups: Record<string, string> = { address: 'address', new_vm: 'new_vm', node: 'node' };
      const s = groupSelect(rule.by, groups);
      return `SELECT ${g.select}count() AS attempts, toFloat64(count()) AS value,
  ${some(`groupArray(${n})(concat(address, ': ', old_vm, ' → ', new_vm))`)} AS examples
FROM (SELECT ${s.select}address, old_vm, new_vm FROM ${table('failovers')} WHERE ${inWindow('time')})
WHERE ${s.keep} ${g.groupBy}`;
    }
  }
}

/**
 * The call rules of one evaluation in one read of the calls table. Rule by rule (kpis.ts), each
 * failed-call ratio, ASR, PDD and silence rule reads the calls FINAL again: 50 rules over a million
 * calls took ~8 s on the bench machine. Here every such rule becomes a few `-If` aggregates with its
 * own window, and the groupings of all of them one GROUPING SETS query, so the table is read once
 * (and once more for the rules grouped by `vm`, either side, whose rows are doubled by an arrayJoin).
 *
 * The figures are kpis.ts's, bound for bound: the same filters, the same windows (the datasource's
 * `toDateTime(seconds)` bounds, both ends included), the same nearest-rank percentile, and a group is
 * present exactly when kpis.ts's query would return it (it has rows in the rule's window).
 * dashboards/alerting.test.ts holds the two equal.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import type { AlertRule, AlertRules, KpiKind } from './rules.js';
import type { GroupValue } from './state.js';

/** The KPIs this module batches. */
export const BATCHED_KPIS: ReadonlySet<KpiKind> = new Set([
  'failed-call-ratio',
  'asr-drop',
  'pdd-p95',
  'silence',
]);

/** The call groupings a batch can group by (vm is batched apart: it doubles the rows). */
const COLUMNS = ['callee_vm', 'caller_vm', 'callee_ip', 'caller_ip', 'node'] as const;

type Row = Record<string, unknown>;

/** A bound as the datasource's macro writes it: whole seconds (toDateTime), in ms. */
const second = (ms: number) => Math.floor(ms / 1000) * 1000;

interface Bounds {
  from: number;
  to: number;
  /** asr-drop: the baseline window; silence: the lookback's start. */
  offset: number;
}

function boundsOf(rule: AlertRule, rules: AlertRules, at: number): Bounds {
  const to = second(at - rules.delayMs);
  const from = second(at - rules.delayMs - rule.windowMs);
  return { from, to, offset: Math.round(rule.offsetMs / 1000) * 1000 };
}

/** The rule's aggregates (`_i` suffixed) and the lowest and highest start it reads. */
function aggregates(
  rule: AlertRule,
  i: number,
  b: Bounds,
  examples: number,
): { sql: string; lo: number; hi: number } {
  const inWindow = `(s >= ${b.from} AND s <= ${b.to})`;
  const some = (expression: string) => (examples === 0 ? "CAST([], 'Array(String)')" : expression);
  switch (rule.kpi) {
    case 'failed-call-ratio': {
      const c = `(e AND o != 'inProgress' AND ${inWindow})`;
      return {
        lo: b.from,
        hi: b.to,
        sql: `countIf(${c}) AS rows_${i}, countIf(${c}) AS attempts_${i}, countIf(${c} AND f) AS bad_${i},
          ${some(`groupArrayIf(${examples})(id, ${c} AND f)`)} AS examples_${i}`,
      };
    }
    case 'asr-drop': {
      const base = `(s >= ${b.from - b.offset} AND s <= ${b.to - b.offset})`;
      const c = `(e AND o != 'inProgress' AND (${inWindow} OR ${base}))`;
      const now = `(${c} AND s >= ${b.from})`;
      const then = `(${c} AND s < ${b.from})`;
      return {
        lo: b.from - b.offset,
        hi: b.to,
        sql: `countIf(${c}) AS rows_${i}, countIf(${now}) AS attempts_${i}, countIf(${then}) AS base_attempts_${i},
          countIf(${now} AND o = 'answered') AS answered_${i}, countIf(${then} AND o = 'answered') AS base_answered_${i},
          ${some(`groupArrayIf(${examples})(id, ${now} AND o != 'answered')`)} AS examples_${i}`,
      };
    }
    case 'pdd-p95': {
      const c = `(e AND p IS NOT NULL AND ${inWindow})`;
      return {
        lo: b.from,
        hi: b.to,
        sql: `countIf(${c}) AS rows_${i}, countIf(${c}) AS attempts_${i}, arraySort(groupArrayIf(assumeNotNull(p), ${c})) AS pdds_${i},
          ${some(`arrayMap(x -> x.2, arraySlice(arrayReverseSort(x -> x.1, groupArrayIf((assumeNotNull(p), id), ${c})), 1, ${examples}))`)} AS examples_${i}`,
      };
    }
    case 'silence': {
      const c = `(s >= ${b.from - b.offset} AND s <= ${b.to})`;
      return {
        lo: b.from - b.offset,
        hi: b.to,
        sql: `countIf(${c}) AS rows_${i}, countIf(${c} AND s < ${b.from}) AS attempts_${i}, countIf(${c} AND s >= ${b.from}) AS now_${i},
          ${some(`groupArrayIf(${examples})(id, ${c} AND s < ${b.from})`)} AS examples_${i}`,
      };
    }
    default:
      throw new Error(`${rule.kpi} is not batched`);
  }
}

/** The value of rule i from its aggregates, as kpis.ts computes it. */
function ruleValueOf(rule: AlertRule, i: number, r: Row): { value: number | null; attempts: number } {
  const n = (k: string) => Number(r[`${k}_${i}`] ?? 0);
  const attempts = n('attempts');
  switch (rule.kpi) {
    case 'failed-call-ratio':
      return { attempts, value: attempts === 0 ? null : n('bad') / attempts };
    case 'asr-drop': {
      const base = n('base_attempts');
      const baseAnswered = n('base_answered');
      return {
        attempts,
        value:
          attempts === 0 || base < rule.minAttempts || baseAnswered === 0
            ? null
            : n('answered') / attempts / (baseAnswered / base),
      };
    }
    case 'pdd-p95': {
      const pdds = (r[`pdds_${i}`] as unknown[]).map(Number);
      return {
        attempts,
        value: attempts === 0 ? null : pdds[Math.max(1, Math.ceil(0.95 * attempts)) - 1]!,
      };
    }
    case 'silence':
      return { attempts, value: n('now') };
    default:
      throw new Error(`${rule.kpi} is not batched`);
  }
}

/**
 * The values of batched rules at one instant, by rule name. Rules are split into at most two
 * queries: those grouped by `vm` and the rest.
 */
export async function batchedRuleValues(
  client: ClickHouseClient,
  database: string,
  rules: AlertRules,
  batch: readonly AlertRule[],
  at: number,
): Promise<Map<string, GroupValue[]>> {
  const out = new Map<string, GroupValue[]>();
  const byVm = batch.filter((r) => r.by.includes('vm'));
  const rest = batch.filter((r) => !r.by.includes('vm'));
  for (const part of [rest, byVm]) {
    if (part.length === 0) continue;
    const vm = part === byVm;
    // Only columns some rule groups by may be selected (and named in grouping()).
    const columns = (vm ? ['vm', ...COLUMNS] : [...COLUMNS]).filter((c) =>
      part.some((r) => r.by.includes(c)),
    );
    const parts = part.map((rule, i) => aggregates(rule, i, boundsOf(rule, rules, at), rules.examples));
    const lo = Math.min(...parts.map((p) => p.lo));
    const hi = Math.max(...parts.map((p) => p.hi));
    const sets = [...new Set(part.map((r) => JSON.stringify([...r.by].sort())))].map(
      (s) => JSON.parse(s) as string[],
    );
    // Silence counts every leg; the other KPIs only edges (e), which they test themselves.
    const sql = `SELECT ${columns.map((c) => `${c}, `).join('')}${columns.length > 0 ? `grouping(${columns.join(', ')})` : '0'} AS grouping_mask,
  ${parts.map((p) => p.sql).join(',\n  ')}
FROM (
  SELECT ${vm ? 'arrayJoin(arrayDistinct([caller_vm, callee_vm])) AS vm, ' : ''}${COLUMNS.join(', ')},
    toUnixTimestamp64Milli(start) AS s, is_edge AS e, outcome AS o, failed AS f, pdd_ms AS p, call_id AS id
  FROM ${qualifiedName(database, 'calls')} FINAL
  WHERE start >= fromUnixTimestamp64Milli(${lo}) AND start <= fromUnixTimestamp64Milli(${hi})
)
GROUP BY GROUPING SETS (${sets.map((s) => `(${s.join(', ')})`).join(', ')})`;
    const result = await client.query({ query: sql, format: 'JSONEachRow' });
    const rows = await result.json<Row>();
    part.forEach((rule, i) => {
      // This rule's grouping set: the bits of the columns it does not group by are set.
      const mask = columns.reduce(
        (m, c, k) => (rule.by.includes(c) ? m : m | (1 << (columns.length - 1 - k))),
        0,
      );
      const values: GroupValue[] = [];
      for (const r of rows) {
        if (Number(r.grouping_mask) !== mask || Number(r[`rows_${i}`]) === 0) continue;
        if (rule.by.some((b) => r[b] === '')) continue;
        values.push({
          group: Object.fromEntries(rule.by.map((b) => [b, String(r[b])])),
          ...ruleValueOf(rule, i, r),
          examples: ((r[`examples_${i}`] as unknown[]) ?? []).map(String),
        });
      }
      out.set(rule.name, values);
    });
  }
  return out;
}

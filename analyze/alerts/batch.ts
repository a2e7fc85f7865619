/**
 * The call rules of one evaluation, a query per grouping. Rule by rule (kpis.ts), each failed-call
 * ratio, ASR, PDD and silence rule reads the calls FINAL and aggregates them again: 50 rules over a
 * quarter of a million calls took 2.1 s on the bench machine. Here every such rule becomes a few
 * `-If` aggregates with its own window, the rules grouped the same way share one query, and an
 * aggregate several rules need (the same KPI over the same window) is computed once. (One GROUPING
 * SETS query for all was slower: every set then computes every rule's aggregates.)
 *
 * The figures are kpis.ts's, bound for bound: the same filters, the same windows (the datasource's
 * `toDateTime(seconds)` bounds, both ends included), the same nearest-rank percentile, and a group is
 * present exactly when kpis.ts's query would return it (it has rows in the rule's window).
 * dashboards/alerting.test.ts holds the two equal.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { windowOf } from './kpis.js';
import type { AlertRule, AlertRules, KpiKind } from './rules.js';
import type { GroupValue } from './state.js';

/** The KPIs this module batches. */
export const BATCHED_KPIS: ReadonlySet<KpiKind> = new Set([
  'failed-call-ratio',
  'asr-drop',
  'pdd-p95',
  'silence',
]);

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
  const { from, to } = windowOf(rule, rules.delayMs, at);
  return { from: second(from), to: second(to), offset: Math.round(rule.offsetMs / 1000) * 1000 };
}

/** The rule's aggregates by name (rows, attempts...), and the lowest and highest start it reads. */
function aggregates(
  rule: AlertRule,
  b: Bounds,
  examples: number,
): { exprs: Record<string, string>; lo: number; hi: number } {
  const inWindow = `(s >= ${b.from} AND s <= ${b.to})`;
  const some = (expression: string) => (examples === 0 ? "CAST([], 'Array(String)')" : expression);
  switch (rule.kpi) {
    case 'failed-call-ratio': {
      const c = `(e AND o != 'inProgress' AND ${inWindow})`;
      return {
        lo: b.from,
        hi: b.to,
        exprs: {
          rows: `countIf(${c})`,
          attempts: `countIf(${c})`,
          bad: `countIf(${c} AND f)`,
          examples: some(`groupArrayIf(${examples})(id, ${c} AND f)`),
        },
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
        exprs: {
          rows: `countIf(${c})`,
          attempts: `countIf(${now})`,
          base_attempts: `countIf(${then})`,
          answered: `countIf(${now} AND o = 'answered')`,
          base_answered: `countIf(${then} AND o = 'answered')`,
          examples: some(`groupArrayIf(${examples})(id, ${now} AND o != 'answered')`),
        },
      };
    }
    case 'pdd-p95': {
      const c = `(e AND p IS NOT NULL AND ${inWindow})`;
      return {
        lo: b.from,
        hi: b.to,
        exprs: {
          rows: `countIf(${c})`,
          attempts: `countIf(${c})`,
          // quantileExact takes sorted[floor(level × n)]; just under 0.95 that is the nearest rank,
          // sorted[ceil(0.95 × n) − 1], for any n under ~50 million (kpis.ts sorts the array itself).
          p95: `quantileExactIf(${0.95 - 1e-9})(assumeNotNull(p), ${c})`,
          examples: some(
            `arrayMap(x -> x.2, arraySlice(arrayReverseSort(x -> x.1, groupArrayIf((assumeNotNull(p), id), ${c})), 1, ${examples}))`,
          ),
        },
      };
    }
    case 'silence': {
      const c = `(s >= ${b.from - b.offset} AND s <= ${b.to})`;
      return {
        lo: b.from - b.offset,
        hi: b.to,
        exprs: {
          rows: `countIf(${c})`,
          attempts: `countIf(${c} AND s < ${b.from})`,
          now: `countIf(${c} AND s >= ${b.from})`,
          examples: some(`groupArrayIf(${examples})(id, ${c} AND s < ${b.from})`),
        },
      };
    }
    default:
      throw new Error(`${rule.kpi} is not batched`);
  }
}

/** The value of a rule from its aggregates (`a` reads one by name), as kpis.ts computes it. */
function ruleValueOf(
  rule: AlertRule,
  a: (name: string) => unknown,
): { value: number | null; attempts: number } {
  const n = (k: string) => Number(a(k) ?? 0);
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
    case 'pdd-p95':
      return { attempts, value: attempts === 0 ? null : n('p95') };
    case 'silence':
      return { attempts, value: n('now') };
    default:
      throw new Error(`${rule.kpi} is not batched`);
  }
}

/** The query of one grouping: its columns, and the aggregates asked for, over starts lo..hi. */
function groupingSql(
  database: string,
  by: readonly string[],
  aggregatesByAlias: ReadonlyMap<string, string>,
  lo: number,
  hi: number,
  only: string | null,
): string {
  // vm is either side: an arrayJoin of the two, which doubles the rows (so only where grouped by it).
  const columns = by
    .map((b) => (b === 'vm' ? 'arrayJoin(arrayDistinct([caller_vm, callee_vm])) AS g_vm' : `${b} AS g_${b}`))
    .map((c) => `${c}, `)
    .join('');
  const key = `arrayStringConcat([${by.map((b) => `g_${b}`).join(', ')}], '\\x1f')`;
  return `SELECT ${by.map((b) => `g_${b}, `).join('')}${[...aggregatesByAlias].map(([a, expr]) => `${expr} AS ${a}`).join(',\n  ')}
FROM (
  SELECT ${columns}toUnixTimestamp64Milli(start) AS s, is_edge AS e, outcome AS o, failed AS f, pdd_ms AS p, call_id AS id
  FROM ${qualifiedName(database, 'calls')} FINAL
  WHERE start >= fromUnixTimestamp64Milli(${lo}) AND start <= fromUnixTimestamp64Milli(${hi})
)
WHERE ${by.length === 0 ? '1' : by.map((b) => `g_${b} != ''`).join(' AND ')}${only === null || by.length === 0 ? '' : ` AND has({${only}:Array(String)}, ${key})`}
${by.length === 0 ? '' : `GROUP BY ${by.map((b) => `g_${b}`).join(', ')}`}`;
}

/** A group's key in examples queries: its values joined by U+001F. */
const keyOf = (by: readonly string[], group: Record<string, string>) =>
  by.map((b) => group[b] ?? '').join('\x1f');

/**
 * The values of batched rules at one instant, by rule name, without examples (batchedExamples
 * fetches those for the groups that need them): one query per grouping (the rules grouped the same
 * way), each aggregate computed once however many rules share it (rules that differ only in
 * threshold, `for` or labels read the same aggregates).
 */
export async function batchedRuleValues(
  client: ClickHouseClient,
  database: string,
  rules: AlertRules,
  batch: readonly AlertRule[],
  at: number,
): Promise<Map<string, GroupValue[]>> {
  const out = new Map<string, GroupValue[]>();
  const groupings = new Map<string, AlertRule[]>();
  for (const rule of batch) {
    const key = JSON.stringify([...rule.by].sort());
    groupings.set(key, [...(groupings.get(key) ?? []), rule]);
  }
  for (const [key, group] of groupings) {
    const by = JSON.parse(key) as string[];
    const aliases = new Map<string, string>();
    const alias = (expr: string) => {
      const known = aliases.get(expr);
      if (known !== undefined) return known;
      const a = `a${aliases.size}`;
      aliases.set(expr, a);
      return a;
    };
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    const names = group.map((rule) => {
      const { exprs, lo: l, hi: h } = aggregates(rule, boundsOf(rule, rules, at), rules.examples);
      lo = Math.min(lo, l);
      hi = Math.max(hi, h);
      const { examples: _examples, ...figures } = exprs;
      return Object.fromEntries(Object.entries(figures).map(([name, expr]) => [name, alias(expr)]));
    });
    const sql = groupingSql(database, by, new Map([...aliases].map(([expr, a]) => [a, expr])), lo, hi, null);
    const result = await client.query({ query: sql, format: 'JSONEachRow' });
    const rows = await result.json<Row>();
    group.forEach((rule, i) => {
      const named = names[i]!;
      const values: GroupValue[] = [];
      for (const r of rows) {
        const a = (name: string) => r[named[name]!];
        // A group is the rule's when it has rows in the rule's own window (as kpis.ts's query returns it).
        if (Number(a('rows')) === 0) continue;
        values.push({
          group: Object.fromEntries(rule.by.map((b) => [b, String(r[`g_${b}`])])),
          ...ruleValueOf(rule, a),
          examples: [],
        });
      }
      out.set(rule.name, values);
    });
  }
  return out;
}

/**
 * The examples of a batched rule's groups (those going pending or firing, or still firing): a few
 * Call-IDs of what made each value, by group key. Group values reach the SQL only as a parameter.
 */
export async function batchedExamples(
  client: ClickHouseClient,
  database: string,
  rules: AlertRules,
  rule: AlertRule,
  at: number,
  groups: ReadonlyArray<Record<string, string>>,
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (groups.length === 0 || rules.examples === 0) return out;
  const { exprs, lo, hi } = aggregates(rule, boundsOf(rule, rules, at), rules.examples);
  const by = [...rule.by].sort();
  const sql = groupingSql(database, by, new Map([['examples', exprs.examples!]]), lo, hi, 'groups');
  const result = await client.query({
    query: sql,
    query_params: { groups: groups.map((g) => keyOf(by, g)) },
    format: 'JSONEachRow',
  });
  for (const r of await result.json<Row>())
    out.set(
      keyOf(by, Object.fromEntries(by.map((b) => [b, String(r[`g_${b}`])]))),
      ((r.examples as unknown[]) ?? []).map(String),
    );
  return out;
}

/** The examples of a group from batchedExamples' answer. */
export function examplesOf(
  found: ReadonlyMap<string, string[]>,
  rule: AlertRule,
  group: Record<string, string>,
): string[] {
  return found.get(keyOf([...rule.by].sort(), group)) ?? [];
}

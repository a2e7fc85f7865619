/**
 * TEST-ONLY: every panel and variable query of the generated dashboards, expanded as Grafana and the
 * ClickHouse datasource would expand it (dashboards/macros.ts) and run against a store, with the
 * shape its panel needs checked: a time column first for a time series, named columns for a table,
 * one value for a stat. Used by the dashboards' own test (a generator capture) and by the SIPp and
 * Kamailio call tests (their real runs, stored).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import type { CallsSummary } from '../analyze/calls/kpis.js';
import { allDashboards } from '../dashboards/boards/index.js';
import { KPI_EXPRESSIONS, type KpiName } from '../dashboards/boards/noc-overview.js';
import { ALL, expandMacros, type MacroContext } from '../dashboards/macros.js';
import { openStore } from '../ingest/store/client.js';
import { REPO_ROOT } from './oracle/tools.js';

export interface DashboardQuery {
  dashboard: string;
  title: string;
  /** The panel's type, or 'variable'. */
  type: string;
  refId: string;
  rawSql: string;
  /** 0 time series, 1 table. */
  format: number;
}

interface PanelJson {
  type?: string;
  title?: string;
  targets?: Array<{ refId?: string; rawSql?: string; format?: number }>;
  panels?: PanelJson[];
}

/** Every query of the dashboard: its panels' targets and its query variables. */
export function dashboardQueries(d: Dashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: PanelJson[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        if (t.rawSql !== undefined)
          out.push({
            dashboard: d.uid ?? d.title ?? '',
            title: p.title ?? '',
            type: p.type ?? '',
            refId: t.refId ?? 'A',
            rawSql: t.rawSql,
            format: t.format ?? 1,
          });
      walk(p.panels ?? []);
    }
  };
  walk((d.panels ?? []) as PanelJson[]);
  for (const a of d.annotations?.list ?? []) {
    const t = a.target as { rawSql?: string; format?: number } | undefined;
    if (t?.rawSql !== undefined)
      out.push({
        dashboard: d.uid ?? d.title ?? '',
        title: a.name,
        type: 'annotation',
        refId: a.name,
        rawSql: t.rawSql,
        format: t.format ?? 1,
      });
  }
  for (const v of d.templating?.list ?? [])
    if (v.type === 'query' && typeof v.query === 'string')
      out.push({
        dashboard: d.uid ?? d.title ?? '',
        title: v.name,
        type: 'variable',
        refId: v.name,
        rawSql: v.query,
        format: 1,
      });
  return out;
}

export function allQueries(): DashboardQuery[] {
  return allDashboards().flatMap(({ dashboard }) => dashboardQueries(dashboard));
}

/** Every variable of every dashboard at "All" (lists) or empty (text), as a dashboard opens. */
export const OPENING_VARS: MacroContext['vars'] = {
  vm: [ALL],
  node: [ALL],
  peer: [ALL],
  outcome: [ALL],
  user: '',
  call_id: '',
  status: '',
};

export interface QueryResult {
  query: DashboardQuery;
  sql: string;
  columns: Array<{ name: string; type: string }>;
  rows: unknown[][];
  ms: number;
}

export async function runQuery(
  client: ClickHouseClient,
  query: DashboardQuery,
  ctx: MacroContext,
): Promise<QueryResult> {
  const sql = expandMacros(query.rawSql, ctx);
  const started = performance.now();
  let result: { meta: Array<{ name: string; type: string }>; data: unknown[][] };
  try {
    const rs = await client.query({ query: sql, format: 'JSONCompact' });
    result = (await rs.json()) as typeof result;
  } catch (e) {
    throw new Error(`${query.dashboard} / ${query.title}: ${(e as Error).message}\n${sql}`);
  }
  return { query, sql, columns: result.meta, rows: result.data, ms: performance.now() - started };
}

/** What is wrong with a result's shape for its panel, or null. */
export function shapeProblem(r: QueryResult): string | null {
  const where = `${r.query.dashboard} / ${r.query.title}`;
  if (r.columns.length === 0) return `${where}: no columns`;
  if (r.columns.some((c) => c.name === '' || /^[a-z]+\(/i.test(c.name) || c.name.includes('tupleElement')))
    return `${where}: unnamed column among ${r.columns.map((c) => c.name).join(', ')}`;
  if (
    r.query.type === 'annotation' &&
    (r.columns[0]?.name !== 'time' || !r.columns.some((c) => c.name === 'text'))
  )
    return `${where}: an annotation needs time first and a text`;
  if (r.query.type === 'variable' && r.columns.length !== 1)
    return `${where}: a variable query needs one column`;
  if (r.query.format === 0) {
    if (!/^(Nullable\()?DateTime/.test(r.columns[0]!.type))
      return `${where}: a time series needs its time first, got ${r.columns[0]!.name} ${r.columns[0]!.type}`;
    if (!r.columns.slice(1).some((c) => /Int|Float|Decimal/.test(c.type)))
      return `${where}: a time series needs a number column`;
  }
  if (r.query.type === 'stat') {
    if (r.rows.length !== 1 || r.columns.length !== 1) return `${where}: a stat needs one value`;
    if (!/Int|Float|Decimal|Nothing/.test(r.columns[0]!.type)) return `${where}: a stat needs a number`;
  }
  return null;
}

/** Runs every query; returns the results and every shape problem. */
export async function runAllQueries(
  client: ClickHouseClient,
  ctx: MacroContext,
  queries: DashboardQuery[] = allQueries(),
): Promise<{ results: QueryResult[]; problems: string[] }> {
  const results: QueryResult[] = [];
  const problems: string[] = [];
  for (const q of queries) {
    const r = await runQuery(client, q, ctx);
    results.push(r);
    const problem = shapeProblem(r);
    if (problem !== null) problems.push(problem);
  }
  return { results, problems };
}

/** What each KPI stat must show, from `callscope kpis --json`. */
export function expectedKpis(summary: CallsSummary): Record<KpiName, number | null> {
  return {
    attempts: summary.attempts,
    asr: summary.kpis.asr,
    ser: summary.kpis.ser,
    seer: summary.kpis.seer,
    ner: summary.kpis.ner,
    failedRatio: summary.kpis.failedRatio,
    acdSec: summary.kpis.acdSec,
    pddP95: summary.kpis.pddMs.p95,
  };
}

/** The KPI a stat panel's query shows (its one column is named after it). */
export function kpiOf(query: DashboardQuery): KpiName {
  const name = /\bAS (\w+) FROM/.exec(query.rawSql)?.[1];
  if (name === undefined || !(name in KPI_EXPRESSIONS)) throw new Error(`${query.title}: not a KPI stat`);
  return name as KpiName;
}

/** Each KPI stat's value against `expected`: one line per disagreement (6 decimals). */
export async function kpiMismatches(
  client: ClickHouseClient,
  ctx: MacroContext,
  expected: Record<KpiName, number | null>,
): Promise<string[]> {
  const out: string[] = [];
  for (const q of allQueries().filter((x) => x.type === 'stat')) {
    const kpi = kpiOf(q);
    const r = await runQuery(client, q, ctx);
    const raw = r.rows[0]?.[0] as number | string | null | undefined;
    const got = raw === null || raw === undefined ? null : Number(raw);
    const want = expected[kpi];
    const same = got === null || want === null ? got === want : Math.abs(got - want) < 5e-7;
    if (!same) out.push(`${q.title}: panel ${got}, callscope kpis ${want}`);
  }
  return out;
}

/**
 * Stores `pcaps` with `callscope run` into a fresh data dir under `dir`, then runs every dashboard
 * query over [since, until] at the opening values and compares the KPI stats with `callscope kpis
 * --json` for the same range. Returns the shape problems and KPI disagreements (both empty when right).
 */
export async function dashboardsOverStoredRuns(
  pcaps: string[],
  dir: string,
  since: Date,
  until: Date,
): Promise<{ problems: string[]; mismatches: string[]; attempts: number; results: QueryResult[] }> {
  const cli = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
  const data = join(dir, 'dashboards-store');
  const call = (args: string[]) => {
    const r = spawnSync(process.execPath, [cli, ...args, '--data-dir', data], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.status !== 0) throw new Error(`callscope ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  for (const pcap of pcaps) call(['run', '--pcap', pcap]);
  const summary = JSON.parse(
    call(['kpis', '--json', '--since', since.toISOString(), '--until', until.toISOString()]),
  ) as CallsSummary;
  const store = await openStore({ dataDir: data });
  try {
    const ctx: MacroContext = { from: since, to: until, intervalSec: 10, vars: { ...OPENING_VARS } };
    const { results, problems } = await runAllQueries(store.client, ctx);
    const mismatches = await kpiMismatches(store.client, ctx, expectedKpis(summary));
    return { problems, mismatches, attempts: summary.attempts, results };
  } finally {
    await store.close();
  }
}

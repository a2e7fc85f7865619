/**
 * Calls and their KPIs from the calls table (job.ts keeps it), by SQL: the same figures, by the same
 * rules, as the in-memory counter (kpis.ts) gives `analyze` (a test holds them equal), over any filter,
 * and grouped by VM, peer, node, hour or proxy destination. Read with FINAL (one version per call,
 * tombstones dropped). Values reach the SQL only as query parameters.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { CALL_OUTCOMES, type CallOutcome } from '../../core/call.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { type CallFilter, callWhere } from './filter.js';

type Row = Record<string, unknown>;

import type { CallKpis, CallsBySide, CallsSummary } from './kpis.js';

export type KpiGrouping = 'vm' | 'peer' | 'node' | 'hour' | 'destination';

async function select(
  client: ClickHouseClient,
  query: string,
  params: Record<string, unknown>,
): Promise<Row[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<Row>();
}

const num = (v: unknown): number => Number(v ?? 0);

/**
 * Per-call columns the aggregates read (ms times; what the counter reads from a record). Exported for
 * the dashboards' KPI panels, which count by the same SQL.
 */
export const CALL_FIGURES = `
  toUnixTimestamp64Milli(start) AS s_ms,
  if(answer IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(answer))) AS a_ms,
  toUnixTimestamp64Milli(\`end\`) AS e_ms,
  outcome AS o, final_status AS fs, billsec AS bs, bye_answered AS ba, pdd_ms AS pdd`;

/** The KPI aggregates over a subquery of CALL_FIGURES rows (the counter's formulas, kpis.ts). */
export const KPI_AGGREGATES = `
  count() AS attempts,
  countIf(o = 'answered') AS answered,
  countIf(o IN ('failed', 'noAnswer')) AS failed,
  countIf(o != 'inProgress') AS completed,
  countIf(o = 'redirected') AS redirected,
  countIf(o = 'answered' OR fs IN (480, 486, 600, 603)) AS effective,
  countIf(o = 'noAnswer' OR fs IN (408, 500, 503, 504)) AS ineffective,
  countIf(o = 'answered' AND ba) AS completed_by_bye,
  sumIf(bs, o = 'answered') AS billsec,
  arraySort(groupArrayIf(pdd, pdd IS NOT NULL)) AS pdds,
  ${CALL_OUTCOMES.map((o) => `countIf(o = '${o}') AS outcome_${o}`).join(',\n  ')}`;

function kpisOf(r: Row): { kpis: CallKpis; counts: Pick<CallsSummary, 'attempts' | 'answered' | 'failed'> } {
  const completed = num(r.completed);
  const answered = num(r.answered);
  const failed = num(r.failed);
  const setupBase = completed - num(r.redirected);
  const rounded = (n: number, d: number) => (d > 0 ? Math.round((n / d) * 1e6) / 1e6 : null);
  const pdds = (r.pdds as unknown[]).map(Number);
  const pct = (p: number) =>
    pdds.length === 0 ? null : pdds[Math.min(pdds.length - 1, Math.ceil((p / 100) * pdds.length) - 1)]!;
  return {
    counts: { attempts: num(r.attempts), answered, failed },
    kpis: {
      asr: rounded(answered, completed),
      ser: rounded(answered, setupBase),
      seer: rounded(num(r.effective), setupBase),
      ner: rounded(completed - failed, completed),
      isa: rounded(num(r.ineffective), completed),
      scr: rounded(num(r.completed_by_bye), completed),
      acdSec: answered > 0 ? Math.round((num(r.billsec) / answered) * 1000) / 1000 : null,
      failedRatio: rounded(failed, completed),
      pddMs: {
        mean:
          pdds.length === 0
            ? null
            : Math.round((pdds.reduce((a, b) => a + b, 0) / pdds.length) * 1000) / 1000,
        p50: pct(50),
        p95: pct(95),
        max: pdds.length === 0 ? null : pdds[pdds.length - 1]!,
      },
    },
  };
}

/**
 * The calls part of a summary (CallsSummary) from the calls table: equal to what the in-memory
 * counter makes of the same records.
 */
export async function storedCallsSummary(
  client: ClickHouseClient,
  database: string,
  filter: CallFilter = {},
): Promise<CallsSummary> {
  const calls = qualifiedName(database, 'calls');
  // KPIs over each call's edge; per VM and peer over every leg (as the counter counts them).
  const edges = callWhere({ ...filter, legs: false });
  const legs = callWhere({ ...filter, legs: true });
  const [totals] = await select(
    client,
    `SELECT ${KPI_AGGREGATES} FROM (SELECT ${CALL_FIGURES} FROM ${calls} FINAL WHERE ${edges.sql})`,
    edges.params,
  );
  const legCount = await select(
    client,
    `SELECT countIf(NOT is_edge) AS legs FROM ${calls} FINAL WHERE ${legs.sql}`,
    legs.params,
  );
  const statuses = await select(
    client,
    `SELECT if(final_status IS NULL, 'none', toString(final_status)) AS status, count() AS n
     FROM ${calls} FINAL WHERE ${edges.sql} GROUP BY status ORDER BY status`,
    edges.params,
  );
  // Per second: calls started, answered calls up (+ at answer, − at end), attempts waiting (+ at
  // start, − when answered or settled); the peaks are the running sums' maxima.
  const [peaks] = await select(
    client,
    `SELECT max(up) AS peak_up, max(waiting) AS peak_waiting, max(starts) AS peak_cps FROM (
       SELECT sum(du) OVER w AS up, sum(dw) OVER w AS waiting, st AS starts FROM (
         SELECT sec, sum(du) AS du, sum(dw) AS dw, sum(st) AS st FROM (
           SELECT tupleElement(e, 1) AS sec, tupleElement(e, 2) AS du, tupleElement(e, 3) AS dw,
                  tupleElement(e, 4) AS st
           FROM (
             SELECT arrayJoin(arrayConcat(
               [(intDiv(s_ms, 1000), 0, 1, 1)],
               if(a_ms IS NOT NULL, [(intDiv(assumeNotNull(a_ms), 1000), 1, -1, 0), (intDiv(e_ms, 1000), -1, 0, 0)],
                  if(o = 'inProgress', [], [(intDiv(e_ms, 1000), 0, -1, 0)]))
             )) AS e
             FROM (SELECT ${CALL_FIGURES} FROM ${calls} FINAL WHERE ${edges.sql})
           )
         ) GROUP BY sec
       ) WINDOW w AS (ORDER BY sec ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
     )`,
    edges.params,
  );
  const sides = async (column: 'vm' | 'ip') =>
    select(
      client,
      `SELECT tupleElement(side, 1) AS key, tupleElement(side, 2) AS dir, count() AS attempts,
              countIf(outcome = 'answered') AS answered, countIf(failed) AS failed
       FROM (SELECT arrayJoin([(caller_${column}, 'out'), (callee_${column}, 'in')]) AS side, outcome, failed
             FROM ${calls} FINAL WHERE ${legs.sql})
       WHERE key != '' GROUP BY key, dir ORDER BY key LIMIT 20000`,
      legs.params,
    );
  const { kpis, counts } = kpisOf(totals ?? {});
  const outcomes = Object.fromEntries(CALL_OUTCOMES.map((o) => [o, num(totals?.[`outcome_${o}`])])) as Record<
    CallOutcome,
    number
  >;
  const side = (rows: Row[]) => {
    const keys = new Map<string, { out: CallsBySide; in: CallsBySide }>();
    const empty = (): CallsBySide => ({ attempts: 0, answered: 0, failed: 0, failedRatio: null, asr: null });
    for (const r of rows) {
      const key = String(r.key);
      const entry = keys.get(key) ?? { out: empty(), in: empty() };
      const attempts = num(r.attempts);
      const ratioOf = (n: number) => (attempts > 0 ? Math.round((n / attempts) * 1e6) / 1e6 : null);
      entry[r.dir === 'out' ? 'out' : 'in'] = {
        attempts,
        answered: num(r.answered),
        failed: num(r.failed),
        failedRatio: ratioOf(num(r.failed)),
        asr: ratioOf(num(r.answered)),
      };
      keys.set(key, entry);
    }
    return [...keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  };
  return {
    ...counts,
    legs: num(legCount[0]?.legs),
    outcomes,
    finalStatus: Object.fromEntries(statuses.map((r) => [String(r.status), num(r.n)])),
    kpis,
    peakConcurrent: num(peaks?.peak_up),
    peakPending: num(peaks?.peak_waiting),
    peakCps: num(peaks?.peak_cps),
    byVm: side(await sides('vm')).map(([vm, v]) => ({ vm, ...v })),
    byPeer: side(await sides('ip')).map(([ip, v]) => ({ ip, ...v })),
  };
}

/** One group's KPIs (`callscope kpis --by ...`). */
export interface KpiGroup {
  /** The VM, peer address, node, hour (ISO) or destination address. */
  key: string;
  /** vm and peer: 'out' (the side placed the calls) or 'in' (received them); null otherwise. */
  direction: 'out' | 'in' | null;
  attempts: number;
  answered: number;
  failed: number;
  outcomes: Record<CallOutcome, number>;
  kpis: CallKpis;
}

/** Per destination behind a proxy: the INVITE branches it got, answered, and those failed over. */
export interface DestinationGroup {
  destination: string;
  branches: number;
  answered: number;
  /** Branches that got no 2xx while a later branch of the same hop was tried (the proxy failed over). */
  failovers: number;
  /** Branches without any final response (the proxy timed them out, or nothing came). */
  unanswered: number;
  finalStatus: Record<string, number>;
}

/** KPIs by VM or peer (each direction), node or hour, each group as the summary computes them. */
export async function storedKpisBy(
  client: ClickHouseClient,
  database: string,
  filter: CallFilter,
  by: Exclude<KpiGrouping, 'destination'>,
): Promise<KpiGroup[]> {
  const calls = qualifiedName(database, 'calls');
  const where = callWhere(filter);
  const key =
    by === 'vm' || by === 'peer'
      ? `arrayJoin([(caller_${by === 'vm' ? 'vm' : 'ip'}, 'out'), (callee_${by === 'vm' ? 'vm' : 'ip'}, 'in')])`
      : by === 'node'
        ? `(node, '')`
        : `(formatDateTime(toStartOfHour(start), '%Y-%m-%dT%H:00:00Z'), '')`;
  const rows = await select(
    client,
    `SELECT tupleElement(g, 1) AS key, tupleElement(g, 2) AS dir, ${KPI_AGGREGATES}
     FROM (SELECT ${key} AS g, ${CALL_FIGURES} FROM ${calls} FINAL WHERE ${where.sql})
     GROUP BY key, dir ORDER BY key, dir DESC LIMIT 100000`,
    where.params,
  );
  return rows.map((r) => {
    const { kpis, counts } = kpisOf(r);
    return {
      key: String(r.key),
      direction: r.dir === '' ? null : (String(r.dir) as 'out' | 'in'),
      ...counts,
      outcomes: Object.fromEntries(CALL_OUTCOMES.map((o) => [o, num(r[`outcome_${o}`])])) as Record<
        CallOutcome,
        number
      >,
      kpis,
    };
  });
}

/** Branches per destination behind a proxy (hops after the caller's), over every leg of the filter. */
export async function storedDestinations(
  client: ClickHouseClient,
  database: string,
  filter: CallFilter,
): Promise<DestinationGroup[]> {
  const calls = qualifiedName(database, 'calls');
  const where = callWhere({ ...filter, legs: true });
  const rows = await select(
    client,
    `SELECT dst AS destination, count() AS branches, countIf(st >= 200 AND st < 300) AS answered,
            countIf(NOT (st >= 200 AND st < 300) AND later) AS failovers, countIf(st = 0) AS unanswered,
            groupArray(st) AS statuses
     FROM (
       SELECT tupleElement(b, 1) AS dst, tupleElement(b, 2) AS st, tupleElement(b, 3) AS later
       FROM (
         SELECT arrayJoin(arrayMap(i -> (branch_to[i], branch_status[i],
                   arrayExists(j -> j > i AND branch_hop[j] = branch_hop[i], arrayEnumerate(branch_hop))),
                 arrayFilter(i -> branch_hop[i] > 0, arrayEnumerate(branch_hop)))) AS b
         FROM ${calls} FINAL WHERE ${where.sql}
       )
     )
     GROUP BY destination ORDER BY destination LIMIT 100000`,
    where.params,
  );
  return rows.map((r) => {
    const finalStatus: Record<string, number> = {};
    for (const s of (r.statuses as unknown[]).map(Number)) {
      const k = s === 0 ? 'none' : String(s);
      finalStatus[k] = (finalStatus[k] ?? 0) + 1;
    }
    return {
      destination: String(r.destination),
      branches: num(r.branches),
      answered: num(r.answered),
      failovers: num(r.failovers),
      unanswered: num(r.unanswered),
      finalStatus,
    };
  });
}

/**
 * NOC overview: is traffic flowing and are calls succeeding, overall, per VM and per peer. The KPI
 * stats count each call once at its edge with the same SQL as `callscope kpis` (stored-kpis.ts), so
 * a panel and the command agree for the same range and filters (a test holds them equal).
 */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { CALL_FIGURES, KPI_AGGREGATES } from '../../analyze/calls/stored-kpis.js';
import { bars, type Steps, stat, table, timeseries } from '../panels.js';
import { CALL_SCOPE, nodeVariable, peerVariable, vmVariable } from '../variables.js';
import { CALL_DETAIL_LINK, dashboard, UIDS, withEventAnnotations } from './common.js';

/** Calls in range, one row each at its edge, as the KPI aggregates read them. */
const EDGE_CALLS = `SELECT ${CALL_FIGURES} FROM calls FINAL
  WHERE $__timeFilter_ms(start) AND is_edge AND ${CALL_SCOPE}`;

/** Each KPI as `callscope kpis` computes it from the aggregates (kpis.ts's formulas, rounded alike). */
export const KPI_EXPRESSIONS = {
  attempts: 'attempts',
  asr: 'if(completed > 0, round(answered / completed, 6), NULL)',
  ser: 'if(completed - redirected > 0, round(answered / (completed - redirected), 6), NULL)',
  seer: 'if(completed - redirected > 0, round(effective / (completed - redirected), 6), NULL)',
  ner: 'if(completed > 0, round((completed - failed) / completed, 6), NULL)',
  failedRatio: 'if(completed > 0, round(failed / completed, 6), NULL)',
  acdSec: 'if(answered > 0, round(billsec / answered, 3), NULL)',
  pddP95: 'if(length(pdds) = 0, NULL, pdds[toUInt64(greatest(1, ceil(0.95 * length(pdds))))])',
} as const;

export type KpiName = keyof typeof KPI_EXPRESSIONS;

/** A KPI stat panel's SQL: one column named after the KPI. */
export function kpiSql(kpi: KpiName): string {
  return `SELECT ${KPI_EXPRESSIONS[kpi]} AS ${kpi} FROM (SELECT ${KPI_AGGREGATES} FROM (${EDGE_CALLS}))`;
}

const RATIO_GOOD_HIGH: Steps = ['red', [0.3, 'orange'], [0.5, 'green']];
const FAILED: Steps = ['green', [0.05, 'orange'], [0.15, 'red']];

/** Per bucket of the panel's interval, how many calls were up (answered, not yet ended) or waiting. */
function concurrency(from: string, until: string, label: string, where: string): string {
  return `SELECT t AS time, count() AS "${label}" FROM (
    SELECT arrayJoin(arrayMap(i -> toDateTime((intDiv(toUnixTimestamp(${from}), $__interval_s) + i) * $__interval_s),
      range(toUInt64(least(2000, greatest(0, intDiv(toUnixTimestamp(${until}), $__interval_s)
        - intDiv(toUnixTimestamp(${from}), $__interval_s)) + 1))))) AS t
    FROM calls FINAL
    WHERE start >= $__fromTime - INTERVAL 1 DAY AND start <= $__toTime AND is_edge AND ${CALL_SCOPE} AND ${where})
  WHERE t >= $__fromTime AND t <= $__toTime GROUP BY t ORDER BY t`;
}

/**
 * The KPIs per VM or peer, each as caller ("out") and as callee ("in"): `callscope kpis --by vm|peer`
 * (stored-kpis.ts's grouping over the calls' edges, the same aggregates and formulas).
 */
export function kpisBySideSql(column: 'vm' | 'ip'): string {
  const name = column === 'vm' ? 'vm' : 'peer';
  return `SELECT tupleElement(g, 1) AS ${name}, tupleElement(g, 2) AS direction, attempts, answered, failed,
      ${KPI_EXPRESSIONS.asr} AS asr, ${KPI_EXPRESSIONS.ser} AS ser, ${KPI_EXPRESSIONS.seer} AS seer,
      ${KPI_EXPRESSIONS.ner} AS ner, ${KPI_EXPRESSIONS.failedRatio} AS failed_ratio,
      ${KPI_EXPRESSIONS.pddP95} AS pdd_p95_ms
    FROM (SELECT g, ${KPI_AGGREGATES}
          FROM (SELECT arrayJoin([(caller_${column}, 'out'), (callee_${column}, 'in')]) AS g, ${CALL_FIGURES}
                FROM calls FINAL WHERE $__timeFilter_ms(start) AND is_edge AND ${CALL_SCOPE})
          GROUP BY g)
    WHERE ${name} != '' ORDER BY failed_ratio DESC, attempts DESC, ${name}, direction LIMIT 500`;
}

export function nocOverview(): Dashboard {
  const s = { w: 3, h: 4 };
  return withEventAnnotations(
    dashboard(
      UIDS.overview,
      'NOC overview',
      'Calls per second, concurrency, the call KPIs (each call counted once, at its edge) by VM and by peer, final statuses, PDD and the worst calls. Alert firings and VIP failovers are drawn as annotations.',
    ),
  )
    .withVariable(vmVariable())
    .withVariable(nodeVariable())
    .withVariable(peerVariable())
    .withPanel(
      stat('Attempts', kpiSql('attempts'), { size: s, description: 'Call attempts (edges) in range.' }),
    )
    .withPanel(
      stat('ASR', kpiSql('asr'), {
        size: s,
        unit: 'percentunit',
        steps: RATIO_GOOD_HIGH,
        description: 'Answered / completed attempts.',
      }),
    )
    .withPanel(stat('SER', kpiSql('ser'), { size: s, unit: 'percentunit', steps: RATIO_GOOD_HIGH }))
    .withPanel(stat('SEER', kpiSql('seer'), { size: s, unit: 'percentunit', steps: RATIO_GOOD_HIGH }))
    .withPanel(
      stat('NER', kpiSql('ner'), {
        size: s,
        unit: 'percentunit',
        steps: ['red', [0.9, 'orange'], [0.97, 'green']],
      }),
    )
    .withPanel(
      stat('Failed-call ratio', kpiSql('failedRatio'), {
        size: s,
        unit: 'percentunit',
        steps: FAILED,
        description: "The NOC's failed calls (failed, no answer) / completed attempts.",
      }),
    )
    .withPanel(
      stat('PDD p95', kpiSql('pddP95'), {
        size: s,
        unit: 'ms',
        steps: ['green', [3000, 'orange'], [6000, 'red']],
      }),
    )
    .withPanel(stat('ACD', kpiSql('acdSec'), { size: s, unit: 's' }))
    .withPanel(
      timeseries(
        'Calls per second by outcome',
        `SELECT $__timeInterval_ms(start) AS time, outcome, count() / $__interval_s AS cps
         FROM calls FINAL WHERE $__timeFilter_ms(start) AND is_edge AND ${CALL_SCOPE}
         GROUP BY time, outcome ORDER BY time`,
        { unit: 'cps' },
      ),
    )
    .withPanel(
      timeseries(
        'Concurrent answered calls',
        concurrency('assumeNotNull(answer)', '`end`', 'answered calls up', 'answer IS NOT NULL'),
      ),
    )
    .withPanel(
      timeseries(
        'Pending attempts (started, not yet answered or settled)',
        concurrency('start', 'coalesce(answer, `end`)', 'pending attempts', '1'),
      ),
    )
    .withPanel(
      timeseries(
        'Failed-call ratio by VM',
        `SELECT $__timeInterval_ms(start) AS time, vm,
           countIf(failed) / greatest(1, countIf(outcome != 'inProgress')) AS failed_ratio
         FROM (SELECT start, failed, outcome, arrayJoin(arrayDistinct([caller_vm, callee_vm])) AS vm
               FROM calls FINAL WHERE $__timeFilter_ms(start) AND ${CALL_SCOPE})
         WHERE vm != '' GROUP BY time, vm ORDER BY time`,
        { unit: 'percentunit', steps: FAILED },
      ),
    )
    .withPanel(
      table('KPIs by VM (as caller "out" and callee "in")', kpisBySideSql('vm'), {
        steps: FAILED,
        description:
          'As `callscope kpis --by vm`: each call at its edge, counted for each VM it has a side on.',
      }),
    )
    .withPanel(
      table('KPIs by peer address', kpisBySideSql('ip'), {
        steps: FAILED,
        description: 'As `callscope kpis --by peer`.',
      }),
    )
    .withPanel(
      bars(
        'Top final statuses',
        `SELECT if(final_status IS NULL, 'none', concat(toString(final_status), ' ', any(reason_phrase))) AS status,
           count() AS calls
         FROM calls FINAL WHERE $__timeFilter_ms(start) AND is_edge AND ${CALL_SCOPE}
         GROUP BY final_status ORDER BY calls DESC LIMIT 10`,
      ),
    )
    .withPanel(
      bars(
        'Top Q.850 causes',
        `SELECT concat(toString(assumeNotNull(reason_cause)), ' ', any(coalesce(reason_text, ''))) AS cause,
           count() AS calls
         FROM calls FINAL WHERE $__timeFilter_ms(start) AND is_edge AND ${CALL_SCOPE}
           AND reason_protocol = 'Q.850' AND reason_cause IS NOT NULL
         GROUP BY reason_cause ORDER BY calls DESC LIMIT 10`,
      ),
    )
    .withPanel(
      timeseries(
        'PDD p50 / p95',
        `SELECT $__timeInterval_ms(start) AS time, quantileExact(0.5)(pdd_ms) AS p50, quantileExact(0.95)(pdd_ms) AS p95
         FROM calls FINAL WHERE $__timeFilter_ms(start) AND is_edge AND pdd_ms IS NOT NULL AND ${CALL_SCOPE}
         GROUP BY time ORDER BY time`,
        { unit: 'ms', size: { w: 8, h: 8 } },
      ),
    )
    .withPanel(
      table(
        'Worst MOS',
        `SELECT start, call_id, from_user, to_user, caller_vm, callee_vm, mos_min, loss_max, jitter_max
         FROM calls FINAL WHERE $__timeFilter_ms(start) AND mos_min IS NOT NULL AND ${CALL_SCOPE}
         ORDER BY mos_min ASC, start LIMIT 20`,
        { size: { w: 24, h: 8 }, links: [CALL_DETAIL_LINK], steps: ['red', [3.1, 'orange'], [3.6, 'green']] },
      ),
    )
    .build();
}

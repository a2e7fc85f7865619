/** What every dashboard shares: the time picker, the tags, the link to call detail. */
import {
  AnnotationQueryBuilder,
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { FAILOVER_ANNOTATION_SQL } from '../../analyze/failover/queries.js';
import { ClickHouseQuery, DATASOURCE } from '../clickhouse.js';

/** The uids the dashboards link each other by. */
export const UIDS = {
  overview: 'callscope-noc-overview',
  search: 'callscope-call-search',
  detail: 'callscope-call-detail',
  media: 'callscope-media-quality',
  vmLoad: 'callscope-vm-load',
  peers: 'callscope-peers',
  health: 'callscope-capture-health',
} as const;

/** A table cell's link to the call detail of the row's `call_id` field (percent-encoded: Call-IDs hold `#`, `&`). */
export const CALL_DETAIL_LINK = {
  title: 'Call detail',
  url: `/d/${UIDS.detail}/call-detail?var-call_id=\${__data.fields.call_id:percentencode}&\${__url_time_range}`,
};

/**
 * Events drawn over the time series: the built-in evaluator's firings and resolutions (the alerts
 * table) and virtual-IP failovers (the failovers table). Grafana's own alert rules show on the NOC
 * overview by their `__dashboardUid__` annotation as well.
 */
export const EVENT_ANNOTATIONS = [
  {
    name: 'callscope alerts',
    color: 'red',
    sql: `SELECT time, concat(rule, ' ', state, ': ',
         arrayStringConcat(arrayMap(k -> concat(k, '=', labels[k]), arrayFilter(k -> k != 'alertname', mapKeys(labels))), ' '),
         ' (value ', if(value IS NULL, 'none', toString(round(assumeNotNull(value), 4))), ')') AS text,
       [rule, state] AS tags
     FROM alerts WHERE $__timeFilter_ms(time) AND state IN ('firing', 'resolved')
     ORDER BY time LIMIT 1000`,
  },
  { name: 'VIP failovers', color: 'orange', sql: FAILOVER_ANNOTATION_SQL },
] as const;

/** The dashboard's annotation queries for the alerts and failovers. */
export function withEventAnnotations(d: DashboardBuilder): DashboardBuilder {
  for (const a of EVENT_ANNOTATIONS)
    d.annotation(
      new AnnotationQueryBuilder()
        .name(a.name)
        .datasource({ ...DATASOURCE })
        .enable(true)
        .iconColor(a.color)
        .target(new ClickHouseQuery(a.sql, 'table', 'Anno')),
    );
  return d;
}

export function dashboard(uid: string, title: string, description: string): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['callscope'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .time({ from: 'now-6h', to: 'now' })
    .refresh('1m')
    .timezone('browser')
    .link(
      new DashboardLinkBuilder('callscope')
        .type(DashboardLinkType.Dashboards)
        .tags(['callscope'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    );
}

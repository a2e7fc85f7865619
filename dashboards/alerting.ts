/**
 * The alert rules file as Grafana alert rules (provisioning/alerting/), for the distributed setup
 * where Grafana Alerting and Alertmanager page the NOC: each rule is a ClickHouse query (the same SQL
 * the built-in evaluator runs, analyze/alerts/kpis.ts, cut to its labels and value and to the groups
 * with enough attempts), a Reduce (last) and a Threshold with the rule's hysteresis as its recovery
 * threshold. A contact point (Alertmanager, and a webhook) and a notification policy go with them.
 *
 * The rules are built with the foundation SDK's alerting builders (validated against its schema);
 * the provisioning file is Grafana's file format of the same rules.
 */
import type * as alerting from '@grafana/grafana-foundation-sdk/alerting';
import { QueryBuilder, RuleBuilder, RuleGroupBuilder } from '@grafana/grafana-foundation-sdk/alerting';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { TypeReduceBuilder, TypeThresholdBuilder } from '@grafana/grafana-foundation-sdk/expr';
import { kpiSql } from '../analyze/alerts/kpis.js';
import { type AlertRule, type AlertRules, formatDuration } from '../analyze/alerts/rules.js';
import { ClickHouseQuery, DATASOURCE } from './clickhouse.js';

export const ALERT_FOLDER_UID = 'callscope-alerts';
export const ALERT_GROUP = 'callscope';
export const CONTACT_POINT = 'callscope-noc';
const EXPR = { type: '__expr__', uid: '__expr__' } as const;

/** The rule's SQL as Grafana sends it: the groups' labels and value, groups with too few attempts left out. */
export function grafanaRuleSql(rule: AlertRule, rules: AlertRules): string {
  const labels = rule.by.map((b) => `${b}, `).join('');
  return `SELECT ${labels}value FROM (
${kpiSql(rule, (t) => t, 0, rules.delayMs)}
) WHERE attempts >= ${rule.minAttempts} AND value IS NOT NULL`;
}

/** Grafana's template language for ours: $value is the Reduce's value, the rest has no counterpart. */
function grafanaTemplate(text: string): string {
  return text
    .replace(/\{\{\s*\$value\s*\}\}/g, '{{ $values.B.Value }}')
    .replace(/\{\{\s*\$threshold\s*\}\}/g, '{{ $values.C.Value }}')
    .replace(/\{\{\s*\$attempts\s*\}\}/g, '(min. attempts met)')
    .replace(/\{\{\s*\$examples\s*\}\}/g, '(examples: callscope alerts --list)')
    .replace(/\{\{\s*\$rule\s*\}\}/g, '{{ $labels.alertname }}');
}

const uidOf = (rule: AlertRule) => `callscope-${rule.name}`.slice(0, 40);
const seconds = (ms: number) => Math.round(ms / 1000);

/** One rule, as the SDK builds it (its JSON validates against the SDK's alerting schema). */
export function grafanaRule(rule: AlertRule, rules: AlertRules): alerting.Rule {
  const range: alerting.RelativeTimeRange = {
    from: seconds(rule.windowMs + rules.delayMs),
    to: seconds(rules.delayMs),
  };
  const op = rule.direction === 'above' ? 'gt' : 'lt';
  const condition: {
    evaluator: { params: number[]; type: 'gt' | 'lt' };
    unloadEvaluator?: { params: number[]; type: 'gt' | 'lt' };
  } = { evaluator: { params: [rule.threshold], type: op } };
  // Recovery threshold: resolve only once back past `resolve` (our hysteresis).
  if (rule.resolve !== rule.threshold)
    condition.unloadEvaluator = { params: [rule.resolve], type: rule.direction === 'above' ? 'lt' : 'gt' };
  const expr = (refId: string, model: cog.Builder<cog.Dataquery>) =>
    new QueryBuilder(refId).datasourceUid(EXPR.uid).relativeTimeRange(range).model(model);
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(rule.annotations)) annotations[k] = grafanaTemplate(v);
  return (
    new RuleBuilder(rule.name)
      .uid(uidOf(rule))
      .orgID(1)
      .folderUID(ALERT_FOLDER_UID)
      .ruleGroup(ALERT_GROUP)
      .condition('C')
      .withQuery(
        new QueryBuilder('A')
          .datasourceUid(DATASOURCE.uid)
          .relativeTimeRange(range)
          .model(new ClickHouseQuery(grafanaRuleSql(rule, rules), 'table', 'A')),
      )
      .withQuery(
        expr('B', new TypeReduceBuilder().refId('B').datasource(EXPR).expression('A').reducer('last')),
      )
      .withQuery(
        expr(
          'C',
          new TypeThresholdBuilder().refId('C').datasource(EXPR).expression('B').conditions([condition]),
        ),
      )
      // No rows: every group had too few attempts. That is "nothing to judge", not a failure.
      .noDataState('OK')
      .execErrState('Error')
      .forDuration(formatDuration(rule.forMs))
      .labels({ ...rule.labels, source: 'callscope' })
      .annotations({ ...annotations, __dashboardUid__: 'callscope-noc-overview' })
      .build()
  );
}

/** The rule group as the SDK builds it. */
export function grafanaRuleGroup(rules: AlertRules): alerting.RuleGroup {
  const group = new RuleGroupBuilder(ALERT_GROUP)
    .folderUid(ALERT_FOLDER_UID)
    .interval(seconds(rules.intervalMs));
  for (const rule of rules.rules) group.withRule({ build: () => grafanaRule(rule, rules) });
  return group.build();
}

/**
 * provisioning/alerting/callscope.yaml's content: the rule group in Grafana's file format, the contact
 * point (Alertmanager and, when set, a webhook; URLs from the environment) and the policy routing
 * callscope's alerts to it, grouped by rule and its group labels.
 */
export function alertingProvisioning(rules: AlertRules): Record<string, unknown> {
  // Through JSON: the SDK's query models carry a marker method.
  const group = JSON.parse(JSON.stringify(grafanaRuleGroup(rules))) as alerting.RuleGroup;
  return {
    apiVersion: 1,
    groups: [
      {
        orgId: 1,
        name: group.title,
        folder: 'callscope',
        interval: `${group.interval}s`,
        rules: (group.rules ?? []).map((r) => ({
          uid: r.uid,
          title: r.title,
          condition: r.condition,
          data: r.data.map((q) => ({
            refId: q.refId,
            relativeTimeRange: q.relativeTimeRange,
            datasourceUid: q.datasourceUid,
            model: q.model,
          })),
          noDataState: r.noDataState,
          execErrState: r.execErrState,
          for: r.for,
          labels: r.labels,
          annotations: r.annotations,
        })),
      },
    ],
    contactPoints: [
      {
        orgId: 1,
        name: CONTACT_POINT,
        receivers: [
          {
            uid: 'callscope-alertmanager',
            type: 'prometheus-alertmanager',
            settings: { url: '$ALERTMANAGER_URL' },
            disableResolveMessage: false,
          },
        ],
      },
    ],
    policies: [
      {
        orgId: 1,
        receiver: CONTACT_POINT,
        group_by: ['alertname', ...new Set(rules.rules.flatMap((r) => r.by))],
        group_wait: '30s',
        group_interval: '5m',
        repeat_interval: '4h',
      },
    ],
  };
}

/**
 * What only the process that owns it can see, as Prometheus alerting rules over callscope's metrics
 * (docs/METRICS.md): a capture agent's Kafka spool growing (the brokers are not keeping up or not
 * reachable), ingest consumers falling behind, and capture drops seen by Prometheus rather than the
 * store. For the distributed setup: load `prometheus/callscope-rules.yml` in Prometheus'
 * `rule_files` and point its `alerting` at the same Alertmanager.
 */
export function prometheusRules(): Record<string, unknown> {
  return {
    groups: [
      {
        name: 'callscope',
        rules: [
          {
            alert: 'kafka-spool-growing',
            expr: 'deriv(callscope_kafka_spool_bytes[5m]) > 0 and callscope_kafka_spool_bytes > 1048576',
            for: '10m',
            labels: { severity: 'warning', source: 'callscope' },
            annotations: {
              summary:
                '{{ $labels.instance }}: the Kafka spool holds {{ $value | humanize1024 }}B and keeps growing',
              description:
                'Events wait on disk because Kafka does not take them (brokers down or too slow). Nothing is lost until the spool is full.',
            },
          },
          {
            alert: 'kafka-consumer-lag',
            expr: 'sum by (instance, topic) (callscope_kafka_consumer_lag) > 100000',
            for: '10m',
            labels: { severity: 'warning', source: 'callscope' },
            annotations: {
              summary: '{{ $labels.instance }} is {{ $value }} events behind on {{ $labels.topic }}',
            },
          },
          {
            alert: 'capture-drops',
            expr: 'sum by (instance, source, reason) (increase(callscope_capture_drops_total[5m])) > 0',
            labels: { severity: 'warning', source: 'callscope' },
            annotations: {
              summary:
                '{{ $labels.instance }} {{ $labels.source }} dropped {{ $value }} packets ({{ $labels.reason }}) in 5 min',
            },
          },
          {
            alert: 'events-lost',
            expr: 'sum by (instance, sink, reason) (increase(callscope_events_lost_total[5m])) > 0',
            labels: { severity: 'critical', source: 'callscope' },
            annotations: {
              summary:
                '{{ $labels.instance }} lost {{ $value }} events in its {{ $labels.sink }} sink ({{ $labels.reason }})',
            },
          },
        ],
      },
    ],
  };
}

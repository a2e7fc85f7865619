/**
 * The built-in alert evaluator (docs/ALERTS.md): every interval, each rule's KPI query over its
 * window, each group's value through the rule's state (state.ts), every transition written to the
 * alerts table and the firing and resolved alerts handed to the notifiers. It needs the store and
 * nothing else (no Grafana, no Prometheus).
 *
 * Times: evaluations happen at multiples of the interval (wall clock, ms since the epoch), and each
 * window ends `delay` before the evaluation, so that the calls job (a cycle of ~2 s) has written the
 * calls it judges. A replay (`alerts --evaluate`) evaluates the same instants over stored data and so
 * gives the same transitions as the live evaluator gave, once the calls were written.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { AlertNotifier, AlertTransition, NotifiedAlert } from '../../core/alert.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { expandMacros } from '../../dashboards/macros.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { BATCHED_KPIS, batchedExamples, batchedRuleValues, examplesOf } from './batch.js';
import { kpiSql, windowOf } from './kpis.js';
import { alertAnnotations, alertLabels } from './labels.js';
import type { AlertRule, AlertRules } from './rules.js';
import { type FiringAlert, type GroupValue, RuleState, type StateChange } from './state.js';

/** Where transitions are stored (ingest/writer.ts StoreWriter.writeAlerts). */
export interface AlertsWriter {
  writeAlerts(transitions: readonly AlertTransition[], evaluator: string): Promise<void>;
}

export interface EvaluatorOptions {
  client: ClickHouseClient;
  database: string;
  rules: AlertRules;
  /** Stores transitions; absent: not stored (a replay). */
  writer?: AlertsWriter;
  notifiers?: readonly AlertNotifier[];
  /** Names the evaluator in the alerts table: node and command. */
  name?: string;
  logger?: Logger;
  /** The clock (tests); wall time by default. */
  now?: () => number;
}

export interface EvaluatorStats {
  evaluations: number;
  /** Evaluation instants missed because an evaluation ran past the next one (they are caught up). */
  caughtUp: number;
  transitions: number;
  firing: number;
  /** Rule queries that failed (the rule keeps its state; the next evaluation tries again). */
  queryFailures: number;
  /** Transitions that could not be stored (the table write failed after its retries). */
  unstored: number;
  lastEvaluationMs: number;
  lastError: string | null;
}

type Row = Record<string, unknown>;

/** Rounded for people; the state machine compares the exact value. */
export function shown(value: number | null): string {
  if (value === null) return 'none';
  return String(Math.round(value * 10_000) / 10_000);
}

/** `{{ $labels.vm }}`, `{{ $value }}`, `{{ $threshold }}`, `{{ $attempts }}`, `{{ $examples }}`, `{{ $rule }}`. */
export function fillTemplate(template: string, t: StateChange, rule: AlertRule): string {
  return template.replace(
    /\{\{\s*\$(\w+)(?:\.(\w+))?\s*\}\}/g,
    (whole, name: string, key: string | undefined) => {
      switch (name) {
        case 'labels':
          return key === undefined ? whole : (t.group[key] ?? rule.labels[key] ?? '');
        case 'value':
          return shown(t.value);
        case 'threshold':
          return String(t.threshold);
        case 'attempts':
          return String(t.attempts);
        case 'examples':
          return t.examples.join(', ');
        case 'rule':
          return rule.name;
        default:
          return whole;
      }
    },
  );
}

/** Labels and annotations of a transition, made safe for Alertmanager and the store. */
export function decorate(change: StateChange, rule: AlertRule, grafanaUrl: string): AlertTransition {
  const filled = Object.fromEntries(
    Object.entries(rule.annotations).map(([k, v]) => [k, fillTemplate(v, change, rule)]),
  );
  const annotations = alertAnnotations(filled, {
    value: shown(change.value),
    attempts: String(change.attempts),
    examples: change.examples.join('\n'),
    calls_url:
      grafanaUrl !== '' && change.examples.length > 0
        ? `${grafanaUrl.replace(/\/$/, '')}/d/callscope-call-detail?var-call_id=${encodeURIComponent(change.examples[0]!)}`
        : '',
  });
  const { group: _group, ...rest } = change;
  // Group labels after the rule's: a group's value (a VM, an address) names the alert.
  return { ...rest, labels: alertLabels(rule.name, rule.labels, change.group), annotations };
}

/** The values of one rule at one evaluation instant, by its own query (kpis.ts: Grafana's SQL). */
export async function ruleValues(
  client: ClickHouseClient,
  database: string,
  rules: AlertRules,
  rule: AlertRule,
  at: number,
): Promise<GroupValue[]> {
  const { from, to } = windowOf(rule, rules.delayMs, at);
  const sql = expandMacros(
    kpiSql(rule, (t) => qualifiedName(database, t), rules.examples, rules.delayMs),
    { from: new Date(from), to: new Date(to), intervalSec: Math.round(rules.intervalMs / 1000), vars: {} },
  );
  const result = await client.query({ query: sql, format: 'JSONEachRow' });
  const rows = await result.json<Row>();
  return rows.map((r) => ({
    group: Object.fromEntries(rule.by.map((b) => [b, String(r[b] ?? '')])),
    value: r.value === null || r.value === undefined ? null : Number(r.value),
    attempts: Number(r.attempts ?? 0),
    examples: ((r.examples as unknown[] | undefined) ?? []).map(String),
  }));
}

export class AlertEvaluator {
  private readonly states: Map<string, RuleState>;
  private readonly logger: Logger;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** The last instant evaluated (ms): the next one is the following multiple of the interval. */
  private last = 0;
  /** Fingerprint → when it began firing, of the alerts firing after the last evaluation. */
  private firingSince = new Map<string, number>();
  private readonly counters: EvaluatorStats = {
    evaluations: 0,
    caughtUp: 0,
    transitions: 0,
    firing: 0,
    queryFailures: 0,
    unstored: 0,
    lastEvaluationMs: 0,
    lastError: null,
  };

  constructor(private readonly options: EvaluatorOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.states = new Map(options.rules.rules.map((r) => [r.name, new RuleState(r)]));
  }

  /** Evaluates every rule at `at`; returns the transitions (also stored and notified). */
  async evaluate(at: number): Promise<AlertTransition[]> {
    const { client, database, rules } = this.options;
    const started = performance.now();
    const transitions: AlertTransition[] = [];
    // The call rules a query per grouping, aggregates shared (batch.ts); the others a query each.
    let batched: Map<string, GroupValue[]> | Error;
    try {
      batched = await batchedRuleValues(
        client,
        database,
        rules,
        rules.rules.filter((r) => BATCHED_KPIS.has(r.kpi)),
        at,
      );
    } catch (error) {
      batched = error as Error;
    }
    for (const rule of rules.rules) {
      const state = this.states.get(rule.name)!;
      let values: GroupValue[];
      try {
        if (!BATCHED_KPIS.has(rule.kpi)) values = await ruleValues(client, database, rules, rule, at);
        else if (batched instanceof Error) throw batched;
        else values = batched.get(rule.name) ?? [];
      } catch (error) {
        this.counters.queryFailures++;
        this.counters.lastError = `${rule.name}: ${(error as Error).message.split('\n')[0]}`;
        this.logger.warn('alert rule query failed; the rule keeps its state', {
          rule: rule.name,
          at: new Date(at).toISOString(),
          error: this.counters.lastError,
        });
        continue;
      }
      const changes = state.step(at, values);
      if (BATCHED_KPIS.has(rule.kpi)) await this.addExamples(rule, at, changes, state);
      for (const change of changes) transitions.push(decorate(change, rule, rules.grafanaUrl));
    }
    this.counters.evaluations++;
    this.counters.transitions += transitions.length;
    this.counters.lastEvaluationMs = Math.round(performance.now() - started);
    this.last = at;
    for (const t of transitions)
      this.logger.info('alert', {
        rule: t.rule,
        state: t.to,
        from: t.from,
        at: new Date(t.at).toISOString(),
        value: t.value,
        attempts: t.attempts,
        ...Object.fromEntries(Object.entries(t.labels).filter(([k]) => k !== 'alertname')),
      });
    if (transitions.length > 0 && this.options.writer) {
      try {
        await this.options.writer.writeAlerts(transitions, this.options.name ?? 'callscope');
      } catch (error) {
        this.counters.unstored += transitions.length;
        this.logger.error('alert transitions not stored', {
          transitions: transitions.length,
          error: (error as Error).message,
        });
      }
    }
    this.notify(at, transitions);
    return transitions;
  }

  /**
   * A batched rule's values come without examples: they are read for the groups going pending or
   * firing and those still firing (their re-sends carry the window's examples), a query per rule
   * only when it has such groups. Without them an alert is still right, only less telling.
   */
  private async addExamples(
    rule: AlertRule,
    at: number,
    changes: StateChange[],
    state: RuleState,
  ): Promise<void> {
    const firing = state.firing();
    const groups = new Map<string, Record<string, string>>();
    for (const c of changes) if (c.to === 'pending' || c.to === 'firing') groups.set(c.fingerprint, c.group);
    for (const f of firing) groups.set(f.fingerprint, f.group);
    if (groups.size === 0) return;
    const { client, database, rules } = this.options;
    try {
      const found = await batchedExamples(client, database, rules, rule, at, [...groups.values()]);
      for (const c of changes) c.examples = examplesOf(found, rule, c.group);
      // The held value of a firing alert is what its re-sends show.
      for (const f of firing) f.last.examples = examplesOf(found, rule, f.group);
    } catch (error) {
      this.logger.warn('alert examples not read; the alerts go without them', {
        rule: rule.name,
        error: (error as Error).message.split('\n')[0],
      });
    }
  }

  private notify(at: number, transitions: readonly AlertTransition[]): void {
    const notifiers = this.options.notifiers ?? [];
    const firing = this.firing();
    this.counters.firing = firing.length;
    // A resolution names the episode it ends by the time it began firing, as every re-send did.
    const began = new Map(this.firingSince);
    this.firingSince = new Map(firing.map(({ alert }) => [alert.fingerprint, alert.firingSince]));
    if (notifiers.length === 0) return;
    const generatorURL = this.options.rules.grafanaUrl
      ? `${this.options.rules.grafanaUrl.replace(/\/$/, '')}/d/callscope-noc-overview`
      : '';
    const alerts: NotifiedAlert[] = firing.map(({ rule, alert }) => {
      const t = decorate(
        {
          rule: rule.name,
          fingerprint: alert.fingerprint,
          from: 'firing',
          to: 'firing',
          at,
          activeSince: alert.firingSince,
          value: alert.last.value,
          attempts: alert.last.attempts,
          threshold: rule.threshold,
          examples: alert.last.examples,
          group: alert.group,
        },
        rule,
        this.options.rules.grafanaUrl,
      );
      return {
        labels: t.labels,
        annotations: t.annotations,
        startsAt: alert.firingSince,
        endsAt: null,
        generatorURL,
      };
    });
    for (const t of transitions)
      if (t.to === 'resolved')
        alerts.push({
          labels: t.labels,
          annotations: t.annotations,
          startsAt: began.get(t.fingerprint) ?? t.activeSince,
          endsAt: t.at,
          generatorURL,
        });
    if (alerts.length === 0) return;
    for (const n of notifiers) n.send(alerts);
  }

  /** Firing alerts now, with their rule. */
  firing(): Array<{ rule: AlertRule; alert: FiringAlert }> {
    const out: Array<{ rule: AlertRule; alert: FiringAlert }> = [];
    for (const state of this.states.values())
      for (const alert of state.firing()) out.push({ rule: state.rule, alert });
    return out;
  }

  /** The evaluation instant at or before `t`. */
  aligned(t: number): number {
    const i = this.options.rules.intervalMs;
    return Math.floor(t / i) * i;
  }

  /** Evaluates at every interval until stop(); instants missed by a slow evaluation are caught up. */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const interval = this.options.rules.intervalMs;
    const tick = () => {
      this.timer = null;
      this.running = (async () => {
        const now = this.aligned(this.now());
        let at = this.last === 0 ? now : this.last + interval;
        for (; at <= now && !this.stopped; at += interval) {
          if (at < now) this.counters.caughtUp++;
          await this.evaluate(at).catch((error: unknown) => {
            this.counters.lastError = (error as Error).message;
            this.logger.error('alert evaluation failed', { error: this.counters.lastError });
          });
        }
      })().finally(() => {
        this.running = null;
        if (!this.stopped) this.schedule(tick);
      });
    };
    this.schedule(tick);
  }

  private schedule(tick: () => void): void {
    const interval = this.options.rules.intervalMs;
    const next = this.aligned(this.now()) + interval;
    this.timer = setTimeout(tick, Math.max(0, next - this.now()) + 5);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await Promise.all((this.options.notifiers ?? []).map((n) => n.flush()));
  }

  stats(): EvaluatorStats {
    return { ...this.counters };
  }
}

/**
 * The rules over stored data, at every evaluation instant from `since` to `until` (ms): the
 * transitions the live evaluator gives (or would have given) over the same data.
 */
export async function replayAlerts(
  client: ClickHouseClient,
  database: string,
  rules: AlertRules,
  since: number,
  until: number,
  onEvaluation?: (at: number) => void,
): Promise<AlertTransition[]> {
  const evaluator = new AlertEvaluator({ client, database, rules });
  const out: AlertTransition[] = [];
  for (let at = evaluator.aligned(since); at <= until; at += rules.intervalMs) {
    if (at < since) continue;
    out.push(...(await evaluator.evaluate(at)));
    onEvaluation?.(at);
  }
  return out;
}

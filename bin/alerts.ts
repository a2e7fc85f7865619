/**
 * The alert evaluator's flags, shared by `run` (live), `ingest` and `alerts`: which rules, where the
 * alerts go, and the evaluator wired to the store and the notifiers.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { AlertEvaluator, type AlertsWriter } from '../analyze/alerts/evaluator.js';
import { notifiersFrom } from '../analyze/alerts/notify/index.js';
import { type AlertRules, DEFAULT_RULES_FILE, loadRules } from '../analyze/alerts/rules.js';
import type { AlertNotifier } from '../core/alert.js';
import type { Logger } from '../core/log.js';
import { migrate } from '../ingest/schema/migrate.js';
import { StoreSink } from '../ingest/store-sink.js';
import { type Settings, UsageError } from './config.js';
import { nodeNameOf } from './flags.js';

export const ALERT_FLAGS = {
  alerts: { type: 'string' },
  'alert-rules': { type: 'string' },
  alertmanager: { type: 'string' },
  'alert-webhook': { type: 'string' },
} as const;

export const ALERT_HELP = `Alerts (docs/ALERTS.md):
  --alerts on|off        evaluate the alert rules every interval over the store (on), record every
                         transition in the alerts table and deliver firing and resolved alerts
  --alert-rules FILE     the rules (YAML; default: the shipped ${DEFAULT_RULES_FILE.split('/').slice(-3).join('/')})
  --alertmanager URLS    Prometheus Alertmanager(s), API v2, comma-separated (e.g. http://127.0.0.1:9093)
  --alert-webhook URLS   JSON webhook(s) (Alertmanager's webhook payload), comma-separated
`;

const urls = (text: string | undefined): string[] =>
  (text ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');

/** The rules and receivers the flags name; null with --alerts off. */
export function alertRulesOf(settings: Settings, fallback: 'on' | 'off' = 'on'): AlertRules | null {
  const flag = settings.string('alerts', fallback);
  if (flag !== 'on' && flag !== 'off') throw new UsageError(`--alerts must be on or off, got "${flag}"`);
  if (flag === 'off') return null;
  const rules = loadRules(settings.string('alert-rules') ?? DEFAULT_RULES_FILE);
  for (const u of [...urls(settings.string('alertmanager')), ...urls(settings.string('alert-webhook'))])
    if (!/^https?:\/\/[^\s]+$/.test(u))
      throw new UsageError(`an alert receiver must be an http(s) URL, got "${u}"`);
  return {
    ...rules,
    receivers: {
      alertmanager: [...rules.receivers.alertmanager, ...urls(settings.string('alertmanager'))],
      webhooks: [...rules.receivers.webhooks, ...urls(settings.string('alert-webhook'))],
    },
  };
}

/**
 * The evaluator of a service (`run --interface`, `ingest`): the rules (read before the service opens
 * anything: `alertRulesOf`) over the store, its transitions written by a writer of its own; null
 * with --alerts off.
 */
export async function liveAlerts(
  rules: AlertRules | null,
  settings: Settings,
  client: ClickHouseClient,
  database: string,
  ttlDays: number,
  logger: Logger,
  command: string,
): Promise<AlertService | null> {
  if (rules === null) return null;
  await migrate(client, { database, ttlDays, logger });
  const writer = new StoreSink(client, { database, logger });
  const service = startAlerts({
    rules,
    client,
    database,
    writer,
    logger,
    name: `${nodeNameOf(settings)}/${command}`,
  });
  return {
    ...service,
    async stop() {
      await service.stop();
      await writer.close();
    },
  };
}

export interface AlertService {
  evaluator: AlertEvaluator;
  notifiers: readonly AlertNotifier[];
  stop(): Promise<void>;
}

/** Starts the evaluator over the store; `stop` ends it and delivers what is queued. */
export function startAlerts(options: {
  rules: AlertRules;
  client: ClickHouseClient;
  database: string;
  writer: AlertsWriter;
  logger: Logger;
  name: string;
}): AlertService {
  const { rules, logger } = options;
  const notifiers = notifiersFrom({
    alertmanager:
      rules.receivers.alertmanager.length > 0 ? { urls: rules.receivers.alertmanager } : undefined,
    webhooks: rules.receivers.webhooks.map((url) => ({ url })),
    // A receiver back from an outage hears within about an evaluation interval (at most 10 s).
    backoff: { maxMs: Math.min(10_000, Math.max(1000, rules.intervalMs)) },
    logger,
  });
  const evaluator = new AlertEvaluator({ ...options, notifiers });
  evaluator.start();
  logger.info('alert evaluator started', {
    rules: rules.rules.length,
    intervalMs: rules.intervalMs,
    alertmanager: rules.receivers.alertmanager.join(','),
    webhooks: rules.receivers.webhooks.length,
  });
  return {
    evaluator,
    notifiers,
    async stop() {
      await evaluator.stop();
      await Promise.all(notifiers.map((n) => n.close()));
      logger.info('alert evaluator stopped', { ...evaluator.stats() });
    },
  };
}

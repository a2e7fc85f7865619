/**
 * The notifiers of a configuration (the rules file's `notify` section, `--alertmanager URL`,
 * `--alert-webhook URL`). docs/ALERTS.md.
 */
import type { AlertNotifier, NotifiedAlert, NotifierStats } from '../../../core/alert.js';
import type { Logger } from '../../../core/log.js';
import { AlertmanagerNotifier } from './alertmanager.js';
import type { DeliveryOptions } from './delivery.js';
import { WebhookNotifier } from './webhook.js';

export { AlertmanagerNotifier, type AlertmanagerOptions } from './alertmanager.js';
export { AlertDelivery, type DeliveryOptions, type DeliveryStats } from './delivery.js';
export { WebhookNotifier, type WebhookOptions } from './webhook.js';

export interface WebhookConfig {
  url: string;
  /** The payload's `receiver` and the name in logs (default: the URL without credentials or query). */
  name?: string;
  headers?: Record<string, string>;
  /** Headers whose value is read from an environment variable: `{ Authorization: 'ALERT_WEBHOOK_AUTH' }`. */
  headersFromEnv?: Record<string, string>;
}

/** Delivery options (timeoutMs, backoff, maxQueue, maxRequestBytes, maxBatch, logger) apply to every receiver. */
export interface NotifiersConfig extends DeliveryOptions {
  alertmanager?: { urls: string[]; headers?: Record<string, string> };
  webhooks?: WebhookConfig[];
  /** Where headersFromEnv reads (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * One notifier per receiver kind: an AlertmanagerNotifier for all the Alertmanager URLs, a
 * WebhookNotifier per webhook. Throws TypeError on a configuration error (a URL that is not http(s), an
 * environment variable that is not set), before anything is sent. `logger`, when given, is the
 * config's `logger`.
 */
export function notifiersFrom(config: NotifiersConfig, logger?: Logger): AlertNotifier[] {
  const { alertmanager, webhooks = [], env = process.env, ...delivery } = config;
  if (logger) delivery.logger = logger;
  const out: AlertNotifier[] = [];
  if (alertmanager && alertmanager.urls.length > 0) {
    out.push(
      new AlertmanagerNotifier({ ...delivery, urls: alertmanager.urls, headers: alertmanager.headers }),
    );
  }
  for (const w of webhooks) {
    const headers: Record<string, string> = { ...w.headers };
    for (const [header, variable] of Object.entries(w.headersFromEnv ?? {})) {
      const value = env[variable];
      if (value === undefined || value === '') {
        throw new TypeError(
          `webhook ${w.name ?? w.url}: environment variable ${variable} (for ${header}) is not set`,
        );
      }
      headers[header] = value;
    }
    out.push(new WebhookNotifier({ ...delivery, url: w.url, name: w.name, headers }));
  }
  return out;
}

/** Several notifiers as one: the evaluator calls one `send`. Stats are summed. */
export function fanOut(notifiers: readonly AlertNotifier[]): AlertNotifier {
  return {
    name: notifiers.map((n) => n.name).join(', '),
    send(alerts: readonly NotifiedAlert[]) {
      for (const n of notifiers) n.send(alerts);
    },
    async flush(timeoutMs?: number) {
      await Promise.all(notifiers.map((n) => n.flush(timeoutMs)));
    },
    async close() {
      await Promise.all(notifiers.map((n) => n.close()));
    },
    stats(): NotifierStats {
      const all = notifiers.map((n) => n.stats());
      const dropped: Record<string, number> = {};
      for (const s of all) for (const [r, n] of Object.entries(s.dropped)) dropped[r] = (dropped[r] ?? 0) + n;
      return {
        accepted: all.reduce((n, s) => n + s.accepted, 0),
        delivered: all.reduce((n, s) => n + s.delivered, 0),
        failures: all.reduce((n, s) => n + s.failures, 0),
        pending: all.reduce((n, s) => n + s.pending, 0),
        dropped,
        lastError: all.find((s) => s.lastError !== null)?.lastError ?? null,
      };
    },
  };
}

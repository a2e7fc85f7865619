/**
 * A generic JSON webhook: one POST per batch, its body shaped like Alertmanager's own webhook
 * notification (version "4"), so that a receiver written for Alertmanager (a chat bridge, a ticketing
 * hook) takes callscope's alerts unchanged. The payload: docs/ALERTS.md, "Webhook payload".
 */
import type { AlertNotifier, NotifiedAlert } from '../../../core/alert.js';
import {
  AlertDelivery,
  type DeliveryOptions,
  type DeliveryStats,
  type Endpoint,
  receiverUrl,
  redactUrl,
  rfc3339,
  safeGeneratorUrl,
} from './delivery.js';

export interface WebhookOptions extends DeliveryOptions {
  url: string;
  /** The payload's `receiver`, and the name in logs and stats (default: the URL without credentials or query). */
  name?: string;
  /** Sent with every request (e.g. Authorization). Never logged. */
  headers?: Readonly<Record<string, string>>;
  /** The payload's `externalURL` (default ''). */
  externalURL?: string;
}

/** Alertmanager's webhook time for "not ended": Go's zero time. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * Alertmanager's fingerprint of a label set (FNV-1a 64 over the sorted names and values, each followed
 * by a 0xff byte), as 16 hex digits: the same id Alertmanager shows for the alert.
 */
export function alertFingerprint(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let h = 0xcbf29ce484222325n;
  const add = (bytes: Uint8Array) => {
    for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  };
  const sep = Uint8Array.of(0xff);
  for (const n of names) {
    add(Buffer.from(n));
    add(sep);
    add(Buffer.from(labels[n]));
    add(sep);
  }
  return h.toString(16).padStart(16, '0');
}

/** One alert of the payload, as Alertmanager's webhook writes it. */
export function webhookAlert(a: NotifiedAlert): Record<string, unknown> {
  return {
    status: a.endsAt === null ? 'firing' : 'resolved',
    labels: a.labels,
    annotations: a.annotations,
    startsAt: rfc3339(a.startsAt),
    endsAt: a.endsAt === null ? ZERO_TIME : rfc3339(a.endsAt),
    generatorURL: safeGeneratorUrl(a.generatorURL) ?? '',
    fingerprint: alertFingerprint(a.labels),
  };
}

/** Name/value pairs every record has alike. */
function common(records: readonly Readonly<Record<string, string>>[]): Record<string, string> {
  const out: Record<string, string> = { ...records[0] };
  for (const r of records.slice(1)) {
    for (const k of Object.keys(out)) if (r[k] !== out[k]) delete out[k];
  }
  return out;
}

/** The payload's fields other than `alerts`. */
function envelope(receiver: string, externalURL: string, alerts: readonly NotifiedAlert[]) {
  return {
    version: '4',
    // One group per receiver: callscope does not group (Alertmanager does, when it is in the path).
    groupKey: `{}:{receiver=${JSON.stringify(receiver)}}`,
    truncatedAlerts: 0,
    status: alerts.some((a) => a.endsAt === null) ? 'firing' : 'resolved',
    receiver,
    groupLabels: {},
    commonLabels: common(alerts.map((a) => a.labels)),
    commonAnnotations: common(alerts.map((a) => a.annotations)),
    externalURL,
  };
}

export class WebhookNotifier implements AlertNotifier {
  readonly name: string;
  private readonly delivery: AlertDelivery;

  constructor(options: WebhookOptions) {
    const { url: raw, name, headers = {}, externalURL = '', ...delivery } = options;
    const url = receiverUrl(raw, 'webhook');
    this.name = name ?? `webhook ${redactUrl(url)}`;
    const receiver = name ?? 'callscope';
    const endpoint: Endpoint = {
      name: this.name,
      url,
      headers,
      item: (a) => JSON.stringify(webhookAlert(a)),
      body: (alerts, items) =>
        // `alerts` first, then the envelope: the items are already JSON.
        `{"alerts":[${items.join(',')}],${JSON.stringify(envelope(receiver, externalURL, alerts)).slice(1)}`,
      // With one alert the common labels and annotations are all of its own: more alerts share fewer.
      overhead: (first) => Buffer.byteLength(JSON.stringify(envelope(receiver, externalURL, [first]))) + 16,
    };
    this.delivery = new AlertDelivery(endpoint, delivery);
  }

  send(alerts: readonly NotifiedAlert[]): void {
    this.delivery.send(alerts);
  }

  flush(timeoutMs?: number): Promise<void> {
    return this.delivery.flush(timeoutMs);
  }

  close(): Promise<void> {
    return this.delivery.close();
  }

  stats(): DeliveryStats {
    return this.delivery.stats();
  }
}

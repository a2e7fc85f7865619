/**
 * Prometheus Alertmanager, API v2: `POST /api/v2/alerts` with a JSON array of postable alerts. Each
 * Alertmanager of an HA pair (or cluster) gets every alert, each through its own queue, so one that is
 * down delays nobody else; Alertmanager's gossip deduplicates the notifications. docs/ALERTS.md.
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

export interface AlertmanagerOptions extends DeliveryOptions {
  /**
   * Alertmanager base URLs (`http://am1:9093`, with a route prefix `http://host/alertmanager`), or the
   * full `…/api/v2/alerts`. A user and password in the URL are sent as basic authentication.
   */
  urls: readonly string[];
  /** Sent with every request (an Authorization header for a proxy in front of Alertmanager). */
  headers?: Readonly<Record<string, string>>;
}

/** The postable alert of API v2: endsAt only once resolved (Alertmanager times a firing one out itself). */
export function postableAlert(a: NotifiedAlert): Record<string, unknown> {
  return {
    labels: a.labels,
    annotations: a.annotations,
    startsAt: rfc3339(a.startsAt),
    ...(a.endsAt === null ? {} : { endsAt: rfc3339(a.endsAt) }),
    ...(safeGeneratorUrl(a.generatorURL) ? { generatorURL: safeGeneratorUrl(a.generatorURL) } : {}),
  };
}

/** `http://am:9093` → `http://am:9093/api/v2/alerts`; a URL that already ends so is kept. */
export function alertsEndpoint(raw: string): URL {
  const url = receiverUrl(raw, 'Alertmanager');
  if (!/\/api\/v2\/alerts\/?$/.test(url.pathname)) {
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v2/alerts`;
  }
  return url;
}

function endpoint(url: URL, headers: Readonly<Record<string, string>>): Endpoint {
  return {
    name: `alertmanager ${redactUrl(url)}`,
    url,
    headers,
    item: (a) => JSON.stringify(postableAlert(a)),
    body: (_alerts, items) => `[${items.join(',')}]`,
    overhead: () => 2,
  };
}

export class AlertmanagerNotifier implements AlertNotifier {
  readonly name = 'alertmanager';
  /** One delivery per Alertmanager, in the order of `urls`. */
  readonly deliveries: readonly AlertDelivery[];

  constructor(options: AlertmanagerOptions) {
    if (options.urls.length === 0) throw new TypeError('Alertmanager: no URL given');
    const { urls, headers = {}, ...delivery } = options;
    this.deliveries = urls.map((u) => new AlertDelivery(endpoint(alertsEndpoint(u), headers), delivery));
  }

  send(alerts: readonly NotifiedAlert[]): void {
    for (const d of this.deliveries) d.send(alerts);
  }

  async flush(timeoutMs?: number): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.flush(timeoutMs)));
  }

  async close(): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.close()));
  }

  /**
   * Summed over the Alertmanagers: with two, an alert sent counts twice in `accepted` and, once both
   * have it, twice in `delivered` (so accepted = delivered + coalesced + dropped + pending still holds).
   * `lastError` is the first Alertmanager's that has one. Each one's own: `deliveries[i].stats()`.
   */
  stats(): DeliveryStats {
    const all = this.deliveries.map((d) => d.stats());
    const sum = (k: 'accepted' | 'delivered' | 'failures' | 'coalesced' | 'requests' | 'pending') =>
      all.reduce((n, s) => n + s[k], 0);
    const dropped: Record<string, number> = {};
    for (const s of all) for (const [r, n] of Object.entries(s.dropped)) dropped[r] = (dropped[r] ?? 0) + n;
    return {
      accepted: sum('accepted'),
      delivered: sum('delivered'),
      failures: sum('failures'),
      coalesced: sum('coalesced'),
      requests: sum('requests'),
      pending: sum('pending'),
      dropped,
      lastError: all.find((s) => s.lastError !== null)?.lastError ?? null,
    };
  }
}

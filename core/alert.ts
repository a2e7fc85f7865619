/**
 * Alerts: what the rules evaluator (analyze/alerts/) says about a rule and one group of its KPI (a VM,
 * a peer, a node...), and what a notifier (Alertmanager, a webhook) delivers. docs/ALERTS.md.
 */

/**
 * Where an alert stands. `inactive`: below threshold (or too few attempts); `pending`: over threshold
 * for less than the rule's `for`; `firing`: over it for at least `for`; `resolved`: was firing and has
 * come back past the resolve threshold (then it is inactive until it goes over again).
 */
export type AlertState = 'inactive' | 'pending' | 'firing' | 'resolved';

/** One change of state of one alert (a rule and one group), as the evaluator saw it at `at`. */
export interface AlertTransition {
  /** The rule's name (unique in a rules file). */
  rule: string;
  /** Stable id of the rule and group: hex hash of the rule name and the sorted group labels. */
  fingerprint: string;
  from: AlertState;
  to: AlertState;
  /** Evaluation time, ms since the Unix epoch (aligned to the rule's interval). */
  at: number;
  /** When the alert went pending (the start of this episode), ms. */
  activeSince: number;
  /** The KPI's value at `at` (null when the group had too few attempts or no data). */
  value: number | null;
  /** How many attempts (calls, probes, streams, samples...) the value was computed over. */
  attempts: number;
  /** The threshold crossed (firing) or the resolve threshold (resolved). */
  threshold: number;
  /** Identifying labels: alertname, the group's labels (vm, peer...), and the rule's own labels. */
  labels: Record<string, string>;
  /** Summary, description, examples, links: the rule's annotation templates filled in. */
  annotations: Record<string, string>;
  /** A few ids of what made the value (Call-IDs of failed calls, addresses...), at most 10. */
  examples: string[];
}

/**
 * An alert as notifiers deliver it: Alertmanager API v2's postable alert (times in ms here; the
 * notifier writes RFC 3339). `endsAt` null: still firing (Alertmanager resolves it by itself after its
 * resolve_timeout unless re-sent); set: resolved at that time.
 */
export interface NotifiedAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: number;
  endsAt: number | null;
  generatorURL: string;
}

export interface NotifierStats {
  /** Alerts handed to the notifier, and those the receiver acknowledged. */
  accepted: number;
  delivered: number;
  /** Attempts that failed (each retried with backoff), and alerts given up on, by reason. */
  failures: number;
  dropped: Record<string, number>;
  /** Alerts waiting to be delivered (bounded). */
  pending: number;
  lastError: string | null;
}

/**
 * Where alerts go. `send` never blocks and never throws: a receiver that is down, hangs or answers
 * 500 is retried with backoff in the background, within a bounded queue (the oldest resolved... then
 * the oldest are dropped and counted when it is full), so that delivery never stops ingest.
 */
export interface AlertNotifier {
  readonly name: string;
  /**
   * Alerts to deliver now: every firing alert on each evaluation (a re-send keeps it alive in
   * Alertmanager), and each resolved one once (with endsAt) until it is delivered.
   */
  send(alerts: readonly NotifiedAlert[]): void;
  /** Resolves once what was sent is delivered or given up on (within timeoutMs, default 10 s). */
  flush(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
  stats(): NotifierStats;
}

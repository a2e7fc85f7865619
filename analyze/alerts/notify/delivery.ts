/**
 * Delivery of alerts to one HTTP receiver (one Alertmanager, one webhook): the machinery every
 * notifier shares. Policy (docs/ALERTS.md):
 *
 * - `send` validates and queues, never blocks, never throws. One request is in flight at a time, so an
 *   alert's states reach the receiver in the order they were sent.
 * - The queue holds the newest state of each alert (same labels): a re-send replaces the queued one in
 *   its place, so an outage costs memory per distinct alert, not per evaluation. A resolve replaces
 *   the queued firing state of its episode (any that started before the resolve's endsAt) and is never
 *   replaced by one; it is kept beside the firing state of a newer episode (started after its end),
 *   and a batch puts resolves first, so the receiver sees the end, then the new start.
 * - A failed attempt (connection refused or reset, timeout, 408, 429, 5xx) puts its alerts back at the
 *   head of the queue, unless a newer state arrived meanwhile, and the next attempt waits with
 *   exponential backoff and jitter. Any other 4xx is the receiver refusing the content: its alerts are
 *   dropped ('rejected') and its answer logged.
 * - Bounded: `maxQueue` alerts queued (when full the oldest firing state goes first, as the evaluator
 *   sends it again on its next evaluation; resolves only when nothing else is left) and
 *   `maxRequestBytes` per request (batches are cut to fit; one alert that cannot fit is dropped).
 * - Drops are counted by reason and logged the first time, then every 1,000th.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AlertNotifier, NotifiedAlert, NotifierStats } from '../../../core/alert.js';
import { type Logger, silentLogger } from '../../../core/log.js';
import { type BackoffOptions, backoffDelay } from '../../../ingest/kafka/backoff.js';
import { LABEL_NAME } from '../labels.js';

export interface DeliveryOptions {
  /** One request, answer included, at most this long; a receiver that hangs is cut and retried (ms, default 10,000). */
  timeoutMs?: number;
  /** Between failed attempts (defaults: 500 ms doubling up to 30 s, jitter 0.3). */
  backoff?: BackoffOptions;
  /** Alerts queued, at most (default 10,000). */
  maxQueue?: number;
  /** Body of one request, at most (bytes, default 1 MiB): larger batches are split. */
  maxRequestBytes?: number;
  /** Alerts per request, at most (default 1,000). */
  maxBatch?: number;
  logger?: Logger;
}

/** What one receiver contributes: where, how to authenticate, and the body for a batch. */
export interface Endpoint {
  /** For logs and stats; never holds credentials. */
  readonly name: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON of one alert as the body carries it. */
  item(alert: NotifiedAlert): string;
  /** The body for `alerts`, whose items are `items` (same order). */
  body(alerts: readonly NotifiedAlert[], items: readonly string[]): string;
  /** Bytes the body adds around its items for a batch that starts with `first` (an upper bound). */
  overhead(first: NotifiedAlert): number;
}

export interface DeliveryStats extends NotifierStats {
  /** Alerts replaced in the queue by a newer state of the same alert (not lost: superseded). */
  coalesced: number;
  /** HTTP requests made (delivered, failed and rejected). */
  requests: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.3 };
/** Of a receiver's answer, what is kept for the log. */
const ANSWER_BYTES = 2048;

type Outcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; error: string; retryAfterMs: number | null; reusedSocket: boolean }
  | { kind: 'rejected'; status: number; answer: string }
  | { kind: 'too-large' }
  | { kind: 'closed' };

/** Key of an alert's identity: its labels, sorted. */
function labelsKey(labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort();
  let key = '';
  for (const n of names) key += `${n}\u0000${labels[n]}\u0000`;
  return key;
}

const isFiring = (a: NotifiedAlert) => a.endsAt === null;

export class AlertDelivery implements AlertNotifier {
  readonly name: string;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly backoff: BackoffOptions;
  private readonly maxQueue: number;
  private readonly maxRequestBytes: number;
  private maxBatch: number;
  private readonly agent: HttpAgent;

  /** Newest firing state per alert; Map order is age (a replaced state keeps its place). */
  private firing = new Map<string, NotifiedAlert>();
  /** Resolves per alert, sorted by startsAt (one per episode); Map order is age. */
  private resolved = new Map<string, NotifiedAlert[]>();
  private resolvedCount = 0;
  private inFlight: NotifiedAlert[] = [];

  private readonly counts = { accepted: 0, delivered: 0, failures: 0, coalesced: 0, requests: 0 };
  private readonly dropped: Record<string, number> = {};
  private lastError: string | null = null;
  /** Failed attempts since the last success: drives the backoff and the log. */
  private streak = 0;
  private streakStart = 0;

  private running: Promise<void> | null = null;
  private kick: NodeJS.Immediate | null = null;
  private closed = false;
  private abortInFlight: (() => void) | null = null;
  private wake: (() => void) | null = null;
  private flushWaiters: (() => void)[] = [];

  constructor(
    private readonly endpoint: Endpoint,
    options: DeliveryOptions = {},
  ) {
    this.name = endpoint.name;
    this.logger = options.logger ?? silentLogger;
    this.timeoutMs = Math.max(1, options.timeoutMs ?? 10_000);
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.maxQueue = Math.max(1, options.maxQueue ?? 10_000);
    this.maxRequestBytes = Math.max(1024, options.maxRequestBytes ?? 1 << 20);
    this.maxBatch = Math.max(1, options.maxBatch ?? 1000);
    // One connection, kept alive between evaluations: requests are sequential anyway.
    const agentOptions = { keepAlive: true, maxSockets: 1 };
    this.agent =
      endpoint.url.protocol === 'https:' ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  send(alerts: readonly NotifiedAlert[]): void {
    try {
      for (const alert of alerts) {
        this.counts.accepted++;
        if (this.closed) {
          this.drop('closed', 1, {});
          continue;
        }
        const invalid = invalidReason(alert);
        if (invalid !== null) {
          this.drop('invalid', 1, { problem: invalid });
          continue;
        }
        this.enqueue(alert);
        // Per alert, not per call: one send of 50,000 alerts never holds more than maxQueue.
        if (this.firing.size + this.resolvedCount > this.maxQueue) this.enforceCap();
      }
      this.schedule();
    } catch (err) {
      // Contract: never throws into the evaluator. A bug here is logged, not propagated.
      this.logger.error('alert delivery: send failed', { receiver: this.name, error: String(err) });
    }
  }

  flush(timeoutMs = 10_000): Promise<void> {
    if (this.closed || this.pending() === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.flushWaiters = this.flushWaiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.flushWaiters.push(done);
    });
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.kick) clearImmediate(this.kick);
      this.kick = null;
      this.abortInFlight?.();
      this.wake?.();
    }
    await this.running;
    const left = this.pending();
    if (left > 0) {
      this.drop('closed', left, {});
      this.firing.clear();
      this.resolved.clear();
      this.resolvedCount = 0;
      this.inFlight = [];
    }
    this.agent.destroy();
    this.wakeFlushWaiters();
  }

  stats(): DeliveryStats {
    return {
      ...this.counts,
      dropped: { ...this.dropped },
      pending: this.pending(),
      lastError: this.lastError,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // The queue

  private pending(): number {
    return this.firing.size + this.resolvedCount + this.inFlight.length;
  }

  private enqueue(alert: NotifiedAlert): void {
    const key = labelsKey(alert.labels);
    if (isFiring(alert)) {
      // Stale: a queued resolve ends this episode (it started no later than that end).
      if (this.resolved.get(key)?.some((r) => endedBy(alert, r))) {
        this.counts.coalesced++;
        return;
      }
      if (this.firing.has(key)) this.counts.coalesced++;
      this.firing.set(key, alert);
      return;
    }
    const f = this.firing.get(key);
    if (f && endedBy(f, alert)) {
      // The episode's end supersedes its firing state.
      this.firing.delete(key);
      this.counts.coalesced++;
    }
    const list = this.resolved.get(key);
    if (!list) {
      this.resolved.set(key, [alert]);
      this.resolvedCount++;
      return;
    }
    const i = list.findIndex((r) => r.startsAt >= alert.startsAt);
    if (i >= 0 && list[i].startsAt === alert.startsAt) {
      list[i] = alert;
      this.counts.coalesced++;
    } else {
      list.splice(i < 0 ? list.length : i, 0, alert);
      this.resolvedCount++;
    }
  }

  /**
   * Puts a failed batch back at the head of the queue, each alert unless a newer state of it arrived
   * meanwhile (the rules of {@link enqueue}, with the queued state as the newer one).
   */
  private requeue(batch: readonly NotifiedAlert[]): void {
    const queuedFiring = this.firing;
    const queuedResolved = this.resolved;
    this.firing = new Map();
    this.resolved = new Map();
    this.resolvedCount = 0;
    for (const alert of batch) {
      const key = labelsKey(alert.labels);
      const newerResolve = queuedResolved.get(key)?.some((r) => endedBy(alert, r));
      if (
        isFiring(alert) ? newerResolve || queuedFiring.has(key) : sameEpisode(queuedResolved.get(key), alert)
      ) {
        this.counts.coalesced++;
        continue;
      }
      this.enqueue(alert);
    }
    for (const [key, alert] of queuedFiring) {
      // A queued firing state of an episode a put-back resolve ends is superseded by it.
      if (this.resolved.get(key)?.some((r) => endedBy(alert, r))) this.counts.coalesced++;
      else this.firing.set(key, alert);
    }
    for (const [key, list] of queuedResolved) {
      const mine = this.resolved.get(key);
      const merged = mine ? [...mine, ...list].sort((a, b) => a.startsAt - b.startsAt) : list;
      this.resolved.set(key, merged);
      this.resolvedCount += list.length;
    }
    this.enforceCap();
  }

  /** Over maxQueue: the oldest firing states go first (they are sent again), resolves last. */
  private enforceCap(): void {
    let over = this.firing.size + this.resolvedCount - this.maxQueue;
    if (over <= 0) return;
    let n = 0;
    for (const key of this.firing.keys()) {
      if (n >= over) break;
      this.firing.delete(key);
      n++;
    }
    if (n > 0) this.drop('queue-full', n, { kind: 'firing', queued: this.maxQueue });
    over -= n;
    let r = 0;
    for (const [key, list] of this.resolved) {
      if (over <= 0) break;
      const cut = Math.min(over, list.length);
      list.splice(0, cut);
      if (list.length === 0) this.resolved.delete(key);
      over -= cut;
      r += cut;
    }
    this.resolvedCount -= r;
    if (r > 0) this.drop('queue-full', r, { kind: 'resolved', queued: this.maxQueue });
  }

  /**
   * The next request's alerts, resolves first (oldest first), then firing states, within maxBatch and
   * maxRequestBytes. An alert that alone exceeds the byte limit is dropped ('too-large').
   */
  private takeBatch(): { alerts: NotifiedAlert[]; items: string[] } {
    const alerts: NotifiedAlert[] = [];
    const items: string[] = [];
    let budget = 0;
    let full = false;
    /** False when the batch is full; true when `alert` was taken (into the batch, or dropped). */
    const take = (alert: NotifiedAlert): boolean => {
      if (alerts.length >= this.maxBatch) {
        full = true;
        return false;
      }
      const item = this.endpoint.item(alert);
      const size = Buffer.byteLength(item) + 1; // the comma
      if (alerts.length === 0) {
        budget = this.maxRequestBytes - this.endpoint.overhead(alert);
        if (size > budget) {
          this.drop('too-large', 1, { bytes: size, limit: this.maxRequestBytes });
          return true;
        }
      }
      if (size > budget) {
        full = true;
        return false;
      }
      budget -= size;
      alerts.push(alert);
      items.push(item);
      return true;
    };
    for (const [key, list] of this.resolved) {
      while (list.length > 0 && take(list[0])) {
        list.shift();
        this.resolvedCount--;
      }
      if (full) break;
      this.resolved.delete(key);
    }
    if (!full) {
      for (const [key, alert] of this.firing) {
        if (!take(alert)) break;
        this.firing.delete(key);
      }
    }
    return { alerts, items };
  }

  // ---------------------------------------------------------------------------------------------
  // The sender loop

  private schedule(): void {
    if (this.closed || this.running || this.kick) return;
    if (this.firing.size + this.resolvedCount === 0) return;
    // On the next turn: the sends of one evaluation go out as one batch.
    this.kick = setImmediate(() => {
      this.kick = null;
      if (this.running) return;
      this.running = this.loop().finally(() => {
        this.running = null;
        // A send between the loop's last look at the queue and now found it still running.
        this.schedule();
      });
    });
  }

  private async loop(): Promise<void> {
    let immediateRetryUsed = false;
    while (!this.closed && this.firing.size + this.resolvedCount > 0) {
      const { alerts, items } = this.takeBatch();
      if (alerts.length === 0) continue;
      this.inFlight = alerts;
      const outcome = await this.post(this.endpoint.body(alerts, items));
      this.inFlight = [];
      if (outcome.kind === 'closed') {
        this.requeue(alerts); // close() counts them
        break;
      }
      if (outcome.kind === 'delivered') {
        this.counts.delivered += alerts.length;
        if (this.streak > 0) {
          this.logger.info('alert receiver delivering again', {
            receiver: this.name,
            failures: this.streak,
            seconds: Math.round((Date.now() - this.streakStart) / 1000),
          });
        }
        this.streak = 0;
        immediateRetryUsed = false;
        continue;
      }
      if (outcome.kind === 'too-large') {
        // The receiver has a lower limit than ours: halve the batch (the rest goes back first).
        if (alerts.length === 1) {
          this.drop('too-large', 1, { status: 413 });
        } else {
          this.requeue(alerts);
          this.shrinkBatch(alerts.length);
        }
        continue;
      }
      if (outcome.kind === 'rejected') {
        this.lastError = `HTTP ${outcome.status}: ${outcome.answer}`;
        this.drop('rejected', alerts.length, { status: outcome.status, answer: outcome.answer });
        continue;
      }
      this.counts.failures++;
      this.lastError = outcome.error;
      this.requeue(alerts);
      if (this.streak++ === 0) this.streakStart = Date.now();
      // A kept-alive connection the receiver closed meanwhile (a restart): once, try a fresh one now.
      if (outcome.reusedSocket && !immediateRetryUsed) {
        immediateRetryUsed = true;
        this.streak--;
        continue;
      }
      immediateRetryUsed = false;
      const delay = Math.max(backoffDelay(this.streak - 1, this.backoff), outcome.retryAfterMs ?? 0);
      const level = isPowerOfTen(this.streak) ? 'warn' : 'debug';
      this.logger[level]('alert receiver failed; retrying', {
        receiver: this.name,
        error: outcome.error,
        failures: this.streak,
        retryInMs: delay,
        pending: this.pending(),
      });
      await this.sleep(delay);
    }
    this.wakeFlushWaitersIfIdle();
  }

  private shrinkBatch(had: number): void {
    // Fewer per request from now on: a receiver's body limit does not change by itself.
    this.maxBatch = Math.max(1, Math.floor(had / 2));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      // A retry alone does not keep the process alive; flush() and close() do the waiting.
      timer.unref();
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private post(body: string): Promise<Outcome> {
    this.counts.requests++;
    const url = this.endpoint.url;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const controller = new AbortController();
    let why: 'timeout' | 'closed' | null = null;
    const timer = setTimeout(() => {
      why = 'timeout';
      controller.abort();
    }, this.timeoutMs);
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const finish = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abortInFlight = null;
        resolve(o);
      };
      this.abortInFlight = () => {
        why = 'closed';
        controller.abort();
      };
      const req = send(url, {
        method: 'POST',
        agent: this.agent,
        signal: controller.signal,
        headers: {
          ...this.endpoint.headers,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      });
      const failed = (err: Error & { code?: string }) => {
        if (why === 'closed') return finish({ kind: 'closed' });
        const error =
          why === 'timeout'
            ? `no answer within ${this.timeoutMs} ms`
            : `${err.code ?? 'error'}: ${err.message}`;
        finish({ kind: 'retry', error, retryAfterMs: null, reusedSocket: why === null && req.reusedSocket });
      };
      req.on('error', failed);
      // Whatever ends the exchange without an answer (a reset mid-answer) is a failure too.
      req.on('close', () => setImmediate(() => failed(new Error('connection closed before an answer'))));
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept < ANSWER_BYTES) {
            chunks.push(chunk);
            kept += chunk.length;
          }
        });
        res.on('error', failed);
        res.on('close', () => {
          if (!res.complete) failed(new Error('connection closed in the middle of the answer'));
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const answer = Buffer.concat(chunks).subarray(0, ANSWER_BYTES).toString('utf8').trim();
          if (status >= 200 && status < 300) return finish({ kind: 'delivered' });
          if (status === 413) return finish({ kind: 'too-large' });
          if (status === 408 || status === 429 || status >= 500) {
            return finish({
              kind: 'retry',
              error: `HTTP ${status}${answer ? `: ${answer.slice(0, 200)}` : ''}`,
              retryAfterMs: retryAfter(res.headers['retry-after'], this.backoff.maxMs ?? 30_000),
              reusedSocket: false,
            });
          }
          // 4xx (and 1xx/3xx: nothing here follows redirects): the receiver will not take these.
          finish({ kind: 'rejected', status, answer });
        });
      });
      req.end(body);
    });
  }

  // ---------------------------------------------------------------------------------------------

  private drop(reason: string, n: number, fields: Record<string, string | number>): void {
    if (n <= 0) return;
    const before = this.dropped[reason] ?? 0;
    const after = before + n;
    this.dropped[reason] = after;
    // The first of each reason, then once per 1,000 more.
    if (before === 0 || Math.floor(after / 1000) > Math.floor(before / 1000)) {
      this.logger.warn('alerts dropped', { receiver: this.name, reason, count: n, total: after, ...fields });
    }
  }

  private wakeFlushWaitersIfIdle(): void {
    if (this.pending() === 0) this.wakeFlushWaiters();
  }

  private wakeFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }
}

/**
 * True when firing state `f` belongs to the episode resolve `r` ends, or to an older one: it started
 * no later than `r` ended. By time, not by equal startsAt, so that a resolve whose startsAt is the
 * pending start still ends a firing state stamped with the firing start. A new episode starts after
 * the previous one ended.
 */
function endedBy(f: NotifiedAlert, r: NotifiedAlert): boolean {
  return r.endsAt !== null && f.startsAt <= r.endsAt;
}

function sameEpisode(list: readonly NotifiedAlert[] | undefined, alert: NotifiedAlert): boolean {
  return list?.some((r) => r.startsAt === alert.startsAt) ?? false;
}

function isPowerOfTen(n: number): boolean {
  return n === 1 || n === 10 || n === 100 || n === 1000 || n % 10_000 === 0;
}

/** Retry-After as seconds or an HTTP date, bounded by the backoff's maximum; null when absent. */
function retryAfter(header: string | undefined, maxMs: number): number | null {
  if (!header) return null;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) ? Math.min(maxMs, Math.max(0, ms)) : null;
}

/**
 * Why Alertmanager would refuse this alert (and with it the whole POST), or null: no labels, a name
 * that is not a label name, a value that is not a string, times that are not times or end before
 * they start. The evaluator builds labels with analyze/alerts/labels.ts, so this is a last guard.
 */
export function invalidReason(alert: NotifiedAlert): string | null {
  const labels = Object.entries(alert.labels ?? {});
  if (labels.length === 0) return 'no labels';
  for (const [name, value] of [...labels, ...Object.entries(alert.annotations ?? {})]) {
    if (!LABEL_NAME.test(name)) return `invalid name ${JSON.stringify(name.slice(0, 64))}`;
    if (typeof value !== 'string') return `value of ${name} is not a string`;
  }
  if (!Number.isFinite(alert.startsAt)) return 'startsAt is not a time';
  if (alert.endsAt !== null && !Number.isFinite(alert.endsAt)) return 'endsAt is not a time';
  if (alert.endsAt !== null && alert.endsAt < alert.startsAt) return 'endsAt before startsAt';
  return null;
}

/** RFC 3339 (UTC, milliseconds) of a time in ms. */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * generatorURL as an absolute URL (normalised, so Alertmanager's `uri` check passes), or undefined:
 * Alertmanager answers 422 to the whole POST for one generatorURL that is not a URI.
 */
export function safeGeneratorUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/** A URL for logs: no user or password, no query (tokens live there). */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search ? '?…' : ''}`;
}

/** Parses a receiver URL (http or https); a TypeError names what is wrong (a configuration error). */
export function receiverUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`${what} URL ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${what} URL ${JSON.stringify(raw)} is not http: or https:`);
  }
  return url;
}

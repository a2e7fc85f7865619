/**
 * The webhook notifier against a receiver of the test on 127.0.0.1 that fails, hangs or refuses:
 * retries with growing backoff, a hang cut by the timeout with memory bounded, a 400 not retried.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { NotifiedAlert } from '../../../core/alert.js';
import { createLogger } from '../../../core/log.js';
import type { DeliveryStats } from './delivery.js';
import { startTestReceiver, type TestReceiver } from './test-receiver.js';
import { alertFingerprint, WebhookNotifier } from './webhook.js';

const T0 = Date.parse('2025-03-01T12:00:00Z');

function alert(i: number, extra: Partial<NotifiedAlert> = {}): NotifiedAlert {
  return {
    labels: { alertname: 'FailedCalls', vm: `vm-${i}` },
    annotations: { summary: `vm-${i} fails` },
    startsAt: T0,
    endsAt: null,
    generatorURL: 'http://callscope.example/alerts',
    ...extra,
  };
}

/** accepted = delivered + coalesced + dropped + pending: nothing is lost without being counted. */
function balanced(s: DeliveryStats): boolean {
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
  return s.accepted === s.delivered + s.coalesced + dropped + s.pending;
}

let receiver: TestReceiver | null = null;
let notifier: WebhookNotifier | null = null;
afterEach(async () => {
  await notifier?.close();
  await receiver?.close();
  notifier = null;
  receiver = null;
});

describe('WebhookNotifier', () => {
  it('500 three times then 200: delivered once, 3 failures, backoff growing', async () => {
    receiver = await startTestReceiver((n) => (n < 3 ? { status: 500, body: 'busy' } : 200));
    notifier = new WebhookNotifier({
      url: `${receiver.url}hook`,
      name: 'noc',
      headers: { authorization: 'Bearer s3cret' },
      backoff: { initialMs: 100, factor: 2, jitter: 0 },
    });
    notifier.send([alert(1), alert(2, { endsAt: T0 + 60_000 })]);
    await notifier.flush(5000);

    expect(receiver.received).toHaveLength(4);
    const gaps = receiver.received.slice(1).map((r, i) => r.at - receiver!.received[i].at);
    console.log(`[webhook] 500 ×3 then 200: gaps between attempts ${gaps.join(', ')} ms`);
    // Nominal 100, 200, 400 ms: each wait at least its delay, and growing.
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
    expect(gaps[1]).toBeGreaterThan(gaps[0]);
    expect(gaps[2]).toBeGreaterThan(gaps[1]);
    const s = notifier.stats();
    expect(s).toMatchObject({ accepted: 2, delivered: 2, failures: 3, requests: 4, pending: 0, dropped: {} });
    expect(s.lastError).toBe('HTTP 500: busy');

    // The last body: Alertmanager's webhook payload, resolved alert first.
    const last = receiver.received[3];
    expect(last.headers.authorization).toBe('Bearer s3cret');
    expect(last.url).toBe('/hook');
    expect(last.body).toEqual({
      version: '4',
      groupKey: '{}:{receiver="noc"}',
      truncatedAlerts: 0,
      status: 'firing',
      receiver: 'noc',
      groupLabels: {},
      commonLabels: { alertname: 'FailedCalls' },
      commonAnnotations: {},
      externalURL: '',
      alerts: [
        {
          status: 'resolved',
          labels: { alertname: 'FailedCalls', vm: 'vm-2' },
          annotations: { summary: 'vm-2 fails' },
          startsAt: '2025-03-01T12:00:00.000Z',
          endsAt: '2025-03-01T12:01:00.000Z',
          generatorURL: 'http://callscope.example/alerts',
          fingerprint: alertFingerprint({ alertname: 'FailedCalls', vm: 'vm-2' }),
        },
        {
          status: 'firing',
          labels: { alertname: 'FailedCalls', vm: 'vm-1' },
          annotations: { summary: 'vm-1 fails' },
          startsAt: '2025-03-01T12:00:00.000Z',
          endsAt: '0001-01-01T00:00:00Z',
          generatorURL: 'http://callscope.example/alerts',
          fingerprint: alertFingerprint({ alertname: 'FailedCalls', vm: 'vm-1' }),
        },
      ],
    });
  });

  it('a hanging receiver: cut by the timeout and retried; 50,000 sends over 5,000 alerts stay bounded', async () => {
    receiver = await startTestReceiver(() => 'hang');
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const options = { timeoutMs: 150, backoff: { initialMs: 20, maxMs: 100 }, maxBatch: 500, logger };
    notifier = new WebhookNotifier({ url: receiver.url, ...options });
    const started = Date.now();
    let maxPending = 0;
    // 10 evaluations of 5,000 firing alerts, each with a newer annotation, while the receiver hangs.
    for (let round = 0; round < 10; round++) {
      notifier.send(
        Array.from({ length: 5000 }, (_, i) => alert(i, { annotations: { summary: `round ${round}` } })),
      );
      maxPending = Math.max(maxPending, notifier.stats().pending);
      await new Promise((r) => setTimeout(r, 60));
    }
    await receiver.waitFor(3, 5000);
    const s = notifier.stats();
    console.log(
      `[webhook] hanging: ${s.accepted} sent, max pending ${maxPending}, ${s.coalesced} coalesced, ` +
        `${s.failures} timeouts, ${receiver.received.length} requests, ${receiver.abandoned} abandoned`,
    );
    // Queued: one state per distinct alert; in flight: at most one batch (maxBatch).
    expect(maxPending).toBeLessThanOrEqual(5000 + 500);
    expect(s.pending).toBeLessThanOrEqual(5000 + 500);
    expect(s.accepted).toBe(50_000);
    expect(s.coalesced).toBeGreaterThanOrEqual(45_000 - 500);
    expect(s.delivered).toBe(0);
    expect(s.failures).toBeGreaterThanOrEqual(2);
    expect(s.lastError).toBe('no answer within 150 ms');
    expect(balanced(s)).toBe(true);
    // Each request was abandoned by us at the timeout, then made again (same alerts, oldest first).
    expect(receiver.abandoned).toBeGreaterThanOrEqual(2);
    expect(receiver.received.length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 150) + 1);

    // close() aborts the request in flight at once and counts what was left.
    const t = Date.now();
    await notifier.close();
    expect(Date.now() - t).toBeLessThan(1000);
    const c = notifier.stats();
    expect(c.pending).toBe(0);
    // Every distinct alert's newest state (the batch cut off in flight is superseded by them).
    expect(c.dropped.closed).toBe(5000);
    expect(balanced(c)).toBe(true);
    notifier.send([alert(1)]);
    expect(notifier.stats().dropped.closed).toBe(5001);

    // A cap below the distinct count: queue ≤ maxQueue, drops counted and logged sparingly, and the
    // resolves survive a flood of firing states.
    lines.length = 0;
    notifier = new WebhookNotifier({ url: receiver.url, ...options, maxQueue: 2000 });
    notifier.send(Array.from({ length: 1000 }, (_, i) => alert(100_000 + i, { endsAt: T0 + 1 })));
    for (let round = 0; round < 10; round++) {
      notifier.send(
        Array.from({ length: 5000 }, (_, i) => alert(i, { annotations: { summary: `r${round}` } })),
      );
      expect(notifier.stats().pending).toBeLessThanOrEqual(2000 + 500);
    }
    const d = notifier.stats();
    expect(d.dropped['queue-full']).toBeGreaterThanOrEqual(40_000);
    expect(d.dropped).not.toHaveProperty('closed');
    expect(balanced(d)).toBe(true);
    const dropLines = lines.filter((l) => l.includes('"alerts dropped"'));
    console.log(
      `[webhook] maxQueue 2000: pending ${d.pending}, queue-full drops ${d.dropped['queue-full']} ` +
        `in ${dropLines.length} log lines`,
    );
    expect(dropLines.length).toBeGreaterThan(0);
    expect(dropLines.length).toBeLessThanOrEqual(Math.floor(d.dropped['queue-full'] / 1000) + 1);
    // Only firing states were dropped: every resolve is still queued or in flight.
    await notifier.close();
    expect(notifier.stats().dropped.closed).toBe(d.pending);
    expect(d.pending).toBeGreaterThanOrEqual(1000);
    expect(lines.some((l) => l.includes('"kind":"resolved"'))).toBe(false);
  });

  it('400: dropped as rejected with the answer logged, never retried', async () => {
    receiver = await startTestReceiver(() => ({ status: 400, body: 'bad payload: no "alerts"' }));
    const lines: string[] = [];
    notifier = new WebhookNotifier({
      url: receiver.url,
      backoff: { initialMs: 10 },
      logger: createLogger({ write: (l) => lines.push(l) }),
    });
    notifier.send([alert(1), alert(2)]);
    await notifier.flush(2000);
    await new Promise((r) => setTimeout(r, 300)); // time for a retry that must not come
    expect(receiver.received).toHaveLength(1);
    expect(notifier.stats()).toMatchObject({
      delivered: 0,
      failures: 0,
      pending: 0,
      dropped: { rejected: 2 },
    });
    expect(notifier.stats().lastError).toBe('HTTP 400: bad payload: no "alerts"');
    const line = JSON.parse(lines.find((l) => l.includes('alerts dropped'))!);
    expect(line).toMatchObject({
      reason: 'rejected',
      status: 400,
      answer: 'bad payload: no "alerts"',
      count: 2,
    });
    expect(lines.join('')).not.toContain('s3cret');
  });

  it('408 and 429 are retried (Retry-After honoured); a batch over maxRequestBytes is split', async () => {
    receiver = await startTestReceiver((n) =>
      n === 0 ? 408 : n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : 200,
    );
    notifier = new WebhookNotifier({
      url: receiver.url,
      backoff: { initialMs: 10, jitter: 0 },
      maxRequestBytes: 8192,
    });
    notifier.send(Array.from({ length: 100 }, (_, i) => alert(i)));
    notifier.send([alert(999, { annotations: { big: 'x'.repeat(10_000) } })]);
    await notifier.flush(5000);
    const s = notifier.stats();
    expect(s).toMatchObject({ accepted: 101, delivered: 100, failures: 2, dropped: { 'too-large': 1 } });
    expect(receiver.received[2].at - receiver.received[1].at).toBeGreaterThanOrEqual(990);
    const ok = receiver.received.slice(2);
    expect(ok.length).toBeGreaterThan(1);
    for (const r of ok) expect(r.bytes).toBeLessThanOrEqual(8192);
    const vms = ok.flatMap((r) =>
      (r.body as { alerts: { labels: { vm: string } }[] }).alerts.map((a) => a.labels.vm),
    );
    expect(new Set(vms).size).toBe(100);
  });
});

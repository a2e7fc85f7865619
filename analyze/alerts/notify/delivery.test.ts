/** The queue's rules: newest state per alert, resolves never lost to firing states, invalid alerts alone. */
import { afterEach, describe, expect, it } from 'vitest';
import type { NotifiedAlert } from '../../../core/alert.js';
import { AlertmanagerNotifier } from './alertmanager.js';
import { notifiersFrom } from './index.js';
import { startTestReceiver, type TestReceiver } from './test-receiver.js';

const T0 = Date.parse('2025-03-01T12:00:00Z');
const fire = (vm: string, startsAt: number, note = ''): NotifiedAlert => ({
  labels: { alertname: 'FailedCalls', vm },
  annotations: note ? { note } : {},
  startsAt,
  endsAt: null,
  generatorURL: '',
});
const resolve = (vm: string, startsAt: number, endsAt: number): NotifiedAlert => ({
  ...fire(vm, startsAt),
  endsAt,
});

type Posted = { labels: { vm: string }; annotations: { note?: string }; startsAt: string; endsAt?: string };

let receiver: TestReceiver | null = null;
let notifier: AlertmanagerNotifier | null = null;
afterEach(async () => {
  await notifier?.close();
  await receiver?.close();
  notifier = receiver = null;
});

describe('AlertDelivery queue', () => {
  it('while the receiver fails: newest state wins, a resolve beats its own firing state, a new episode follows it', async () => {
    let open = false;
    receiver = await startTestReceiver(() => (open ? 200 : 503));
    notifier = new AlertmanagerNotifier({ urls: [receiver.url], backoff: { initialMs: 50, maxMs: 50 } });
    notifier.send([fire('a', T0, 'first'), fire('b', T0)]);
    await receiver.waitFor(1);
    notifier.send([fire('a', T0, 'second'), fire('b', T0)]); // re-sends: replace
    notifier.send([resolve('b', T0, T0 + 60_000)]); // b's episode ends...
    notifier.send([fire('b', T0 + 120_000, 'again')]); // ...and a new one starts
    notifier.send([fire('b', T0)]); // a stale firing state of the ended episode: ignored
    notifier.send([fire('a', T0, 'third')]);
    // A resolve stamped with the pending start (before the firing start) still ends that firing state.
    notifier.send([fire('c', T0 + 30_000), resolve('c', T0, T0 + 90_000)]);
    await receiver.waitFor(2);
    open = true;
    await notifier.flush(3000);

    const last = receiver.received.at(-1)!.body as Posted[];
    expect(last.map((a) => [a.labels.vm, a.startsAt, a.endsAt ?? null, a.annotations.note ?? null])).toEqual([
      ['b', '2025-03-01T12:00:00.000Z', '2025-03-01T12:01:00.000Z', null],
      ['c', '2025-03-01T12:00:00.000Z', '2025-03-01T12:01:30.000Z', null],
      ['a', '2025-03-01T12:00:00.000Z', null, 'third'],
      ['b', '2025-03-01T12:02:00.000Z', null, 'again'],
    ]);
    const s = notifier.stats();
    expect(s).toMatchObject({ accepted: 10, delivered: 4, pending: 0, dropped: {} });
    expect(s.coalesced).toBe(6);
    expect(s.failures).toBeGreaterThanOrEqual(2);
    expect(receiver.received[0].url).toBe('/api/v2/alerts');
  });

  it('an invalid alert is dropped alone, the rest of its send is delivered', async () => {
    receiver = await startTestReceiver();
    notifier = new AlertmanagerNotifier({ urls: [`${receiver.url}prefix/`] });
    notifier.send([
      fire('ok', T0),
      { ...fire('x', T0), labels: { 'bad-name': 'x' } },
      { ...fire('y', T0), labels: {} },
      { ...fire('z', T0), endsAt: T0 - 1 },
    ]);
    await notifier.flush(2000);
    expect(notifier.stats()).toMatchObject({ accepted: 4, delivered: 1, dropped: { invalid: 3 } });
    expect(receiver.received[0].url).toBe('/prefix/api/v2/alerts');
  });

  it('an HA pair: each Alertmanager gets every alert; one down delays nobody else', async () => {
    receiver = await startTestReceiver();
    notifier = new AlertmanagerNotifier({
      urls: ['http://127.0.0.1:1/', receiver.url], // port 1: connection refused
      backoff: { initialMs: 20, maxMs: 20 },
    });
    notifier.send([fire('a', T0)]);
    await notifier.deliveries[1].flush(2000);
    const [down, up] = notifier.deliveries.map((d) => d.stats());
    expect(up).toMatchObject({ delivered: 1, pending: 0 });
    expect(down).toMatchObject({ delivered: 0, pending: 1 });
    expect(down.lastError).toMatch(/ECONNREFUSED/);
  });

  it('notifiersFrom: one Alertmanager notifier, one per webhook; configuration errors throw', () => {
    const made = notifiersFrom({
      alertmanager: { urls: ['http://am1:9093', 'http://am2:9093'] },
      webhooks: [
        { url: 'https://user:pw@hooks.example/x?token=t', headersFromEnv: { authorization: 'HOOK_AUTH' } },
      ],
      env: { HOOK_AUTH: 'Bearer z' },
    });
    expect(made.map((n) => n.name)).toEqual(['alertmanager', 'webhook https://hooks.example/x?…']);
    expect(() => notifiersFrom({ webhooks: [{ url: 'ftp://x' }] })).toThrow(/not http/);
    expect(() =>
      notifiersFrom({ webhooks: [{ url: 'http://x', headersFromEnv: { a: 'NOPE' } }], env: {} }),
    ).toThrow(/NOPE/);
    for (const n of made) void n.close();
  });
});

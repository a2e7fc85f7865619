/**
 * AlertmanagerNotifier against a real Alertmanager (Debian `prometheus-alertmanager`, a plain process
 * on 127.0.0.1 with its own config and storage). GET /api/v2/alerts never lists resolved alerts, so
 * Alertmanager's own webhook notifications (to a receiver of this test, send_resolved) are the witness
 * that a resolve arrived and with which endsAt.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { NotifiedAlert } from '../../../core/alert.js';
import { needs, removeTmpDir, tmpDir, tool } from '../../../test/oracle/tools.js';
import { alertAnnotations, alertLabels } from '../labels.js';
import { AlertmanagerNotifier } from './alertmanager.js';
import { startTestReceiver, type TestReceiver } from './test-receiver.js';
import { alertFingerprint } from './webhook.js';

const gate = needs(tool('prometheus-alertmanager'));

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  fingerprint: string;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}
interface Notification {
  status: string;
  alerts: { status: string; labels: Record<string, string>; startsAt: string; endsAt: string }[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

gate.describe('AlertmanagerNotifier → a real Alertmanager', () => {
  let dir = '';
  let port = 0;
  let am: ChildProcess | null = null;
  let hook: TestReceiver;
  const base = () => `http://127.0.0.1:${port}`;

  async function startAm(): Promise<void> {
    const log = openSync(join(dir, 'alertmanager.log'), 'a');
    const child = spawn(
      'prometheus-alertmanager',
      [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', log, log] },
    );
    am = child;
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`alertmanager exited ${child.exitCode}: see ${dir}`);
      const ready = await fetch(`${base()}/-/ready`).catch(() => null);
      if (ready?.ok) return;
      await sleep(100);
    }
    throw new Error('alertmanager not ready after 10 s');
  }

  /** SIGTERM (Alertmanager writes its notification log on the way out), then waits for the exit. */
  async function stopAm(): Promise<void> {
    const child = am;
    am = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async function active(alertname: string): Promise<AmAlert[]> {
    const q = new URLSearchParams({ filter: `alertname="${alertname}"`, active: 'true' });
    const res = await fetch(`${base()}/api/v2/alerts?${q}`);
    expect(res.status).toBe(200);
    return (await res.json()) as AmAlert[];
  }

  /** Alertmanager's webhook notifications so far, for one alertname, flattened to their alerts. */
  function notified(alertname: string) {
    return hook.received
      .flatMap((r) => (r.body as Notification).alerts)
      .filter((a) => a.labels.alertname === alertname);
  }

  async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
      await sleep(100);
    }
  }

  beforeAll(async () => {
    dir = tmpDir('callscope-alertmanager-');
    hook = await startTestReceiver();
    port = await freePort();
    // Every alert its own group ('...'), notified 200 ms after it arrives, resolves included.
    writeFileSync(
      join(dir, 'alertmanager.yml'),
      [
        'route:',
        '  receiver: hook',
        "  group_by: ['...']",
        '  group_wait: 200ms',
        '  group_interval: 1s',
        '  repeat_interval: 1h',
        'receivers:',
        '  - name: hook',
        '    webhook_configs:',
        `      - url: '${hook.url}'`,
        '        send_resolved: true',
        '',
      ].join('\n'),
    );
    await startAm();
  });

  afterAll(async () => {
    await stopAm();
    await hook?.close();
    if (dir) removeTmpDir(dir);
  });

  const alert = (
    alertname: string,
    vm: string,
    startsAt: number,
    endsAt: number | null = null,
  ): NotifiedAlert => ({
    labels: alertLabels(alertname, { vm, severity: 'warning' }),
    annotations: alertAnnotations({ summary: `failed calls on ${vm}`, description: 'line 1\nline 2' }),
    startsAt,
    endsAt,
    generatorURL: 'http://callscope.example/alerts?rule=x',
  });

  it('a firing alert appears with its labels; re-sends keep it; a resolve removes it', async () => {
    const n = new AlertmanagerNotifier({ urls: [base()] });
    const a = alert('CallscopeFiring', 'vm-1', Date.now() - 60_000);
    n.send([a]);
    await n.flush(5000);
    const [got, ...more] = await active('CallscopeFiring');
    expect(more).toHaveLength(0);
    expect(got.labels).toEqual(a.labels);
    expect(got.annotations).toEqual(a.annotations);
    expect(got.fingerprint).toBe(alertFingerprint(a.labels)); // our webhook's fingerprint is Alertmanager's
    expect(Date.parse(got.startsAt)).toBe(a.startsAt);
    expect(got.status.state).toBe('active');

    for (let i = 0; i < 2; i++) {
      n.send([a]);
      await n.flush(5000);
    }
    expect((await active('CallscopeFiring')).map((x) => x.fingerprint)).toEqual([got.fingerprint]);

    n.send([{ ...a, endsAt: Date.now() }]);
    await n.flush(5000);
    expect(await active('CallscopeFiring')).toEqual([]);
    expect(n.stats()).toMatchObject({ accepted: 4, delivered: 4, failures: 0, pending: 0, dropped: {} });
    await n.close();
  });

  it('Alertmanager down for 30 s: the resolve and the new alert sent meanwhile both arrive', async () => {
    const n = new AlertmanagerNotifier({
      urls: [base()],
      timeoutMs: 2000,
      backoff: { initialMs: 200, maxMs: 2000 },
    });
    const b = alert('CallscopeOutage', 'vm-b', Date.now() - 60_000);
    n.send([b]);
    await n.flush(5000);
    await until('the firing notification of vm-b', () => notified('CallscopeOutage').length > 0);

    await stopAm();
    const downAt = Date.now();
    const resolvedB = { ...b, endsAt: Date.now() };
    const c = alert('CallscopeOutage', 'vm-c', Date.now());
    n.send([resolvedB]);
    let maxPending = 0;
    // Evaluations every 2 s go on re-sending the firing alert, as the evaluator does.
    while (Date.now() - downAt < 30_000) {
      n.send([c]);
      maxPending = Math.max(maxPending, n.stats().pending);
      await sleep(2000);
    }
    const during = n.stats();
    await startAm();
    const down = Date.now() - downAt;
    await n.flush(15_000);
    const after = n.stats();
    console.log(
      `[alertmanager] down ${down} ms: ${during.failures} failed attempts, ${during.coalesced} re-sends coalesced, ` +
        `pending ≤ ${maxPending}; delivered after restart, pending ${after.pending}`,
    );
    expect(down).toBeGreaterThanOrEqual(30_000);
    expect(during.failures).toBeGreaterThanOrEqual(8); // 200 ms doubling to 2 s over 30 s
    // One resolve and one firing alert (plus, while a request is out, the re-send beside it).
    expect(maxPending).toBeLessThanOrEqual(3);
    expect(after).toMatchObject({ pending: 0, dropped: {} });
    expect(after.lastError).toMatch(/ECONNREFUSED/);

    // Alertmanager notifies the resolve with our endsAt, and the new alert as firing.
    await until('the resolve of vm-b and the firing of vm-c', () => {
      const got = notified('CallscopeOutage');
      return (
        got.some((x) => x.labels.vm === 'vm-b' && x.status === 'resolved') &&
        got.some((x) => x.labels.vm === 'vm-c')
      );
    });
    const got = notified('CallscopeOutage');
    const resolve = got.find((x) => x.labels.vm === 'vm-b' && x.status === 'resolved')!;
    expect(Date.parse(resolve.endsAt)).toBe(resolvedB.endsAt);
    expect(Date.parse(resolve.startsAt)).toBe(b.startsAt);
    expect(got.find((x) => x.labels.vm === 'vm-c')!.status).toBe('firing');
    expect((await active('CallscopeOutage')).map((x) => x.labels.vm)).toEqual(['vm-c']);
    await n.close();
  }, 90_000);

  it('hostile label values arrive cleaned and bounded, and Alertmanager takes them (200)', async () => {
    const n = new AlertmanagerNotifier({ urls: [base()] });
    const hostile: NotifiedAlert = {
      labels: alertLabels('CallscopeHostile', {
        user: '"Mallory" <sip:x@y>\r\nX-Evil: 1\u0000\u001b[2J',
        'from-uri': `sip:${'u'.repeat(65_536)}@evil`,
        emoji: '😀'.repeat(300),
      }),
      annotations: alertAnnotations({ description: `${'d\n'.repeat(5000)}\u202eend` }),
      startsAt: Date.now(),
      endsAt: null,
      generatorURL: 'not a url', // Alertmanager answers 422 to the whole POST for this: left out
    };
    n.send([hostile]);
    await n.flush(5000);
    expect(n.stats()).toMatchObject({ delivered: 1, requests: 1, dropped: {}, lastError: null });
    const [got] = await active('CallscopeHostile');
    expect(got.labels).toEqual(hostile.labels);
    expect(got.labels.user).toBe('"Mallory" <sip:x@y>  X-Evil: 1\ufffd\ufffd[2J');
    expect(Array.from(got.labels.from_uri)).toHaveLength(256);
    expect(got.labels.from_uri).toMatch(/^sip:u+…\[\+65\d{3}\]$/);
    expect(Array.from(got.labels.emoji)).toHaveLength(256);
    expect(got.labels.emoji).not.toContain('\ufffd');
    expect(Array.from(got.annotations.description)).toHaveLength(4096);
    await n.close();
  });
});

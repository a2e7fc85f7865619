/**
 * Issue 14's acceptance for the built-in evaluator, on real parts: an OVS lab (userspace datapath)
 * with a caller VM and two callee VMs as namespaces, SIPp making steady calls to both, a mirror of
 * every port to the monitoring VM, `callscope run --interface` there with the alert rules, and
 * Debian's Prometheus Alertmanager (API v2) as the receiver, in the monitoring VM's namespace.
 *
 * The failure wave: for 30 s, 40 % of VM A's calls are answered 503 (a second SIPp UAS on A that
 * answers every call 503 takes 2 of A's 5 calls per second). Then:
 * - the failed-call-ratio alert for exactly VM A is firing in Alertmanager within window + for + one
 *   interval (+ the evaluation delay) of the wave's start, with example Call-IDs that are SIPp's
 *   own 503 calls; nothing fires for VM B;
 * - Alertmanager is killed for 30 s while the alert fires; the wave ends and the alert resolves while
 *   it is down; once it is back it has the resolution (nothing lost);
 * - 1 failure in 3 attempts on VM C, which has no other traffic, fires nothing (min-attempts);
 * - `alerts --evaluate` over the stored run gives the transitions the live evaluator stored.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AlertTransition } from '../core/alert.js';
import { type LiveRun, startLiveRun } from './oracle/live-run.js';
import { OVS_LAB, type OvsLab, type OvsVm, startOvs } from './oracle/ovs.js';
import { type NamespacedSipp, startSippIn, waitUdpListening } from './oracle/sipp-netns.js';
import { built, needs, PCAP_PACKAGE, removeTmpDir, SIPP_SCENARIO_DIR, tmpDir, tool } from './oracle/tools.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const CALLSCOPE = join(ROOT, 'dist/bin/callscope.js');
const OVS_MIRROR = join(ROOT, 'dist/bin/ovs-mirror.js');
const gate = needs(
  ...OVS_LAB,
  'sipp',
  tool('prometheus-alertmanager'),
  PCAP_PACKAGE,
  built(CALLSCOPE),
  built(OVS_MIRROR),
);

const AM_PORT = 19093;
const HOOK_PORT = 19094;
const WINDOW_S = 20;
const FOR_S = 6;
const INTERVAL_S = 2;
const DELAY_S = 3;
const RULES = `evaluation:
  interval: ${INTERVAL_S}s
  delay: ${DELAY_S}s
  examples: 5
receivers:
  alertmanager: [http://127.0.0.1:${AM_PORT}]
rules:
  - name: failed-call-ratio-by-vm
    kpi: failed-call-ratio
    by: [callee_vm]
    window: ${WINDOW_S}s
    above: 0.2
    resolve: 0.1
    min-attempts: 10
    for: ${FOR_S}s
    labels: { severity: critical }
    annotations:
      summary: "Calls to VM {{ $labels.callee_vm }} are failing: {{ $value }} of {{ $attempts }}"
      description: "Examples: {{ $examples }}"
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

gate.describe('alerts on a failure wave: OVS lab, SIPp, live capture, real Alertmanager', () => {
  const dir = tmpDir('callscope-alerts-e2e-');
  let lab: OvsLab;
  let caller: OvsVm;
  let vmA: OvsVm;
  let vmB: OvsVm;
  let vmC: OvsVm;
  let monitor: OvsVm;
  const sipps: NamespacedSipp[] = [];
  let capture: LiveRun;
  let alertmanager: ChildProcess | null = null;
  const dataDir = join(dir, 'store');
  const rulesFile = join(dir, 'rules.yaml');
  const hookFile = join(dir, 'am-notifications.jsonl');

  function startAlertmanager(): ChildProcess {
    const config = join(dir, 'am.yml');
    // Its notifications go to a webhook of the test (GET /api/v2/alerts never lists resolved alerts:
    // what Alertmanager notifies is how a resolution is seen to have arrived).
    writeFileSync(
      config,
      'route: { receiver: hook, group_wait: 1s, group_interval: 1s, repeat_interval: 1h }\n' +
        `receivers: [{ name: hook, webhook_configs: [{ url: 'http://127.0.0.1:${HOOK_PORT}/', send_resolved: true }] }]\n`,
    );
    // biome-ignore format: option/value pairs
    const child = lab.spawnIn(monitor.ns, 'prometheus-alertmanager', [
      `--config.file=${config}`, `--storage.path=${join(dir, 'am-data')}`,
      `--web.listen-address=127.0.0.1:${AM_PORT}`, '--cluster.listen-address=', '--log.level=warn',
    ]);
    return child;
  }

  /** GET inside the monitoring VM's namespace (where Alertmanager listens), by a Node of its own. */
  async function get(path: string): Promise<string> {
    const script = `fetch('http://127.0.0.1:${AM_PORT}${path}').then(async (r) => { if (!r.ok) process.exit(1); process.stdout.write(await r.text()); }, () => process.exit(1))`;
    return lab.exec(monitor.ns, process.execPath, ['-e', script]);
  }

  async function amAlerts(): Promise<AmAlert[]> {
    return JSON.parse(await get('/api/v2/alerts')) as AmAlert[];
  }

  /** Alertmanager's webhook notifications so far (one JSON body per line). */
  function notifications(): Array<{ status: string; alerts: AmAlert[] }> {
    let text = '';
    try {
      text = readFileSync(hookFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  }

  async function amUp(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await get('/-/ready');
        return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  function sipp(vm: OvsVm, name: string, args: string[]): NamespacedSipp {
    const s = startSippIn(lab, vm.ns, name, dir, args);
    sipps.push(s);
    return s;
  }

  function uac(
    name: string,
    to: OvsVm,
    port: number,
    rate: number,
    calls: number,
    localPort: number,
  ): NamespacedSipp {
    // biome-ignore format: option/value pairs
    return sipp(caller, name, [
      '-sn', 'uac', '-d', '200', '-r', String(rate), '-m', String(calls), '-i', caller.ip, '-p', String(localPort),
      '-mp', String(20000 + (localPort - 5000) * 10),
      '-trace_msg', '-message_file', join(dir, `${name}.msg`), `${to.ip}:${port}`,
    ]);
  }

  beforeAll(async () => {
    writeFileSync(rulesFile, RULES);
    lab = await startOvs();
    caller = await lab.addVm({ port: 'tap9301i0', ip: '10.79.0.11/24' });
    vmA = await lab.addVm({ port: 'tap9302i0', ip: '10.79.0.12/24' });
    vmB = await lab.addVm({ port: 'tap9303i0', ip: '10.79.0.13/24' });
    vmC = await lab.addVm({ port: 'tap9304i0', ip: '10.79.0.14/24' });
    monitor = await lab.addVm({ port: 'tap9399i0', ip: '10.79.0.99/24' });
    for (const vm of [caller, vmA, vmB, vmC, monitor])
      await lab.exec(vm.ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    await lab.exec(monitor.ns, 'ip', ['link', 'set', 'lo', 'up']);
    // Each callee VM answers on 5060; A and B also run a UAS answering every call 503 on 5070.
    for (const vm of [vmA, vmB, vmC]) {
      const name = vm === vmA ? 'a' : vm === vmB ? 'b' : 'c';
      sipp(vm, `uas-${name}`, ['-sn', 'uas', '-i', vm.ip, '-p', '5060', '-mp', '16000']);
      // biome-ignore format: option/value pairs
      sipp(vm, `uas-${name}-503`, [
        '-sf', join(SIPP_SCENARIO_DIR, 'uas-unavailable.xml'), '-i', vm.ip, '-p', '5070', '-mp', '16100',
      ]);
      await waitUdpListening(lab, vm.ns, 5060);
      await waitUdpListening(lab, vm.ns, 5070);
    }
    for (const vm of [caller, vmA, vmB, vmC]) expect(await lab.udpEcho(vm, monitor, { count: 2 })).toBe(2);
    await run(
      process.execPath,
      // biome-ignore format: option/value pairs
      [OVS_MIRROR, 'add', '--vm', '9301', '--vm', '9302', '--vm', '9303', '--vm', '9304', '--to', monitor.port, '--name', 'noc',
        '--db', lab.dbTarget, '--unixctl', lab.vswitchdCtl!, '--json'],
      { timeout: 30_000 },
    );
    const hook = `require('http').createServer((q, r) => { let b = ''; q.on('data', (c) => (b += c));
      q.on('end', () => { require('fs').appendFileSync(${JSON.stringify(hookFile)}, b.replace(/\\n/g, ' ') + '\\n'); r.end(); }); })
      .listen(${HOOK_PORT}, '127.0.0.1')`;
    lab.spawnIn(monitor.ns, process.execPath, ['-e', hook]);
    alertmanager = startAlertmanager();
    await amUp();
    capture = startLiveRun(lab, monitor, dataDir, ['--alert-rules', rulesFile]);
    await capture.live;
  }, 90_000);

  afterAll(async () => {
    for (const s of sipps) await s.stop();
    if (capture && capture.child.exitCode === null) capture.child.kill('SIGKILL');
    alertmanager?.kill('SIGKILL');
    await lab?.close();
    removeTmpDir(dir);
  }, 60_000);

  const forVm = (alerts: AmAlert[], vm: string) =>
    alerts.filter((a) => a.labels.alertname === 'failed-call-ratio-by-vm' && a.labels.callee_vm === vm);

  it('fires for exactly the failing VM, resolves after the wave, loses nothing while Alertmanager is down, and replays the same', async () => {
    // Steady traffic: A 3 calls/s on 5060, B 5 calls/s on 5060, for the whole test.
    const steadyA = uac('steady-a', vmA, 5060, 3, 3 * 110, 5061);
    const steadyB = uac('steady-b', vmB, 5060, 5, 5 * 110, 5062);
    await sleep((WINDOW_S + 2) * 1000);
    // The wave: 2 more calls/s to A, all answered 503, for 30 s: 40 % of A's calls fail.
    const waveStart = Date.now();
    const wave = uac('wave-a', vmA, 5070, 2, 60, 5063);
    // Meanwhile VM C, with no other traffic, answers 1 of 3 calls 503: too few attempts to judge.
    const few = uac('few-c', vmC, 5060, 1, 2, 5064);
    const fewFail = uac('few-c-503', vmC, 5070, 1, 1, 5065);
    let firing: AmAlert | undefined;
    const bound = (WINDOW_S + FOR_S + INTERVAL_S + DELAY_S) * 1000;
    while (firing === undefined && Date.now() - waveStart < bound + 5000) {
      await sleep(500);
      firing = forVm(await amAlerts(), '9302').find((a) => a.status.state === 'active');
    }
    const firedAfter = Date.now() - waveStart;
    expect(
      firing,
      `no alert for VM 9302 after ${firedAfter} ms:\n${capture.stderr().slice(-4000)}`,
    ).toBeDefined();
    expect(firedAfter).toBeLessThanOrEqual(bound);
    expect(forVm(await amAlerts(), '9303')).toEqual([]);
    // Its examples are calls SIPp's wave UAC made and got 503 for.
    const examples = firing!.annotations.examples!.split('\n');
    expect(examples.length).toBeGreaterThan(0);
    const waveMessages = readFileSync(join(dir, 'wave-a.msg'), 'latin1');
    for (const id of examples) expect(waveMessages).toContain(`Call-ID: ${id}`);

    // Alertmanager down for 30 s from the wave's end: the alert resolves while it is down (SIGTERM: it
    // keeps alerts in memory only, and writes down what it notified only when it stops cleanly).
    await wave.exit;
    const am = alertmanager!;
    am.kill('SIGTERM');
    await new Promise((r) => am.once('exit', r));
    const downAt = Date.now();
    await sleep(30_000);
    alertmanager = startAlertmanager();
    await amUp();
    // The resolution was queued while it was down, and arrives once it is back: Alertmanager notifies it.
    const resolvedNotice = () =>
      notifications()
        .flatMap((n) => n.alerts.map((a) => ({ ...a, notified: n.status })))
        .find((a) => a.labels.callee_vm === '9302' && a.notified === 'resolved');
    const deadline = Date.now() + 20_000;
    while (resolvedNotice() === undefined && Date.now() < deadline) await sleep(500);
    const resolved = resolvedNotice();
    const alertLog = () =>
      capture
        .stderr()
        .split('\n')
        .filter((l) => /"msg":"alert/.test(l))
        .join('\n');
    expect(resolved, `${JSON.stringify(notifications())}\n${alertLog()}`).toBeDefined();
    expect(forVm(await amAlerts(), '9302').filter((a) => a.status.state === 'active')).toEqual([]);

    await Promise.all([few.exit, fewFail.exit]);
    expect(few.stats().successfulCalls).toBe(2);
    expect(fewFail.stats().failedCalls).toBe(1);
    expect(forVm(await amAlerts(), '9304')).toEqual([]);
    steadyB.child.kill('SIGUSR1');
    await steadyB.exit;
    steadyA.child.kill('SIGUSR1');
    await steadyA.exit;

    const { out } = await capture.stop();
    const summary = out as { calls: { attempts: number } };
    expect(summary.calls.attempts).toBeGreaterThan(300);

    // What the live evaluator stored, and a replay over the same data from before the wave.
    const cli = async (args: string[]) => {
      const { stdout } = await run(process.execPath, [CALLSCOPE, ...args, '--data-dir', dataDir, '--json'], {
        timeout: 120_000,
        maxBuffer: 64 << 20,
      });
      return JSON.parse(stdout) as AlertTransition[];
    };
    const live = await cli(['alerts', '--list']);
    const key = (t: AlertTransition) =>
      `${new Date(t.at).toISOString()} ${t.rule} ${t.labels.callee_vm} ${t.from}→${t.to}`;
    expect(
      live
        .map(key)
        .filter((k) => k.includes(' 9302 '))
        .map((k) => k.split(' ').pop()),
    ).toEqual(['inactive→pending', 'pending→firing', 'firing→resolved']);
    expect(live.filter((t) => t.labels.callee_vm !== '9302')).toEqual([]);
    // Alertmanager got the resolution with the time it happened, though it was down then.
    const stored = live.find((t) => t.labels.callee_vm === '9302' && t.to === 'resolved')!;
    expect(Date.parse(resolved!.endsAt)).toBe(stored.at);
    expect(stored.at).toBeGreaterThan(downAt);
    const since = new Date(waveStart - 10_000).toISOString();
    const until = new Date(live[live.length - 1]!.at + 10_000).toISOString();
    const replay = await cli([
      'alerts',
      '--evaluate',
      '--since',
      since,
      '--until',
      until,
      '--alert-rules',
      rulesFile,
    ]);
    expect(replay.map(key)).toEqual(live.map(key));
  }, 300_000);
});

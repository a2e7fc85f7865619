/**
 * Failover detection on real parts (docs/FAILOVER.md): two PBX "VMs" (network namespaces on a private
 * Open vSwitch, Proxmox-named taps) share a virtual IP; SIPp answers on the VIP on VM A while a SIPp
 * caller on a third VM calls the VIP at 10 calls/s; the VIP is moved as Pacemaker's IPaddr2 moves it
 * (`ip addr del` on A, `ip addr add` on B, `arping -U` from B) and a SIPp on B takes over, while calls
 * flow. `callscope run --interface` captures the mirror of both PBX VMs into the embedded store.
 *
 * The truth is SIPp's own: the caller's message log (`-trace_shortmsg`) says when it got its last
 * answer from A and its first from B, and which of its calls got no 200 to their BYE.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { failoverImpact } from '../analyze/failover/queries.js';
import { openStore } from '../ingest/store/client.js';
import { type LiveRun, startLiveRun } from './oracle/live-run.js';
import { OVS_LAB, type OvsLab, type OvsVm, startOvs } from './oracle/ovs.js';
import { type NamespacedSipp, startSippIn, waitUdpListening } from './oracle/sipp-netns.js';
import { parseSippShortMessages, type SippLoggedMessage } from './oracle/sipp-outcomes.js';
import { built, needs, PCAP_PACKAGE, removeTmpDir, SIPP_SCENARIO_DIR, tmpDir, tool } from './oracle/tools.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const CALLSCOPE = join(ROOT, 'dist/bin/callscope.js');
const OVS_MIRROR = join(ROOT, 'dist/bin/ovs-mirror.js');
const gate = needs(
  ...OVS_LAB,
  tool('sipp'),
  tool('arping'),
  PCAP_PACKAGE,
  built(CALLSCOPE),
  built(OVS_MIRROR),
);

const VIP = '10.78.0.100';
const SIP_PORT = 5060;
/**
 * How far callscope's gap may be from SIPp's. Both clocks are this host's; the capture stamps a
 * response where the mirror delivers it and SIPp where its event loop reads it, a few ms apart on a
 * loaded 2-core machine; the two offsets mostly cancel in a difference. 50 ms is ~10× what was seen.
 */
const TOLERANCE_MS = 50;

gate.describe('virtual IP failover between two PBX VMs, seen on the mirror', () => {
  const dir = tmpDir('callscope-failover-');
  let lab: OvsLab;
  let caller: OvsVm;
  let pbxA: OvsVm;
  let pbxB: OvsVm;
  let monitor: OvsVm;
  const sipps: NamespacedSipp[] = [];

  beforeAll(async () => {
    lab = await startOvs();
    caller = await lab.addVm({ port: 'tap9301i0', ip: '10.78.0.11/24' });
    pbxA = await lab.addVm({ port: 'tap9302i0', ip: '10.78.0.21/24' });
    pbxB = await lab.addVm({ port: 'tap9303i0', ip: '10.78.0.22/24' });
    monitor = await lab.addVm({ port: 'tap9399i0', ip: '10.78.0.99/24' });
    // IPv4 only: the kernel's IPv6 chatter is not what this test is about.
    for (const vm of [caller, pbxA, pbxB, monitor])
      await lab.exec(vm.ns, 'sysctl', [
        '-qw',
        'net.ipv6.conf.all.disable_ipv6=1',
        `net.ipv6.conf.${vm.nsIf}.disable_ipv6=1`,
      ]);
    await lab.exec(pbxA.ns, 'ip', ['addr', 'add', `${VIP}/24`, 'dev', pbxA.nsIf]);
    // Teach the bridge every VM's MAC (the inventory reads the bridge's MAC table).
    for (const vm of [pbxA, pbxB, monitor]) expect(await lab.udpEcho(vm, caller, { count: 2 })).toBe(2);
    const mirror = await run(
      process.execPath,
      // biome-ignore format: option/value pairs
      [OVS_MIRROR, 'add', '--vm', '9302', '--vm', '9303', '--to', monitor.port, '--name', 'noc-pbx',
        '--db', lab.dbTarget, '--unixctl', lab.vswitchdCtl!, '--json'],
      { timeout: 30_000 },
    );
    expect(JSON.parse(mirror.stdout).changed).toBe(true);
  }, 60_000);

  afterAll(async () => {
    for (const s of sipps) await s.stop();
    await lab?.close();
    removeTmpDir(dir);
  }, 30_000);

  function sipp(vm: OvsVm, name: string, args: string[]): NamespacedSipp {
    const s = startSippIn(lab, vm.ns, name, dir, args);
    sipps.push(s);
    return s;
  }

  /** SIPp answering on the VIP; `scenario` a file of ours (the node taking over), else SIPp's uas. */
  async function uasOnVip(vm: OvsVm, name: string, scenario?: string): Promise<NamespacedSipp> {
    const which = scenario === undefined ? ['-sn', 'uas'] : ['-sf', join(SIPP_SCENARIO_DIR, scenario)];
    const s = sipp(vm, name, [...which, '-i', VIP, '-p', String(SIP_PORT)]);
    await waitUdpListening(lab, vm.ns, SIP_PORT);
    return s;
  }

  it('records exactly one failover, naming both VMs, with the gap SIPp saw', async () => {
    const started = Date.now();
    const capture = startCapture();
    await capture.live;
    const uasA = await uasOnVip(pbxA, 'uas-a');
    const uacLog = join(dir, 'uac.shortmsg.log');
    // biome-ignore format: option/value pairs
    const uac = sipp(caller, 'uac', [
      '-sn', 'uac', '-i', caller.ip, '-p', String(SIP_PORT), '-r', '10', '-m', '100', '-d', '2000',
      // A BYE the new node never answers fails its call after 3.5 s rather than 20 s.
      '-max_non_invite_retrans', '3',
      // A call whose BYE is refused just ends (no second BYE from SIPp).
      '-default_behaviors', 'all,-bye',
      '-trace_shortmsg', '-shortmessage_file', uacLog,
      `${VIP}:${SIP_PORT}`,
    ]);
    await new Promise((r) => setTimeout(r, 4000));

    // The move, as IPaddr2 does it: the address leaves A (and A's service with it), B takes it,
    // B's service starts on it, and B announces it.
    await lab.exec(pbxA.ns, 'ip', ['addr', 'del', `${VIP}/24`, 'dev', pbxA.nsIf]);
    const stopA = uasA.stop();
    await lab.exec(pbxB.ns, 'ip', ['addr', 'add', `${VIP}/24`, 'dev', pbxB.nsIf]);
    // B never had A's dialogs: it answers their BYEs 481, as a PBX does.
    await uasOnVip(pbxB, 'uas-b', 'uas-takeover.xml');
    const announced = Date.now();
    await lab.exec(pbxB.ns, 'arping', ['-U', '-c', '2', '-I', pbxB.nsIf, VIP], { timeoutMs: 10_000 });
    await stopA;

    const uacExit = await Promise.race([
      uac.exit,
      new Promise<'late'>((r) => setTimeout(() => r('late'), 40_000)),
    ]);
    expect(uacExit, 'the caller ran past 40 s').not.toBe('late');
    const result = await capture.stop();
    expect(result.exitCode, result.stderr.slice(-2000)).toBe(0);
    expect((result.out.capture as { droppedKernel: number }).droppedKernel).toBe(0);
    expect((result.out.rows as Record<string, number>).failovers).toBe(1);

    const rows = await query<Record<string, unknown>>(
      capture.dataDir,
      `SELECT address, old_mac, new_mac, old_vm, new_vm, signal, toUnixTimestamp64Milli(time) AS time,
         toUnixTimestamp64Milli(last_answer_before) AS before, toUnixTimestamp64Milli(first_answer_after) AS after,
         gap_ms FROM callscope.failovers`,
    );
    expect(rows).toHaveLength(1);
    const f = rows[0]!;
    expect(f).toMatchObject({
      address: VIP,
      old_mac: pbxA.mac,
      new_mac: pbxB.mac,
      old_vm: '9302',
      new_vm: '9303',
      signal: 'gratuitous-arp',
    });

    // SIPp's view: every answer before the announcement came from A, every one after it from B
    // (between the address leaving A and the announcement, nobody could answer).
    const answers = parseSippShortMessages(readFileSync(uacLog, 'utf8')).filter(
      (m) => m.direction === 'R' && m.status !== null,
    );
    const lastFromA = Math.max(...answers.filter((m) => m.time * 1000 < announced).map((m) => m.time)) * 1000;
    const firstFromB =
      Math.min(...answers.filter((m) => m.time * 1000 >= announced).map((m) => m.time)) * 1000;
    const sippGap = firstFromB - lastFromA;
    const ours = {
      before: Number(f.before),
      after: Number(f.after),
      gap: Number(f.gap_ms),
      move: Number(f.time),
    };
    console.log(
      `[failover] gap: callscope ${ours.gap} ms, SIPp ${sippGap.toFixed(1)} ms ` +
        `(last answer: ${(ours.before - lastFromA).toFixed(1)} ms apart, first after: ` +
        `${(ours.after - firstFromB).toFixed(1)} ms apart); move ${ours.move - announced} ms after arping started; ` +
        `${answers.length} answers to the caller; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(Math.abs(ours.gap - sippGap)).toBeLessThanOrEqual(TOLERANCE_MS);
    expect(Math.abs(ours.before - lastFromA)).toBeLessThanOrEqual(TOLERANCE_MS);
    expect(Math.abs(ours.after - firstFromB)).toBeLessThanOrEqual(TOLERANCE_MS);
    expect(ours.move).toBeGreaterThanOrEqual(announced - TOLERANCE_MS);
    expect(ours.after).toBeGreaterThanOrEqual(ours.move);

    // The calls the failover cut, from the store's calls table, against SIPp's: answered by A and
    // never given a 200 to their BYE.
    const cutBySipp = callsCut(parseSippShortMessages(readFileSync(uacLog, 'utf8')), lastFromA);
    const store = await openStore({ dataDir: capture.dataDir });
    try {
      const impact = await failoverImpact(store.client, 'callscope', {
        address: VIP,
        time: ours.move,
        lastAnswerBefore: ours.before,
      });
      console.log(
        `[failover] calls cut: callscope ${impact.callsCut} (${impact.callsWithoutBye} without BYE), SIPp ${cutBySipp.size}; ` +
          `REGISTERs after ${impact.registersAfter}`,
      );
      expect(cutBySipp.size).toBeGreaterThan(0);
      expect(impact.callsCut).toBe(cutBySipp.size);
      // SIPp's own count agrees: the cut calls are the only ones it failed (481 to their BYE).
      expect(uac.stats().failedCalls).toBe(cutBySipp.size);
      expect(impact.registersAfter).toBe(0);
    } finally {
      await store.close();
    }

    // The summary from the store lists it too.
    const { stdout } = await run(process.execPath, [
      CALLSCOPE,
      'stats',
      '--data-dir',
      capture.dataDir,
      '--json',
    ]);
    const stats = JSON.parse(stdout) as { failovers: { count: number; tracker: { gratuitousArps: number } } };
    expect(stats.failovers.count).toBe(1);
    expect(stats.failovers.tracker.gratuitousArps).toBe(2);
  }, 60_000);

  function startCapture(): LiveRun {
    return startLiveRun(lab, monitor, join(dir, 'store'));
  }

  async function query<T>(dataDir: string, sql: string): Promise<T[]> {
    const store = await openStore({ dataDir });
    try {
      return await (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
    } finally {
      await store.close();
    }
  }
});

/** Call-IDs the caller saw answered (200 to its INVITE) by `untilMs` whose BYE never got a 200. */
function callsCut(log: SippLoggedMessage[], untilMs: number): Set<string> {
  const answered = new Set<string>();
  const byeOk = new Set<string>();
  for (const m of log) {
    if (m.direction !== 'R' || m.status !== 200) continue;
    if (m.cseqMethod === 'INVITE' && m.time * 1000 <= untilMs) answered.add(m.callId);
    if (m.cseqMethod === 'BYE') byeOk.add(m.callId);
  }
  return new Set([...answered].filter((id) => !byeOk.has(id)));
}

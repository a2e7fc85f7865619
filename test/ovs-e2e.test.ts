/**
 * The product's own scenario, end to end on real parts: Open vSwitch (userspace datapath) with VMs as
 * network namespaces on Proxmox-named taps, SIPp callers and a SIPp callee answering with RTP echo,
 * `ovs-mirror` choosing what reaches the monitoring VM's port, and `callscope run --interface` capturing
 * there into the embedded store. SIPp's own counters are the truth the store is checked against.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openStore } from '../ingest/store/client.js';
import { type LiveRun, startLiveRun } from './oracle/live-run.js';
import { OVS_LAB, type OvsLab, type OvsVm, startOvs } from './oracle/ovs.js';
import {
  type NamespacedSipp,
  startSippIn,
  waitUdpListening,
  writeRtpUacScenario,
} from './oracle/sipp-netns.js';
import { built, needs, PCAP_PACKAGE, removeTmpDir, tmpDir } from './oracle/tools.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const CALLSCOPE = join(ROOT, 'dist/bin/callscope.js');
const OVS_MIRROR = join(ROOT, 'dist/bin/ovs-mirror.js');
const gate = needs(...OVS_LAB, 'sipp', PCAP_PACKAGE, built(CALLSCOPE), built(OVS_MIRROR));

/** SIP messages per answered call of SIPp's built-in uac/uas: INVITE 180 200 ACK BYE 200. */
const MESSAGES_PER_CALL = 6;
const SIP_PORT = 5060;

gate.describe('OVS mirror → live capture → store, per VM', () => {
  const dir = tmpDir('callscope-ovs-e2e-');
  let lab: OvsLab;
  let caller1: OvsVm;
  let caller2: OvsVm;
  let callee: OvsVm;
  let monitor: OvsVm;
  let uas: NamespacedSipp;
  let rtpScenario: string;

  beforeAll(async () => {
    lab = await startOvs();
    caller1 = await lab.addVm({ port: 'tap9101i0', ip: '10.77.0.11/24' });
    caller2 = await lab.addVm({ port: 'tap9102i0', ip: '10.77.0.12/24' });
    callee = await lab.addVm({ port: 'tap9103i0', ip: '10.77.0.13/24' });
    monitor = await lab.addVm({ port: 'tap9199i0', ip: '10.77.0.99/24' });
    // IPv4 only: the kernel's IPv6 router solicitations and listener reports (multicast, flooded to
    // every port, so mirrored) would otherwise trickle in while the mirror counter is being compared.
    for (const vm of [caller1, caller2, callee, monitor])
      await lab.exec(vm.ns, 'sysctl', [
        '-qw',
        'net.ipv6.conf.all.disable_ipv6=1',
        `net.ipv6.conf.${vm.nsIf}.disable_ipv6=1`,
      ]);
    rtpScenario = writeRtpUacScenario(dir);
    // biome-ignore format: option/value pairs
    uas = startSippIn(lab, callee.ns, 'uas', dir, [
      '-sn', 'uas', '-i', callee.ip, '-p', String(SIP_PORT), '-mi', callee.ip, '-mp', '16000', '-rtp_echo',
    ]);
    await waitUdpListening(lab, callee.ns, SIP_PORT);
    // Teach the bridge every VM's MAC (fdb/show is how the inventory sees them).
    for (const vm of [caller1, caller2, monitor]) expect(await lab.udpEcho(vm, callee, { count: 2 })).toBe(2);
  }, 60_000);

  afterAll(async () => {
    await uas?.stop();
    await lab?.close();
    removeTmpDir(dir);
  }, 30_000);

  async function ovsMirror(...args: string[]): Promise<Record<string, unknown>> {
    const { stdout } = await run(
      process.execPath,
      [OVS_MIRROR, ...args, '--db', lab.dbTarget, '--unixctl', lab.vswitchdCtl!, '--json'],
      { timeout: 30_000 },
    );
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  async function startCapture(name: string): Promise<LiveRun> {
    const capture = startLiveRun(lab, monitor, join(dir, `store-${name}`));
    await capture.live;
    return capture;
  }

  async function query<T>(dataDir: string, sql: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const store = await openStore({ dataDir });
    try {
      const rs = await store.client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
      return await rs.json<T>();
    } finally {
      await store.close();
    }
  }

  /** The UAS's retransmissions so far: its statistics row is rewritten every second, so wait for one. */
  async function uasRetransmissions(): Promise<number> {
    await new Promise((r) => setTimeout(r, 1500));
    return uas.stats().retransmissions;
  }

  function uac(vm: OvsVm, name: string, args: string[]): NamespacedSipp {
    // biome-ignore format: option/value pairs
    return startSippIn(lab, vm.ns, name, dir, [
      ...args, '-i', vm.ip, '-p', String(SIP_PORT), '-mi', vm.ip, '-mp', '16000',
      `${callee.ip}:${SIP_PORT}`,
    ]);
  }

  it('mirroring one VM: the store holds exactly its calls, attributed to it, and nothing of the other caller', async () => {
    const capture = await startCapture('one-vm');
    const added = await ovsMirror('add', '--vm', '9101', '--to', monitor.port, '--name', 'noc-9101');
    expect(added.changed).toBe(true);
    // The same command again changes nothing.
    expect((await ovsMirror('add', '--vm', '9101', '--to', monitor.port, '--name', 'noc-9101')).changed).toBe(
      false,
    );
    const calls = 6;
    const a = uac(caller1, 'p1-caller1', ['-sf', rtpScenario, '-r', '3', '-m', String(calls)]);
    const b = uac(caller2, 'p1-caller2', ['-sf', rtpScenario, '-r', '3', '-m', String(calls)]);
    await Promise.all([a.exit, b.exit]);
    const s1 = a.stats();
    const s2 = b.stats();
    expect(s1.successfulCalls).toBe(calls);
    expect(s2.successfulCalls).toBe(calls);

    // The mirror's own counter against what the capture received. ovs-vswitchd publishes statistics
    // every 5 s: the figure is final once it has not moved for longer than that.
    let txPackets = -1;
    let steadySince = Date.now();
    for (const deadline = Date.now() + 40_000; Date.now() < deadline; ) {
      const shown = (await ovsMirror('show')) as {
        mirrors: Array<{ name: string; statistics: { tx_packets?: number } }>;
      };
      const tx = shown.mirrors.find((m) => m.name === 'noc-9101')?.statistics.tx_packets ?? -1;
      if (tx !== txPackets) {
        txPackets = tx;
        steadySince = Date.now();
      } else if (tx > 0 && Date.now() - steadySince > 6000) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const result = await capture.stop();
    expect(result.exitCode).toBe(0);
    const live = result.out.capture as { received: number; droppedKernel: number; droppedInterface: number };
    expect(live.droppedKernel).toBe(0);
    // Equal within a few packets: what the capture gets beyond the counter are broadcast/multicast
    // frames (ARP, IPv6 neighbour discovery) flooded to the mirrored port, which the mirror's
    // statistics do not always count (seen: 2 to 6 of ~2,870 packets).
    console.log(`[ovs-e2e] mirror tx_packets ${txPackets}, capture received ${live.received}`);
    expect(live.received).toBeGreaterThanOrEqual(txPackets);
    expect(live.received - txPackets).toBeLessThanOrEqual(10);

    const [sip] = await query<{ messages: string; calls: string; other: string; unattributed: string }>(
      capture.dataDir,
      `SELECT countIf(src_vm = '9101' OR dst_vm = '9101') AS messages,
              uniqExactIf(call_id, src_vm = '9101' OR dst_vm = '9101') AS calls,
              countIf(src_ip = {c2:String} OR dst_ip = {c2:String}) AS other,
              countIf(src_vm = '' OR dst_vm = '') AS unattributed
       FROM callscope.sip_messages`,
      { c2: caller2.ip },
    );
    expect(Number(sip.calls)).toBe(s1.successfulCalls);
    expect(Number(sip.messages)).toBeGreaterThanOrEqual(
      MESSAGES_PER_CALL * s1.successfulCalls + s1.retransmissions,
    );
    expect(Number(sip.messages)).toBeLessThanOrEqual(
      MESSAGES_PER_CALL * s1.successfulCalls + s1.retransmissions + (await uasRetransmissions()),
    );
    expect(Number(sip.other)).toBe(0);
    // Both sides known: the caller by its tap, the callee by the MAC the bridge learned for its port.
    expect(Number(sip.unattributed)).toBe(0);
    const invites = await query<{ src_vm: string; dst_vm: string }>(
      capture.dataDir,
      `SELECT DISTINCT src_vm, dst_vm FROM callscope.sip_messages WHERE method = 'INVITE'`,
    );
    expect(invites).toEqual([{ src_vm: '9101', dst_vm: '9103' }]);
    // Each call's RTP both ways, attributed too.
    const media = await query<{ streams: string; attributed: string }>(
      capture.dataDir,
      `SELECT count() AS streams, countIf(src_vm IN ('9101', '9103') AND dst_vm IN ('9101', '9103')) AS attributed
       FROM callscope.media_reports WHERE kind = 'final'`,
    );
    expect(Number(media[0].attributed)).toBe(Number(media[0].streams));
    expect(Number(media[0].streams)).toBeGreaterThanOrEqual(2);
    const inventory = await query<{ vm_id: string; mac: string; ips: string[] }>(
      capture.dataDir,
      `SELECT vm_id, mac, ips FROM callscope.vm_inventory FINAL WHERE vm_id = '9101'`,
    );
    expect(inventory.map((r) => r.mac)).toContain(caller1.mac);
    // The address attribution learned behind the VM's MAC.
    expect(inventory.flatMap((r) => r.ips)).toContain(caller1.ip);
    // `stats` from the store: the per-VM load, with SIPp's calls as INVITEs each way.
    const { stdout } = await run(process.execPath, [
      CALLSCOPE,
      'stats',
      '--data-dir',
      capture.dataDir,
      '--json',
    ]);
    const loads = (JSON.parse(stdout) as { vms: Array<Record<string, number | string>> }).vms;
    const load = (vm: string) => loads.find((l) => l.vm === vm);
    expect(load('9101')?.invitesSent).toBe(s1.successfulCalls);
    expect(load('9103')?.invitesReceived).toBe(s1.successfulCalls);
    expect(Number(load('9101')?.sipSent) + Number(load('9101')?.sipReceived)).toBe(Number(sip.messages));
    expect(load('9101')?.streamsSent).toBeGreaterThanOrEqual(1);
    expect(load('9102')).toBeUndefined();
  }, 120_000);

  it('adding the second caller while calls flow shows its calls from then on; removing the first stops its', async () => {
    const capture = await startCapture('changes');
    // 10 calls/s for 8 s from each caller (no RTP: signalling only, so timing is sharp).
    const a = uac(caller1, 'p2-caller1', ['-sn', 'uac', '-r', '10', '-m', '80']);
    const b = uac(caller2, 'p2-caller2', ['-sn', 'uac', '-r', '10', '-m', '80']);
    await new Promise((r) => setTimeout(r, 2500));
    const addStart = Date.now();
    await ovsMirror('add', '--vm', '9102', '--to', monitor.port, '--name', 'noc-9102');
    const addEnd = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    const removeStart = Date.now();
    await ovsMirror('remove', 'noc-9101');
    const removeEnd = Date.now();
    await Promise.all([a.exit, b.exit]);
    const result = await capture.stop();
    expect(result.exitCode).toBe(0);
    expect((result.out.capture as { droppedKernel: number }).droppedKernel).toBe(0);
    expect(a.stats().successfulCalls).toBe(80);
    expect(b.stats().successfulCalls).toBe(80);

    const perVm = await query<{ vm: string; first: number; last: number; messages: string }>(
      capture.dataDir,
      `SELECT if(src_vm IN ('9101', '9102'), src_vm, dst_vm) AS vm,
              toUnixTimestamp64Milli(min(time)) AS first, toUnixTimestamp64Milli(max(time)) AS last,
              count() AS messages
       FROM callscope.sip_messages GROUP BY vm ORDER BY vm`,
    );
    const c1 = perVm.find((r) => r.vm === '9101')!;
    const c2 = perVm.find((r) => r.vm === '9102')!;
    expect(perVm.map((r) => r.vm)).toEqual(['9101', '9102']);
    // Caller 2: nothing before the mirror existed, then its traffic.
    expect(Number(c2.first)).toBeGreaterThanOrEqual(addStart);
    expect(Number(c2.messages)).toBeGreaterThan(0);
    // Caller 1: its traffic until the mirror went, nothing after.
    expect(Number(c1.first)).toBeLessThan(addStart);
    expect(Number(c1.last)).toBeLessThanOrEqual(removeEnd);
    // Every call caller 2 began once the mirror was in place is complete in the store.
    const late = await query<{ calls: string; complete: string }>(
      capture.dataDir,
      `SELECT count() AS calls, countIf(n = ${MESSAGES_PER_CALL}) AS complete FROM (
         SELECT call_id, count() AS n, min(time) AS started FROM callscope.sip_messages
         WHERE src_vm = '9102' OR dst_vm = '9102' GROUP BY call_id)
       WHERE toUnixTimestamp64Milli(started) > {after:UInt64}`,
      { after: addEnd + 200 },
    );
    expect(Number(late[0].calls)).toBeGreaterThan(0);
    expect(late[0].complete).toBe(late[0].calls);
    console.log(
      `[ovs-e2e] mirror add took ${addEnd - addStart} ms, remove ${removeEnd - removeStart} ms; ` +
        `stored ${c1.messages} messages of 9101 and ${c2.messages} of 9102`,
    );
  }, 120_000);

  it('at load (the thesis scenario), every SIP message SIPp sent is in the store', async () => {
    await ovsMirror('clear', '--bridge', lab.bridge!);
    const capture = await startCapture('load');
    await ovsMirror('add', '--vm', '9101', '--to', monitor.port, '--name', 'noc-load');
    const rate = Number(process.env.CALLSCOPE_OVS_RATE ?? 300);
    const calls = rate * 6;
    const started = Date.now();
    // biome-ignore format: option/value pairs
    const a = uac(caller1, 'p3-caller1', ['-sn', 'uac', '-r', String(rate), '-rp', '1000', '-m', String(calls)]);
    await a.exit;
    const elapsed = (Date.now() - started) / 1000;
    const s = a.stats();
    const result = await capture.stop();
    expect(result.exitCode).toBe(0);
    const live = result.out.capture as { received: number; droppedKernel: number };
    const [row] = await query<{ messages: string; calls: string }>(
      capture.dataDir,
      `SELECT count() AS messages, uniqExact(call_id) AS calls FROM callscope.sip_messages
       WHERE src_vm = '9101' OR dst_vm = '9101'`,
    );
    console.log(
      `[ovs-e2e] load: ${calls} calls at ${rate} cps asked, ${s.successfulCalls} answered in ${elapsed.toFixed(1)} s ` +
        `(${(s.successfulCalls / elapsed).toFixed(1)} cps), ${s.retransmissions} UAC retransmissions; ` +
        `captured ${live.received} packets, ${live.droppedKernel} kernel drops; stored ${row.messages} messages ` +
        `of ${row.calls} calls`,
    );
    expect(s.successfulCalls).toBe(calls);
    expect(live.droppedKernel).toBe(0);
    expect(Number(row.calls)).toBe(calls);
    expect(Number(row.messages)).toBeGreaterThanOrEqual(MESSAGES_PER_CALL * calls + s.retransmissions);
    expect(Number(row.messages)).toBeLessThanOrEqual(
      MESSAGES_PER_CALL * calls + s.retransmissions + (await uasRetransmissions()),
    );
  }, 120_000);
});

/**
 * `ovs-mirror` against a real Open vSwitch (userspace datapath, VMs as network namespaces on
 * Proxmox-named ports). ovs-vsctl is the outside oracle for what the command wrote to OVSDB, and the
 * namespaces' own MACs for what it learned. Commands run in process through the bin's `main` (same
 * code as the installed command); one run goes through the compiled bin when dist/ is built.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../bin/ovs-mirror.js';
import { OvsInventory } from '../ovs/inventory.js';
import { OvsdbClient } from '../ovs/ovsdb/client.js';
import { UnixctlClient } from '../ovs/unixctl.js';
import { OVS_LAB, type OvsLab, type OvsVm, startOvs } from './oracle/ovs.js';
import { built, needs } from './oracle/tools.js';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'dist/bin/ovs-mirror.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed CLI output, checked field by field
  json: () => any;
}

needs(...OVS_LAB).describe('ovs-mirror against a real Open vSwitch', () => {
  let lab: OvsLab;
  let a0: OvsVm; // VM 9101, first NIC
  let a1: OvsVm; // VM 9101, second NIC
  let b: OvsVm; // VM 9102
  let mon: OvsVm; // the monitoring VM 9103: mirror output
  let lv: OvsVm; // a libvirt guest: vnet port with external_ids

  async function cli(...args: string[]): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const env = { ...process.env };
    for (const k of ['OVS_MIRROR_DB', 'CALLSCOPE_OVS_DB', 'CALLSCOPE_OVS_UNIXCTL', 'CALLSCOPE_CONFIG'])
      delete env[k];
    const code = await main([...args, '--db', lab.dbTarget, '--unixctl', lab.vswitchdCtl!], {
      stdout: (t) => {
        stdout += t;
      },
      stderr: (t) => {
        stderr += t;
      },
      env,
    });
    return { code, stdout, stderr, json: () => JSON.parse(stdout) };
  }

  /** The outside oracle: Mirror rows as ovs-vsctl lists them, port UUIDs turned into names. */
  async function vsctlMirrors(): Promise<
    Record<string, { src: string[]; dst: string[]; out: string | null; uuid: string }>
  > {
    const ports = JSON.parse(await lab.vsctl('--format=json', '--columns=_uuid,name', 'list', 'Port')) as {
      data: [[string, string], string][];
    };
    const nameOf = new Map(ports.data.map(([u, n]) => [u[1], n]));
    const names = (datum: unknown): string[] => {
      const d = datum as [string, unknown];
      const atoms = d[0] === 'set' ? (d[1] as [string, string][]) : [d as [string, string]];
      return atoms.map((a) => nameOf.get(a[1]) ?? a[1]).sort();
    };
    const listed = JSON.parse(
      await lab.vsctl(
        '--format=json',
        '--columns=_uuid,name,select_src_port,select_dst_port,output_port',
        'list',
        'Mirror',
      ),
    ) as { data: [[string, string], string, unknown, unknown, unknown][] };
    const out: Record<string, { src: string[]; dst: string[]; out: string | null; uuid: string }> = {};
    for (const [u, name, src, dst, output] of listed.data) {
      const o = names(output);
      out[name] = { uuid: u[1], src: names(src), dst: names(dst), out: o[0] ?? null };
    }
    return out;
  }

  beforeAll(async () => {
    lab = await startOvs();
    a0 = await lab.addVm({ port: 'tap9101i0', ip: '10.91.0.1/24' });
    a1 = await lab.addVm({ port: 'tap9101i1', ip: '10.91.0.2/24' });
    b = await lab.addVm({ port: 'tap9102i0', ip: '10.91.0.3/24' });
    mon = await lab.addVm({ port: 'tap9103i0', ip: '10.91.0.9/24' });
    lv = await lab.addVm({
      port: 'vnet91',
      ip: '10.91.0.4/24',
      mac: '52:54:00:91:00:04',
      externalIds: {
        'vm-id': '0e6d9b8a-91aa-4c1e-9d55-000000009104',
        'vm-name': 'pbx-libvirt',
        'attached-mac': '52:54:00:91:00:04',
        'iface-id': 'if-9104',
      },
    });
    // Traffic so ovs-vswitchd learns every MAC on its port.
    expect(await lab.udpEcho(a0, b, { count: 3 })).toBe(3);
    expect(await lab.udpEcho(a1, lv, { count: 3 })).toBe(3);
    expect(await lab.udpEcho(mon, b, { count: 1 })).toBe(1);
  }, 60_000);

  afterAll(async () => {
    await lab?.close();
  });

  it('list --json: VMs from tap names and external_ids, learned MACs equal the namespaces’ MACs', async () => {
    const r = await cli('list', '--json');
    expect(r.code, r.stderr).toBe(0);
    const s = r.json();
    expect(s.bridges.map((x: { name: string }) => x.name)).toEqual([lab.bridge]);
    // biome-ignore lint/suspicious/noExplicitAny: parsed CLI output, checked field by field
    const ports = new Map<string, any>(s.bridges[0].ports.map((p: { name: string }) => [p.name, p]));
    for (const vm of [a0, a1, b, mon]) {
      const p = ports.get(vm.port);
      expect(p.vm.kind).toBe('proxmox-qemu');
      expect(p.macs.map((m: { mac: string }) => m.mac)).toContain(vm.mac);
      expect(p.macs.every((m: { mac: string }) => m.mac !== p.interfaces[0].macInUse)).toBe(true);
    }
    expect(ports.get('tap9101i0').vm.id).toBe('9101');
    expect(ports.get('tap9101i1').vm).toMatchObject({ id: '9101', index: 1 });
    expect(ports.get('vnet91').vm).toMatchObject({
      id: '0e6d9b8a-91aa-4c1e-9d55-000000009104',
      name: 'pbx-libvirt',
      kind: 'libvirt',
    });
    expect(ports.get('vnet91').macs[0]).toEqual({ mac: lv.mac, source: 'attached-mac' });
    expect(s.vms.map((v: { id: string }) => v.id)).toEqual([
      '9101',
      '9102',
      '9103',
      '0e6d9b8a-91aa-4c1e-9d55-000000009104',
    ]);
    expect(s.vms[0].ports.map((p: { port: string }) => p.port)).toEqual(['tap9101i0', 'tap9101i1']);
    expect(s.fdbErrors).toEqual([]);

    const text = await cli('list');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/tap9101i0\s+tap9101i0\s+\d+\s+9101\s+proxmox-qemu/);
  });

  it('add --vm selects all of the VM’s ports; the same add again changes nothing', async () => {
    const r = await cli('add', '--vm', '9101', '--to', mon.port, '--json');
    expect(r.code, r.stderr).toBe(0);
    const added = r.json();
    expect(added).toMatchObject({
      changed: true,
      created: true,
      bridge: lab.bridge,
      name: 'callscope-vm9101',
    });
    const oracle = await vsctlMirrors();
    expect(oracle['callscope-vm9101']).toMatchObject({
      src: ['tap9101i0', 'tap9101i1'],
      dst: ['tap9101i0', 'tap9101i1'],
      out: 'tap9103i0',
    });

    const again = await cli('add', '--vm', '9101', '--to', mon.port, '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(again.json()).toMatchObject({ changed: false, uuid: added.uuid });
    expect(await vsctlMirrors()).toEqual(oracle);

    // Same name, other direction: the row is updated in place.
    const inOnly = await cli(
      'add',
      '--vm',
      '9101',
      '--to',
      mon.port,
      '--name',
      'callscope-vm9101',
      '--direction',
      'in',
      '--json',
    );
    expect(inOnly.code, inOnly.stderr).toBe(0);
    expect(inOnly.json()).toMatchObject({ changed: true, created: false, uuid: added.uuid });
    expect((await vsctlMirrors())['callscope-vm9101']).toMatchObject({
      src: [],
      dst: ['tap9101i0', 'tap9101i1'],
    });
  });

  it('refuses an output port that is also selected (exit 65, nothing changed), and unknown VMs list the known ones', async () => {
    const before = await vsctlMirrors();
    const loop = await cli('add', '--vm', '9101', '--to', 'tap9101i1', '--name', 'loop');
    expect(loop.code).toBe(65);
    expect(loop.stderr).toMatch(/output port tap9101i1 is also selected/);
    const unknown = await cli('add', '--vm', 'nosuchvm', '--to', mon.port);
    expect(unknown.code).toBe(65);
    expect(unknown.stderr).toContain('unknown VM "nosuchvm"');
    for (const id of ['9101', '9102', '9103', 'pbx-libvirt']) expect(unknown.stderr).toContain(id);
    const port = await cli('add', '--port', 'nope', '--to', mon.port);
    expect(port.code).toBe(65);
    expect(port.stderr).toMatch(/unknown port "nope".*tap9102i0/);
    const bridge = await cli('add', '--vm', '9102', '--to', mon.port, '--bridge', 'nobr');
    expect(bridge.code).toBe(65);
    expect(bridge.stderr).toContain(lab.bridge!);
    const usage = await cli('add', '--vm', '9102');
    expect(usage.code).toBe(64);
    const show = await cli('show', '--bridge', 'nobr');
    expect(show.code).toBe(65);
    expect(show.stderr).toContain(lab.bridge!);
    // Without ovs-vswitchd's socket: changes are refused before anything is written (69) …
    const io = { stdout: () => undefined, stderr: () => undefined, env: {} };
    const noCtl = ['--db', lab.dbTarget, '--unixctl', `${lab.dir}/none.ctl`];
    expect(await main(['add', '--vm', '9102', '--to', mon.port, ...noCtl], io)).toBe(69);
    // … while list still works, without learned MACs.
    let out = '';
    expect(
      await main(['list', '--json', '--log-level', 'silent', ...noCtl], { ...io, stdout: (t) => (out += t) }),
    ).toBe(0);
    expect(JSON.parse(out).fdbErrors[0].bridge).toBe(lab.bridge);
    // The bridge's internal (LOCAL) port as output would cut it off normal traffic: refused …
    const local = await cli('add', '--vm', '9102', '--to', lab.bridge!, '--name', 'to-local');
    expect(local.code, local.stderr).toBe(65);
    expect(local.stderr).toContain(`would cut ${lab.bridge} off normal traffic`);
    expect(await vsctlMirrors()).toEqual(before);
    // … unless forced.
    const forced = await cli('add', '--vm', '9102', '--to', lab.bridge!, '--name', 'to-local', '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await vsctlMirrors())['to-local']).toMatchObject({ out: lab.bridge });
    expect((await cli('remove', 'to-local')).code).toBe(0);
    expect(await vsctlMirrors()).toEqual(before);
  });

  it('show --json: tx_packets grow with traffic between two VMs; show --interval gives rates', async () => {
    const add = await cli('add', '--vm', 'pbx-libvirt', '--to', mon.port, '--name', 'noc-lv', '--json');
    expect(add.code, add.stderr).toBe(0);
    const txOf = async () => {
      const r = await cli('show', '--json');
      expect(r.code, r.stderr).toBe(0);
      const m = r.json().mirrors.find((x: { name: string }) => x.name === 'noc-lv');
      expect(m.ports).toEqual([
        {
          port: 'vnet91',
          vm: { id: '0e6d9b8a-91aa-4c1e-9d55-000000009104', name: 'pbx-libvirt' },
          direction: 'both',
        },
      ]);
      expect(m.outputPort).toBe(mon.port);
      expect(m.outputVm).toEqual({ id: '9103', name: '' });
      return (m.statistics.tx_packets as number | undefined) ?? 0;
    };
    const before = await txOf();
    expect(await lab.udpEcho(a1, lv, { count: 20 })).toBe(20);
    // ovs-vswitchd publishes mirror statistics every 5 s.
    let after = before;
    for (let i = 0; i < 30 && after < before + 40; i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = await txOf();
    }
    expect(after).toBeGreaterThanOrEqual(before + 40); // 20 requests + 20 echoes

    const rated = await cli('show', '--interval', '1', '--json');
    expect(rated.code, rated.stderr).toBe(0);
    const rate = rated.json().rates.find((x: { name: string }) => x.name === 'noc-lv');
    expect(rate.bridge).toBe(lab.bridge);
    expect(rate.txPackets).toBeGreaterThanOrEqual(after);
    expect(rate.intervalSec).toBeGreaterThanOrEqual(1);
    expect(rate.packetsPerSec).toBeGreaterThanOrEqual(0);

    const text = await cli('show');
    expect(text.stdout).toMatch(
      /mirror noc-lv on .*\n\s+selects:\s+vnet91 \(VM 0e6d9b8a-.* \(pbx-libvirt\)\) both/,
    );
  }, 30_000);

  it('two different mirrors added at the same moment both end up present', async () => {
    const [x, y] = await Promise.all([
      cli('add', '--vm', '9102', '--to', mon.port, '--name', 'race-a', '--json'),
      cli('add', '--port', 'tap9101i0', '--direction', 'out', '--to', mon.port, '--name', 'race-b', '--json'),
    ]);
    expect(x.code, x.stderr).toBe(0);
    expect(y.code, y.stderr).toBe(0);
    console.log('[ovs-mirror] concurrent add attempts:', x.json().attempts, y.json().attempts);
    const oracle = await vsctlMirrors();
    expect(oracle['race-a']).toMatchObject({ src: ['tap9102i0'], dst: ['tap9102i0'] });
    expect(oracle['race-b']).toMatchObject({ src: ['tap9101i0'], dst: [] });
    const bridgeMirrors = await lab.vsctl('get', 'Bridge', lab.bridge!, 'mirrors');
    for (const m of ['race-a', 'race-b']) expect(bridgeMirrors).toContain(oracle[m].uuid);
  });

  it('remove and clear', async () => {
    const rm = await cli('remove', 'race-a', '--json');
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.json()).toMatchObject({ changed: true, removed: [{ name: 'race-a', bridge: lab.bridge }] });
    expect(Object.keys(await vsctlMirrors())).not.toContain('race-a');
    const missing = await cli('remove', 'race-a');
    expect(missing.code).toBe(65);
    expect(missing.stderr).toContain('race-b');

    const clear = await cli('clear', '--bridge', lab.bridge!, '--json');
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.json().removed.length).toBeGreaterThanOrEqual(3);
    expect(await vsctlMirrors()).toEqual({});
    expect((await lab.vsctl('get', 'Bridge', lab.bridge!, 'mirrors')).trim()).toBe('[]');
    const again = await cli('clear', '--json');
    expect(again.code).toBe(0);
    expect(again.json().changed).toBe(false);
  });

  it('OvsInventory follows ports as they come, answers vmOfMac, and survives an ovsdb-server restart', async () => {
    const client = await OvsdbClient.connect(lab.dbTarget, { backoffMinMs: 50, backoffMaxMs: 400 });
    const inv = await OvsInventory.start({
      db: client,
      unixctl: new UnixctlClient(lab.vswitchdCtl!),
      fdbPollMs: 200,
      hypervisor: 'lab',
    });
    const until = async (what: string, ok: () => boolean, ms = 10_000) => {
      const end = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      expect(inv.vmOfMac(a0.mac)).toEqual({ id: '9101', name: '' });
      expect(inv.vmOfMac(lv.mac.toUpperCase())).toEqual({
        id: '0e6d9b8a-91aa-4c1e-9d55-000000009104',
        name: 'pbx-libvirt',
      });
      const rows = inv.entries();
      expect(rows.find((r) => r.port === 'tap9101i1')).toMatchObject({
        vmId: '9101',
        mac: a1.mac,
        hypervisor: 'lab',
        bridge: lab.bridge,
      });

      const c = await lab.addVm({ port: 'tap9105i0', ip: '10.91.0.5/24' });
      await until('the new port', () => inv.entries().some((r) => r.port === 'tap9105i0'));
      expect(await lab.udpEcho(c, b, { count: 2 })).toBe(2);
      await until('its learned MAC', () => inv.vmOfMac(c.mac)?.id === '9105');

      await lab.stopOvsdb({ hard: true });
      await new Promise((r) => setTimeout(r, 300));
      expect(inv.vmOfMac(c.mac)?.id).toBe('9105'); // last good state while OVSDB is away
      await lab.startOvsdb();
      await until('the client to reconnect', () => client.reconnects > 0);
      await lab.vsctl('del-port', lab.bridge!, 'tap9105i0');
      await until('the deleted port to go', () => !inv.entries().some((r) => r.port === 'tap9105i0'));
      expect(inv.vmOfMac(c.mac)).toBeNull();
      expect(inv.vmOfMac(a0.mac)?.id).toBe('9101');
    } finally {
      await inv.close();
      client.close();
    }
  }, 40_000);

  it('an unreachable OVSDB exits 69 naming the target', async () => {
    const target = `unix:${lab.dir}/no-such.sock`;
    let stderr = '';
    const code = await main(['list', '--db', target], {
      stdout: () => undefined,
      stderr: (t) => (stderr += t),
      env: {},
    });
    expect(code).toBe(69);
    expect(stderr).toContain(`cannot reach OVSDB at ${target}`);
  });

  needs(built(BIN)).it('the compiled bin: --help, add and exit codes', async () => {
    const run = (args: string[]) =>
      execFileP(process.execPath, [BIN, ...args], {
        env: { ...process.env, OVS_MIRROR_DB: lab.dbTarget },
      }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    const help = await run(['add', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--output-vlan');
    const add = await run(['add', '--vm', '9102', '--to', mon.port, '--unixctl', lab.vswitchdCtl!, '--json']);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout).changed).toBe(true);
    const bad = await run(['add', '--vm', '9102', '--to', 'tap9102i0', '--unixctl', lab.vswitchdCtl!]);
    expect(bad.code).toBe(65);
    expect((await run(['frobnicate'])).code).toBe(64);
  });
});

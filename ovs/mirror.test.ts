import { describe, expect, it } from 'vitest';
import { buildSnapshot, emptyTables, type InventorySnapshot, type RawTables } from './inventory-snapshot.js';
import {
  applyMirror,
  defaultMirrorName,
  MirrorPurgeError,
  type MirrorRequest,
  type MirrorSample,
  MirrorValidationError,
  mirrorViews,
  outputPortHazard,
  planMirror,
  rates,
} from './mirror.js';
import { OvsdbTransactionError, set, uuid } from './ovsdb/client.js';

const U = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`;
const uuidSet = (...ns: number[]) => set(ns.map((n) => uuid(U(n))));

/**
 * br0: tap100i0, tap100i1 (VM 100), tap101i0 (VM 101), vnet5 (libvirt "pbx"), vnet6 (libvirt "pbx"
 * too), mon0 (a monitoring appliance's vhost-user port: no VM by name, not an uplink), br0 (the
 * internal port), eth0 (the physical uplink); br1: tap100i2 (VM 100 again), tap200i0. Mirror "old"
 * on br0.
 */
function tables(): RawTables {
  const t = emptyTables();
  let n = 100;
  const port = (bridgePorts: number[], name: string, ext: Record<string, string> = {}, type = '') => {
    const p = ++n;
    const i = ++n;
    t.Port.set(U(p), { name, interfaces: uuidSet(i), tag: ['set', []], trunks: ['set', []] });
    t.Interface.set(U(i), { name, type, ofport: i, external_ids: ['map', Object.entries(ext)] });
    bridgePorts.push(p);
    return p;
  };
  const br0: number[] = [];
  const br1: number[] = [];
  port(br0, 'tap100i0');
  port(br0, 'tap100i1');
  const tap101 = port(br0, 'tap101i0');
  port(br0, 'vnet5', { 'vm-id': 'aaaa', 'vm-name': 'pbx' });
  port(br0, 'vnet6', { 'vm-id': 'bbbb', 'vm-name': 'pbx' });
  const mon = port(br0, 'mon0', {}, 'dpdkvhostuserclient');
  port(br0, 'br0', {}, 'internal');
  port(br0, 'eth0', {}, 'system');
  port(br1, 'tap100i2');
  port(br1, 'tap200i0');
  t.Mirror.set(U(50), {
    name: 'old',
    select_all: false,
    select_src_port: uuidSet(tap101),
    select_dst_port: uuidSet(tap101),
    select_vlan: ['set', []],
    output_port: ['uuid', U(mon)],
    output_vlan: ['set', []],
    snaplen: ['set', []],
    statistics: [
      'map',
      [
        ['tx_packets', 10],
        ['tx_bytes', 1000],
      ],
    ],
  });
  t.Bridge.set(U(1), { name: 'br0', ports: uuidSet(...br0), mirrors: uuidSet(50) });
  t.Bridge.set(U(2), { name: 'br1', ports: uuidSet(...br1), mirrors: ['set', []] });
  return t;
}

const snap = buildSnapshot(tables(), { takenMs: 0 });

function oneBridge(): InventorySnapshot {
  return {
    ...snap,
    bridges: [snap.bridges[0]],
    vms: snap.vms
      .map((v) => ({ ...v, ports: v.ports.filter((p) => p.bridge === 'br0') }))
      .filter((v) => v.ports.length > 0),
  };
}

function fails(request: MirrorRequest, pattern: RegExp, s: InventorySnapshot = snap): void {
  let error: unknown;
  try {
    planMirror(s, request);
  } catch (e) {
    error = e;
  }
  expect(error, JSON.stringify(request)).toBeInstanceOf(MirrorValidationError);
  expect((error as Error).message).toMatch(pattern);
}

describe('planMirror', () => {
  it('resolves --vm to every port of the VM on the bridge, by id or by name', () => {
    const plan = planMirror(snap, { vms: ['100'], toPort: 'mon0', bridge: 'br0' });
    expect(plan).toMatchObject({
      bridge: 'br0',
      name: 'callscope-vm100',
      direction: 'both',
      selectAll: false,
      selectSrcPorts: ['tap100i0', 'tap100i1'],
      selectDstPorts: ['tap100i0', 'tap100i1'],
      outputPort: 'mon0',
      outputVlan: null,
      snaplen: null,
      vms: [{ id: '100', name: '', ports: ['tap100i0', 'tap100i1'] }],
      existing: 'none',
    });
    expect(planMirror(snap, { vms: ['aaaa', '101'], toPort: 'mon0' }).selectSrcPorts).toEqual([
      'tap101i0',
      'vnet5',
    ]);
    // The VM's ports on the other bridge.
    expect(planMirror(snap, { vms: ['100'], toPort: 'tap200i0', bridge: 'br1' }).selectSrcPorts).toEqual([
      'tap100i2',
    ]);
  });

  it('maps direction: in = to the VM (select_dst_port), out = from the VM (select_src_port)', () => {
    const inbound = planMirror(snap, { vms: ['101'], direction: 'in', toPort: 'mon0' });
    expect([inbound.selectSrcPorts, inbound.selectDstPorts]).toEqual([[], ['tap101i0']]);
    const outbound = planMirror(snap, { vms: ['101'], direction: 'out', toPort: 'mon0' });
    expect([outbound.selectSrcPorts, outbound.selectDstPorts]).toEqual([['tap101i0'], []]);
    expect(outbound.name).toBe('callscope-vm101-out');
  });

  it('infers the bridge from the selection, else asks for one listing them', () => {
    expect(planMirror(snap, { ports: ['tap200i0'], toPort: 'tap100i2' }).bridge).toBe('br1');
    expect(planMirror(snap, { vms: ['101'], toPort: 'mon0' }).bridge).toBe('br0');
    fails({ vms: ['100'], toPort: 'mon0' }, /several bridges \(br0, br1\): choose one with --bridge/);
    fails({ all: true, outputVlan: 10 }, /several bridges/);
    expect(planMirror(oneBridge(), { all: true, outputVlan: 10 })).toMatchObject({
      bridge: 'br0',
      selectAll: true,
      outputVlan: 10,
      name: 'callscope-all',
    });
    fails({ vms: ['101'], toPort: 'mon0', bridge: 'br9' }, /unknown bridge "br9"; bridges: br0, br1/);
  });

  it('lists what exists when a VM, port or output is unknown', () => {
    fails(
      { vms: ['999'], toPort: 'mon0' },
      /unknown VM "999"; known VMs: 100, 101, 200, aaaa \(pbx\), bbbb \(pbx\)/,
    );
    fails({ vms: ['pbx'], toPort: 'mon0' }, /VM name "pbx" is ambiguous: aaaa \(pbx\), bbbb \(pbx\)/);
    fails(
      { ports: ['eth9'], toPort: 'mon0', bridge: 'br0' },
      /unknown port "eth9" on bridge br0; ports: br0, eth0, mon0, tap100i0, tap100i1, tap101i0, vnet5, vnet6/,
    );
    fails(
      { ports: ['tap101i0'], toPort: 'nope' },
      /unknown output port "nope" on bridge br0; ports: br0, eth0, mon0/,
    );
    fails(
      { vms: ['200'], toPort: 'mon0', bridge: 'br0' },
      /VM 200 has no port on bridge br0; its ports: br1\/tap200i0/,
    );
  });

  it('refuses an output port that is also selected', () => {
    fails({ vms: ['100'], toPort: 'tap100i1', bridge: 'br0' }, /output port tap100i1 is also selected/);
    fails({ ports: ['mon0'], toPort: 'mon0' }, /also selected/);
    // Selecting everything and sending to a port is the classic monitoring setup: OVS excludes the output.
    expect(planMirror(oneBridge(), { all: true, toPort: 'mon0' }).outputPort).toBe('mon0');
  });

  it('refuses the internal (LOCAL) port and the uplink as output unless forced; VM ports are fine', () => {
    fails(
      { vms: ['101'], toPort: 'br0' },
      /output port br0 is bridge br0's internal \(LOCAL\) port: .*would cut br0 off normal traffic.*--force/,
    );
    fails(
      { vms: ['101'], toPort: 'eth0' },
      /output port eth0 is a physical uplink .*would cut eth0 off normal traffic/,
    );
    fails({ all: true, toPort: 'eth0' }, /would cut eth0 off normal traffic/, oneBridge());
    expect(planMirror(snap, { vms: ['101'], toPort: 'br0', force: true }).outputPort).toBe('br0');
    expect(planMirror(snap, { vms: ['101'], toPort: 'eth0', force: true }).outputPort).toBe('eth0');
    // A VM's port (the monitoring VM's tap) is what a mirror output is for.
    expect(planMirror(snap, { vms: ['101'], toPort: 'tap100i0' }).outputPort).toBe('tap100i0');
    expect(planMirror(snap, { vms: ['101'], toPort: 'vnet5' }).outputPort).toBe('vnet5');
    // A port named like the bridge is its LOCAL port whatever its type says; a VM port of type system is a VM's.
    const [bridge] = snap.bridges;
    const p = (name: string) => bridge.ports.find((x) => x.name === name)!;
    const typed = (name: string, type: string) => ({
      ...p(name),
      interfaces: p(name).interfaces.map((i) => ({ ...i, type })),
    });
    expect(outputPortHazard(bridge, typed('br0', ''))).toMatch(/internal/);
    expect(outputPortHazard(bridge, typed('tap100i0', 'system'))).toBeNull();
    expect(outputPortHazard(bridge, typed('tap100i0', 'internal'))).toMatch(/internal/);
    expect(outputPortHazard(bridge, typed('eth0', 'patch'))).toBeNull();
  });

  it('validates output, selection, VLANs, snaplen and name', () => {
    fails({ vms: ['101'] }, /exactly one output/);
    fails({ vms: ['101'], toPort: 'mon0', outputVlan: 5 }, /exactly one output/);
    fails({ toPort: 'mon0' }, /nothing selected/);
    fails({ all: true, vms: ['101'], toPort: 'mon0' }, /do not combine/);
    fails({ vlans: [10], direction: 'in', toPort: 'mon0', bridge: 'br0' }, /applies to ports/);
    fails({ vlans: [4096], toPort: 'mon0', bridge: 'br0' }, /VLAN must be an integer 0..4095/);
    fails({ vms: ['101'], outputVlan: 0 }, /output VLAN must be an integer 1..4095/);
    fails({ vms: ['101'], toPort: 'mon0', snaplen: 13 }, /snaplen must be an integer 14..65535/);
    fails({ vms: ['101'], toPort: 'mon0', snaplen: 1.5 }, /snaplen/);
    fails({ vms: ['101'], toPort: 'mon0', name: '' }, /mirror name/);
    fails({ vms: ['101'], toPort: 'mon0', name: 'a\nb' }, /mirror name/);
    fails({ vms: ['100'], toPort: 'tap200i0', bridge: 'br1', name: 'old' }, /already exists on bridge br0/);
    fails({ vms: ['101'], toPort: 'mon0', direction: 'sideways' as never }, /direction must be/);
    const p = planMirror(snap, { ports: ['tap101i0'], vlans: [20, 10, 20], snaplen: 128, toPort: 'mon0' });
    expect(p).toMatchObject({ selectVlans: [10, 20], snaplen: 128, name: 'callscope-tap101i0-vlan10-20' });
  });

  it('knows whether a mirror of that name already is what is asked', () => {
    expect(planMirror(snap, { vms: ['101'], toPort: 'mon0', name: 'old' }).existing).toBe('identical');
    expect(planMirror(snap, { vms: ['101'], toPort: 'mon0', name: 'old', direction: 'in' }).existing).toBe(
      'different',
    );
    expect(planMirror(snap, { vms: ['101'], toPort: 'mon0', name: 'old', snaplen: 100 }).existing).toBe(
      'different',
    );
  });
});

describe('defaultMirrorName', () => {
  it('is built from the selection and stays short and printable', () => {
    expect(defaultMirrorName({ vms: ['100', '101'] })).toBe('callscope-vm100-vm101');
    expect(defaultMirrorName({ ports: ['tap100i0'], direction: 'in' })).toBe('callscope-tap100i0-in');
    expect(defaultMirrorName({ vms: ['naïve name'] })).toBe('callscope-vmna_ve_name');
    const long = defaultMirrorName({ vms: Array.from({ length: 30 }, (_, i) => String(1000 + i)) });
    expect(long.length).toBeLessThanOrEqual(64);
    expect(long).not.toBe(defaultMirrorName({ vms: Array.from({ length: 30 }, (_, i) => String(2000 + i)) }));
  });
});

describe('mirrorViews and rates', () => {
  it('describes each mirror with its ports’ VMs and direction', () => {
    const [view] = mirrorViews(snap);
    expect(view).toMatchObject({
      bridge: 'br0',
      name: 'old',
      direction: 'both',
      ports: [{ port: 'tap101i0', vm: { id: '101', name: '' }, direction: 'both' }],
      outputPort: 'mon0',
      outputVm: null,
      statistics: { tx_packets: 10, tx_bytes: 1000 },
    });
  });

  it('computes packets/s and bits/s, and refuses to guess across resets', () => {
    const sample = (takenMs: number, uuid: string, stats: Record<string, number>): MirrorSample => ({
      takenMs,
      mirrors: [{ ...mirrorViews(snap)[0], uuid, statistics: stats }],
    });
    const a = sample(1000, 'u1', { tx_packets: 100, tx_bytes: 10_000 });
    const b = sample(6000, 'u1', { tx_packets: 600, tx_bytes: 60_000 });
    expect(rates(a, b)).toEqual([
      {
        bridge: 'br0',
        name: 'old',
        intervalSec: 5,
        txPackets: 600,
        txBytes: 60_000,
        packetsPerSec: 100,
        bitsPerSec: 80_000,
      },
    ]);
    expect(rates(b, a)[0].packetsPerSec).toBeNull(); // counters went back
    expect(rates(a, sample(6000, 'u2', { tx_packets: 5, tx_bytes: 50 }))[0].packetsPerSec).toBeNull(); // re-created
    expect(rates(a, sample(6000, 'u1', {}))[0]).toMatchObject({ txPackets: null, packetsPerSec: null });
  });
});

describe('applyMirror transactions', () => {
  /** A fake OVSDB: serves `tables()` to selects and records transactions. */
  function fakeClient(failWaits = 0) {
    const t = tables();
    const transactions: { op: string; [k: string]: unknown }[][] = [];
    const rowsOf = (table: keyof RawTables) =>
      [...t[table]].map(([u, row]) => ({ _uuid: ['uuid', u], ...row }));
    return {
      transactions,
      tables: t,
      client: {
        transact: async (_db: string, ops: { op: string; [k: string]: unknown }[]) => {
          if (ops.every((o) => o.op === 'select'))
            return ops.map((o) => ({ rows: rowsOf(o.table as keyof RawTables) }));
          transactions.push(ops);
          if (failWaits > 0) {
            failWaits--;
            throw new OvsdbTransactionError(
              'fake',
              'Open_vSwitch',
              0,
              ops[0] as never,
              'timed out',
              undefined,
              [],
            );
          }
          // Apply the insert + mutate so the read-back finds the row.
          const results: unknown[] = ops.map(() => ({}));
          ops.forEach((o, i) => {
            if (o.op === 'insert') {
              t.Mirror.set(U(77), o.row as Record<string, unknown>);
              results[i] = { uuid: ['uuid', U(77)] };
            }
            if (o.op === 'mutate') {
              const br = t.Bridge.get(U(1))!;
              t.Bridge.set(U(1), { ...br, mirrors: uuidSet(50, 77) });
            }
          });
          return results;
        },
      },
    };
  }

  it('guards the insert with waits on the bridge’s mirrors and the ports, retries after a conflict, purges, reads back', async () => {
    const fake = fakeClient(1);
    let purges = 0;
    const plan = planMirror(snap, { vms: ['100'], toPort: 'mon0', bridge: 'br0' });
    const result = await applyMirror(
      fake.client as never,
      { revalidatorPurge: async () => void purges++ },
      plan,
    );
    expect(result).toMatchObject({ changed: true, created: true, attempts: 2 });
    expect(result.mirror).toMatchObject({
      name: 'callscope-vm100',
      selectSrcPorts: ['tap100i0', 'tap100i1'],
      outputPort: 'mon0',
    });
    expect(purges).toBe(1);
    const ops = fake.transactions[1];
    expect(ops.map((o) => `${o.op} ${o.table ?? ''}`.trim())).toEqual([
      'wait Bridge',
      'wait Port',
      'wait Port',
      'wait Port',
      'insert Mirror',
      'mutate Bridge',
      'comment',
    ]);
    expect(ops[0]).toMatchObject({
      until: '==',
      timeout: 0,
      columns: ['mirrors'],
      rows: [{ mirrors: uuidSet(50) }],
    });
    expect(ops[5].mutations).toEqual([['mirrors', 'insert', ['set', [['named-uuid', 'new_mirror']]]]]);
  });

  it('changes nothing (no transaction, no purge) when the mirror is already identical', async () => {
    const fake = fakeClient();
    let purges = 0;
    const plan = planMirror(snap, { vms: ['101'], toPort: 'mon0', name: 'old' });
    const result = await applyMirror(
      fake.client as never,
      { revalidatorPurge: async () => void purges++ },
      plan,
    );
    expect(result).toMatchObject({ changed: false, created: false });
    expect(fake.transactions).toEqual([]);
    expect(purges).toBe(0);
  });

  it('a failed purge after the commit says the mirror WAS changed', async () => {
    const fake = fakeClient();
    const plan = planMirror(snap, { vms: ['100'], toPort: 'mon0', bridge: 'br0' });
    const err = await applyMirror(
      fake.client as never,
      {
        revalidatorPurge: async () => {
          throw new Error('/run/ovs.ctl: revalidator/purge: cannot connect: ENOENT');
        },
      },
      plan,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MirrorPurgeError);
    expect((err as Error).message).toBe(
      'mirror callscope-vm100 committed on br0 (created); revalidator/purge failed: /run/ovs.ctl: revalidator/purge: cannot connect: ENOENT — run ovs-appctl revalidator/purge',
    );
    expect(fake.transactions).toHaveLength(1);
    expect(fake.tables.Mirror.has(U(77))).toBe(true);
  });

  it('gives up after the attempts when other writers keep winning', async () => {
    const fake = fakeClient(100);
    const plan = planMirror(snap, { vms: ['100'], toPort: 'mon0', bridge: 'br0' });
    await expect(
      applyMirror(fake.client as never, { revalidatorPurge: async () => undefined }, plan, { attempts: 3 }),
    ).rejects.toThrow(/gave up after 3 attempts/);
    expect(fake.transactions.length).toBe(3);
  });
});

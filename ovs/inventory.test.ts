import { describe, expect, it } from 'vitest';
import { normaliseMac } from '../capture/attribution.js';
import { silentLogger } from '../core/log.js';
import {
  allPorts,
  applyTableUpdates,
  buildSnapshot,
  emptyTables,
  type FdbEntry,
  macIndex,
  noBadRows,
  OvsInventory,
  type RawTables,
  selectTables,
  type TableUpdates,
  vmFromInterface,
  vmFromPortName,
} from './inventory.js';
import { map, set, uuid } from './ovsdb/datum.js';

describe('vmFromPortName', () => {
  it('recognises Proxmox QEMU taps, LXC veths and firewall ports', () => {
    expect(vmFromPortName('tap100i0')).toEqual({ id: '100', name: '', kind: 'proxmox-qemu', index: 0 });
    expect(vmFromPortName('tap123i31')).toEqual({ id: '123', name: '', kind: 'proxmox-qemu', index: 31 });
    expect(vmFromPortName('veth2005i1')).toEqual({ id: '2005', name: '', kind: 'proxmox-lxc', index: 1 });
    expect(vmFromPortName('fwpr100p0')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 0 });
    expect(vmFromPortName('fwln100i2')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 2 });
    expect(vmFromPortName('fwln100o0')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 0 });
  });

  it('accepts the longest name Linux allows (15 chars) and rejects VMIDs Proxmox cannot have', () => {
    expect('tap999999999i99'.length).toBe(15);
    expect(vmFromPortName('tap999999999i99')?.id).toBe('999999999');
    expect(vmFromPortName('tap1000000000i0')).toBeNull(); // 10-digit VMID
    expect(vmFromPortName('tap99i0')).toBeNull(); // VMIDs start at 100
    expect(vmFromPortName('tap0100i0')).toBeNull(); // leading zero
    expect(vmFromPortName('tap100i00')).toBeNull();
    expect(vmFromPortName('tap100i1000')).toBeNull();
  });

  it('rejects hostile and look-alike names', () => {
    for (const name of [
      '',
      'tap',
      'tap12i',
      'tapi0',
      'tapABCi0',
      'tap100',
      'tap100i',
      'tap100i0 ',
      ' tap100i0',
      'tap100i0\n',
      'tap100i0x',
      'xtap100i0',
      'TAP100i0',
      'tap-100i0',
      'tap1e3i0',
      'tap100.5i0',
      'tap１００i0', // full-width digits
      'tap١٠٠i0', // Arabic-Indic digits
      'tap100і0', // Cyrillic і
      'veth100',
      'fwpr100i0x',
      'fwbr100i0', // the firewall bridge itself is not a port of the OVS bridge
      'vnet0',
      'tap100i0'.repeat(20),
      'a'.repeat(100_000),
    ]) {
      expect(vmFromPortName(name), JSON.stringify(name)).toBeNull();
    }
  });
});

describe('vmFromInterface', () => {
  it('takes libvirt/OpenStack external_ids before names', () => {
    expect(
      vmFromInterface('vnet3', {
        'vm-id': '6f1c2a3e-1111-2222-3333-444455556666',
        'attached-mac': '52:54:00:aa:bb:cc',
        'iface-id': 'x',
        'vm-name': 'pbx1',
      }),
    ).toEqual({ id: '6f1c2a3e-1111-2222-3333-444455556666', name: 'pbx1', kind: 'libvirt', index: null });
    expect(vmFromInterface('tap1', { 'vm-uuid': 'abc' })?.id).toBe('abc');
    expect(vmFromInterface('tap100i0', { 'vm-name': 'sbc' })).toEqual({
      id: '100',
      name: 'sbc',
      kind: 'proxmox-qemu',
      index: 0,
    });
    // Port name rule when the interface name says nothing.
    expect(vmFromInterface('eth0', {}, 'veth300i0')?.id).toBe('300');
    // Without a VM id, attached-mac alone does not make a VM.
    expect(vmFromInterface('vnet0', { 'attached-mac': '52:54:00:00:00:01' })).toBeNull();
  });

  it('ignores unusable external_ids values', () => {
    expect(vmFromInterface('vnet0', { 'vm-id': '' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': '   ' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'a\nb' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'x'.repeat(1000) })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'ok', 'vm-name': 'bad\u0000name' })).toEqual({
      id: 'ok',
      name: '',
      kind: 'libvirt',
      index: null,
    });
    expect(vmFromInterface('vnet0', { 'vm-id': 'üñí-çødé' })?.id).toBe('üñí-çødé');
  });
});

describe('normaliseMac (as the inventory uses it)', () => {
  it('lower-cases and validates; an absent value is no MAC', () => {
    expect(normaliseMac('52:54:00:AA:BB:CC')).toBe('52:54:00:aa:bb:cc');
    expect(normaliseMac('52-54-00-aa-bb-cc')).toBe('52:54:00:aa:bb:cc');
    expect(normaliseMac('52:54:00:aa:bb')).toBeNull();
    expect(normaliseMac('zz:54:00:aa:bb:cc')).toBeNull();
    expect(normaliseMac(undefined)).toBeNull();
    expect(normaliseMac(null)).toBeNull();
  });
});

// --- Snapshot building from rows as OVSDB sends them -------------------------------------------

const U = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`;
const uuidSet = (...ns: number[]) => set(ns.map((n) => uuid(U(n))));

function lab(): RawTables {
  const t = emptyTables();
  t.Bridge.set(U(1), {
    name: 'br0',
    ports: uuidSet(10, 11, 12, 13, 14),
    mirrors: uuidSet(30),
    datapath_type: 'netdev',
  });
  const port = (n: number, name: string, ifaces: number[], tag: unknown = ['set', []]) =>
    t.Port.set(U(n), { name, interfaces: uuidSet(...ifaces), tag, trunks: ['set', []] });
  const iface = (n: number, name: string, ofport: number, ext: Record<string, string> = {}, type = '') =>
    t.Interface.set(U(n), {
      name,
      type,
      ofport,
      mac_in_use: `fe:00:00:00:00:${String(n).padStart(2, '0')}`,
      external_ids: map(ext),
      statistics: map({ rx_packets: n, tx_packets: n * 2 }),
    });
  port(10, 'br0', [20]);
  iface(20, 'br0', 65534, {}, 'internal');
  port(11, 'tap100i0', [21]);
  iface(21, 'tap100i0', 1);
  port(12, 'tap100i1', [22], 10);
  iface(22, 'tap100i1', 2);
  port(13, 'vnet7', [23]);
  iface(23, 'vnet7', 3, { 'vm-id': 'uuid-a', 'vm-name': 'pbx', 'attached-mac': '52:54:00:00:00:07' });
  port(14, 'mon0', [24]);
  iface(24, 'mon0', 4);
  t.Mirror.set(U(30), {
    name: 'm1',
    select_all: false,
    select_src_port: uuidSet(11, 12),
    select_dst_port: ['uuid', U(11)],
    select_vlan: ['set', []],
    output_port: ['uuid', U(14)],
    output_vlan: ['set', []],
    snaplen: ['set', []],
    statistics: map({ tx_packets: 5, tx_bytes: 500 }),
    external_ids: map({}),
  });
  return t;
}

const fdb: FdbEntry[] = [
  { port: '1', vlan: 0, mac: 'AA:00:00:00:00:01', ageSec: 3 },
  { port: '1', vlan: 0, mac: 'aa:00:00:00:00:02', ageSec: 1 },
  { port: '2', vlan: 10, mac: 'aa:00:00:00:00:03', ageSec: 0 },
  { port: 'LOCAL', vlan: 0, mac: 'fe:00:00:00:00:20', ageSec: 0 },
  { port: '3', vlan: 0, mac: '52:54:00:00:00:07', ageSec: 9 },
  { port: '9', vlan: 0, mac: 'aa:00:00:00:00:99', ageSec: 0 }, // unknown ofport
];

describe('buildSnapshot', () => {
  const snap = buildSnapshot(lab(), { takenMs: 1000, fdb: new Map([['br0', fdb]]) });
  const port = (name: string) => snap.bridges[0].ports.find((p) => p.name === name)!;

  it('walks bridges → ports → interfaces', () => {
    expect(snap.bridges.map((b) => b.name)).toEqual(['br0']);
    expect(snap.bridges[0].ports.map((p) => p.name)).toEqual([
      'br0',
      'mon0',
      'tap100i0',
      'tap100i1',
      'vnet7',
    ]);
    expect(port('tap100i1').tag).toBe(10);
    expect(port('tap100i0').interfaces[0]).toMatchObject({
      name: 'tap100i0',
      ofport: 1,
      macInUse: 'fe:00:00:00:00:21',
    });
    expect(port('br0').interfaces[0].type).toBe('internal');
  });

  it('finds each port its VM and its MACs (attached-mac, then learned youngest first; never mac_in_use)', () => {
    expect(port('tap100i0').vm?.id).toBe('100');
    expect(port('tap100i0').macs.map((m) => m.mac)).toEqual(['aa:00:00:00:00:02', 'aa:00:00:00:00:01']);
    expect(port('tap100i1').macs).toEqual([{ mac: 'aa:00:00:00:00:03', source: 'fdb', vlan: 10, ageSec: 0 }]);
    expect(port('vnet7').vm).toEqual({ id: 'uuid-a', name: 'pbx', kind: 'libvirt', index: null });
    expect(port('vnet7').macs).toEqual([{ mac: '52:54:00:00:00:07', source: 'attached-mac' }]);
    expect(port('br0').vm).toBeNull();
    expect(port('br0').macs.map((m) => m.mac)).toEqual(['fe:00:00:00:00:20']);
    expect(snap.vms.map((v) => [v.id, v.ports.map((p) => p.port)])).toEqual([
      ['100', ['tap100i0', 'tap100i1']],
      ['uuid-a', ['vnet7']],
    ]);
    const index = macIndex(snap);
    expect(index.get('aa:00:00:00:00:01')).toEqual({ id: '100', name: '' });
    expect(index.get('52:54:00:00:00:07')).toEqual({ id: 'uuid-a', name: 'pbx' });
    expect(index.has('fe:00:00:00:00:20')).toBe(false); // the bridge's internal port is no VM
    expect(index.has('fe:00:00:00:00:21')).toBe(false); // mac_in_use of the tap
  });

  it('shows which mirrors select each port, and how', () => {
    expect(port('tap100i0').mirrors).toEqual([{ mirror: 'm1', selects: 'both', output: false }]);
    expect(port('tap100i1').mirrors).toEqual([{ mirror: 'm1', selects: 'out', output: false }]);
    expect(port('mon0').mirrors).toEqual([{ mirror: 'm1', selects: null, output: true }]);
    expect(port('vnet7').mirrors).toEqual([]);
    const m = snap.bridges[0].mirrors[0];
    expect(m).toMatchObject({
      name: 'm1',
      selectSrcPorts: ['tap100i0', 'tap100i1'],
      selectDstPorts: ['tap100i0'],
      outputPort: 'mon0',
      outputVlan: null,
      snaplen: null,
      statistics: { tx_packets: 5, tx_bytes: 500 },
    });
  });

  it('selects by VLAN and by select_all', () => {
    const t = lab();
    t.Mirror.set(U(30), {
      ...t.Mirror.get(U(30))!,
      select_src_port: ['set', []],
      select_dst_port: ['set', []],
      select_vlan: 10,
    });
    const s = buildSnapshot(t);
    const p = (n: string) => s.bridges[0].ports.find((x) => x.name === n)!.mirrors;
    expect(p('tap100i1')).toEqual([{ mirror: 'm1', selects: 'vlan', output: false }]);
    expect(p('br0')).toEqual([{ mirror: 'm1', selects: 'vlan', output: false }]); // untagged trunk
    t.Mirror.set(U(30), { ...t.Mirror.get(U(30))!, select_all: true });
    expect(buildSnapshot(t).bridges[0].ports.find((x) => x.name === 'vnet7')!.mirrors[0].selects).toBe('all');
  });

  it('survives rows with missing or odd columns', () => {
    const t = emptyTables();
    t.Bridge.set(U(1), { name: 'b', ports: uuidSet(5, 6) }); // port 6 has no row
    t.Port.set(U(5), { name: 'tap100i0', interfaces: ['set', []] });
    const s = buildSnapshot(t, { fdb: new Map([['b', [{ port: '1', vlan: 0, mac: 'junk', ageSec: 0 }]]]) });
    expect(s.bridges[0].ports.map((p) => [p.name, p.vm?.id, p.macs])).toEqual([['tap100i0', '100', []]]);
  });

  it('reads cells of the wrong kind as absent, keeping what fits', () => {
    const t = emptyTables();
    t.Bridge.set(U(1), { name: 'b', ports: ['set', [['uuid', U(5)], 'not-a-uuid', 7]], mirrors: uuidSet(9) });
    t.Port.set(U(5), {
      name: 'p',
      interfaces: ['uuid', U(6)],
      tag: ['set', [1, 2]],
      trunks: ['set', [10, 'x', 20]],
    });
    t.Interface.set(U(6), {
      name: 'tap100i0',
      ofport: 'x',
      mac_in_use: ['set', ['AA-BB-CC-DD-EE-FF']],
      external_ids: ['set', []],
      statistics: [
        'map',
        [
          ['rx_packets', 3],
          ['oops', 'x'],
          [1, 2],
        ],
      ],
    });
    t.Mirror.set(U(9), {
      name: 'm',
      select_src_port: ['map', []],
      select_vlan: 5,
      output_port: [
        'set',
        [
          ['uuid', U(5)],
          ['uuid', U(6)],
        ],
      ],
      snaplen: ['set', [['uuid', U(5)]]],
    });
    const [bridge] = buildSnapshot(t).bridges;
    const [port] = bridge.ports;
    expect([port.tag, port.trunks]).toEqual([null, [10, 20]]);
    const { ofport, macInUse, externalIds, statistics } = port.interfaces[0];
    expect({ ofport, macInUse, externalIds, statistics }).toEqual({
      ofport: null,
      macInUse: 'aa:bb:cc:dd:ee:ff',
      externalIds: {},
      statistics: { rx_packets: 3 },
    });
    expect(bridge.mirrors[0]).toMatchObject({
      selectSrcPorts: [],
      selectVlans: [5],
      outputPort: null,
      snaplen: null,
    });
  });
});

describe('OvsInventory', () => {
  function fakeDb(tables: RawTables) {
    let onUpdate: ((u: TableUpdates, info: { initial: boolean; replace: boolean }) => void) | null = null;
    const initial: TableUpdates = {};
    for (const [table, rows] of Object.entries(tables)) {
      initial[table] = Object.fromEntries([...rows].map(([u, row]) => [u, { new: row }]));
    }
    return {
      push: (u: TableUpdates, replace = false) => onUpdate?.(u, { initial: replace, replace }),
      initial,
      db: {
        monitor: async (_db: string, _id: unknown, _req: unknown, cb: typeof onUpdate) => {
          onUpdate = cb;
          return initial;
        },
      },
    };
  }

  it('follows monitor updates, keeps learned MACs through fdb failures and ageing, reloads on replace', async () => {
    const fake = fakeDb(lab());
    let fdbResult: FdbEntry[] | Error = fdb;
    const changes: number[] = [];
    const inv = await OvsInventory.start({
      db: fake.db as never,
      unixctl: {
        fdbShow: async () => {
          if (fdbResult instanceof Error) throw fdbResult;
          return fdbResult;
        },
      },
      fdbPollMs: 0,
      hypervisor: 'pve1',
      onChange: (s) => changes.push(s.bridges.length),
    });
    expect(inv.vmOfMac('AA:00:00:00:00:01')).toEqual({ id: '100', name: '' });
    expect(inv.vmOfMac('52:54:00:00:00:07')).toEqual({ id: 'uuid-a', name: 'pbx' });
    const rows = inv.entries({ ipsOf: (id) => (id === '100' ? ['10.0.0.1'] : []) });
    expect(rows.map((r) => [r.vmId, r.port, r.mac, r.hypervisor, r.ips])).toEqual([
      ['100', 'tap100i0', 'aa:00:00:00:00:02', 'pve1', ['10.0.0.1']],
      ['100', 'tap100i1', 'aa:00:00:00:00:03', 'pve1', ['10.0.0.1']],
      ['uuid-a', 'vnet7', '52:54:00:00:00:07', 'pve1', []],
    ]);
    expect(rows[0].firstSeenMs).toBeLessThanOrEqual(rows[0].lastSeenMs);

    // fdb/show fails: counted, last learned MACs kept.
    fdbResult = new Error('connection refused');
    await inv.pollFdb();
    expect(inv.stats.fdbFailures).toBe(1);
    expect(inv.current().fdbErrors).toEqual([{ bridge: 'br0', error: 'connection refused' }]);
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('100');
    // The MAC aged out of the switch: still attributed.
    fdbResult = [];
    await inv.pollFdb();
    expect(inv.current().fdbErrors).toEqual([]);
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('100');
    // The MAC moves to another port: it follows.
    fdbResult = [{ port: '3', vlan: 0, mac: 'aa:00:00:00:00:01', ageSec: 0 }];
    await inv.pollFdb();
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('uuid-a');

    // A port goes away: its VM and MACs go with it.
    fake.push({
      Port: { [U(12)]: { old: {} } },
      Bridge: { [U(1)]: { new: { ...lab().Bridge.get(U(1))!, ports: uuidSet(10, 11, 13, 14) } } },
    });
    expect(inv.entries().map((r) => r.port)).toEqual(['tap100i0', 'vnet7']);
    expect(inv.vmOfMac('aa:00:00:00:00:03')).toBeNull();

    // After a reconnect the client delivers the full contents with replace: rows not in it are gone.
    const only = emptyTables();
    only.Bridge.set(U(1), { name: 'br0', ports: uuidSet(13), mirrors: ['set', []], datapath_type: '' });
    only.Port.set(U(13), lab().Port.get(U(13))!);
    only.Interface.set(U(23), lab().Interface.get(U(23))!);
    const full: TableUpdates = {};
    for (const [table, rowsOf] of Object.entries(only))
      full[table] = Object.fromEntries([...rowsOf].map(([u, row]) => [u, { new: row }]));
    fake.push(full, true);
    expect(inv.entries().map((r) => r.port)).toEqual(['vnet7']);
    expect(inv.vmOfMac('aa:00:00:00:00:02')).toBeNull();
    expect(changes.length).toBeGreaterThanOrEqual(3);
    await inv.close();
  });

  it('applyTableUpdates inserts, modifies and deletes', () => {
    const t = emptyTables();
    applyTableUpdates(t, { Port: { a: { new: { name: 'x' } } } });
    applyTableUpdates(t, { Port: { a: { old: { name: 'x' }, new: { name: 'y' } } } });
    expect(t.Port.get('a')).toEqual({ name: 'y' });
    applyTableUpdates(t, { Port: { a: { old: { name: 'y' } } }, Unknown: { b: { new: {} } } });
    expect(t.Port.size).toBe(0);
  });
});

// --- Learned MACs across bridges joined by patch ports -------------------------------------------

/**
 * br0: tap100i0 (ofport 1), patch-br1 (2, patch), eth0 (3, the uplink); br1: patch-br0 (1, patch),
 * tap200i0 (2). VM 100's MAC is learned on its tap in br0 and on patch-br0 in br1; VM 200's the other
 * way round.
 */
function patched(): RawTables {
  const t = emptyTables();
  t.Bridge.set(U(1), { name: 'br0', ports: uuidSet(11, 12, 13), mirrors: ['set', []] });
  t.Bridge.set(U(2), { name: 'br1', ports: uuidSet(14, 15), mirrors: ['set', []] });
  const port = (n: number, name: string, ofport: number, type = '') => {
    t.Port.set(U(n), { name, interfaces: uuidSet(n + 10), tag: ['set', []], trunks: ['set', []] });
    t.Interface.set(U(n + 10), { name, type, ofport, external_ids: map({}) });
  };
  port(11, 'tap100i0', 1);
  port(12, 'patch-br1', 2, 'patch');
  port(13, 'eth0', 3, 'system');
  port(14, 'patch-br0', 1, 'patch');
  port(15, 'tap200i0', 2);
  return t;
}

const VM100 = 'aa:00:00:00:01:00';
const VM200 = 'aa:00:00:00:02:00';
const REMOTE = 'cc:00:00:00:00:01';

function fakeMonitor(tables: RawTables) {
  let onUpdate: ((u: TableUpdates, info: { initial: boolean; replace: boolean }) => void) | null = null;
  const initial: TableUpdates = {};
  for (const [table, rows] of Object.entries(tables))
    initial[table] = Object.fromEntries([...rows].map(([u, row]) => [u, { new: row }]));
  return {
    push: (u: TableUpdates) => onUpdate?.(u, { initial: false, replace: false }),
    db: {
      monitor: async (_db: string, _id: unknown, _req: unknown, cb: typeof onUpdate) => {
        onUpdate = cb;
        return initial;
      },
    } as never,
  };
}

describe('OvsInventory learned MACs', () => {
  it('keys learned MACs by bridge: attribution does not flap with the order fdb/show replies come in', async () => {
    const tables: Record<string, FdbEntry[]> = {
      br0: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '2', vlan: 0, mac: VM200, ageSec: 1 },
      ],
      br1: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '2', vlan: 0, mac: VM200, ageSec: 1 },
      ],
    };
    let last = 'br1'; // the bridge whose fdb/show finishes last
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) => {
          await new Promise((r) => setTimeout(r, bridge === last ? 15 : 1));
          return tables[bridge];
        },
      },
      fdbPollMs: 0,
    });
    for (const order of ['br0', 'br1', 'br0', 'br1']) {
      last = order;
      await inv.pollFdb();
      expect(inv.vmOfMac(VM100), `br ${order} last`).toEqual({ id: '100', name: '' });
      expect(inv.vmOfMac(VM200), `br ${order} last`).toEqual({ id: '200', name: '' });
    }
    // Both learnings are shown: the VM's tap and the patch port in the other bridge.
    const ports = allPorts(inv.current());
    const macsOf = (name: string) => ports.find((p) => p.name === name)!.macs.map((m) => m.mac);
    expect(macsOf('tap100i0')).toEqual([VM100]);
    expect(macsOf('patch-br0')).toEqual([VM100]);
    expect(macsOf('tap200i0')).toEqual([VM200]);
    expect(macsOf('patch-br1')).toEqual([VM200]);
    expect(inv.stats.learnedMacs).toBe(4);
    await inv.close();
  });

  it('a MAC on a VM port and a non-VM port of one bridge goes to the VM port', async () => {
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) =>
          bridge === 'br0'
            ? [
                { port: '3', vlan: 20, mac: VM100, ageSec: 0 },
                { port: '1', vlan: 0, mac: VM100, ageSec: 5 },
              ]
            : [],
      },
      fdbPollMs: 0,
    });
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    const eth0 = allPorts(inv.current()).find((p) => p.name === 'eth0')!;
    expect(eth0.macs).toEqual([]);
    await inv.close();
  });

  it('drops MACs the switch aged out on non-VM ports, keeps those of VM ports', async () => {
    let result: Record<string, FdbEntry[]> = {
      br0: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '3', vlan: 0, mac: REMOTE, ageSec: 1 },
      ],
      br1: [{ port: '1', vlan: 0, mac: VM100, ageSec: 1 }],
    };
    let down = false;
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) => {
          if (down) throw new Error('connection refused');
          return result[bridge] ?? [];
        },
      },
      fdbPollMs: 0,
    });
    const macsOf = (name: string) =>
      allPorts(inv.current())
        .find((p) => p.name === name)!
        .macs.map((m) => m.mac);
    expect(macsOf('eth0')).toEqual([REMOTE]);
    expect(macsOf('patch-br0')).toEqual([VM100]);
    result = { br0: [], br1: [] };
    await inv.pollFdb();
    expect(macsOf('eth0')).toEqual([]);
    expect(macsOf('patch-br0')).toEqual([]);
    expect(macsOf('tap100i0')).toEqual([VM100]); // a quiet VM keeps its MAC
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    expect(inv.stats).toMatchObject({ learnedExpired: 2, learnedMacs: 1 });
    // A failed fdb/show expires nothing.
    result = { br0: [{ port: '3', vlan: 0, mac: REMOTE, ageSec: 0 }], br1: [] };
    await inv.pollFdb();
    down = true;
    await inv.pollFdb();
    expect(macsOf('eth0')).toEqual([REMOTE]);
    expect(inv.stats.fdbFailures).toBe(2);
    await inv.close();
  });

  it('keeps at most maxLearnedMacs entries, VM ports first, and counts what it drops', async () => {
    const warnings: string[] = [];
    const entries: FdbEntry[] = [
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:01', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:02', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:03', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:04', ageSec: 0 },
      { port: '1', vlan: 0, mac: VM100, ageSec: 0 },
    ];
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: { fdbShow: async (bridge: string) => (bridge === 'br0' ? entries : []) },
      fdbPollMs: 0,
      maxLearnedMacs: 3,
      logger: { ...silentLogger, warn: (msg: string) => void warnings.push(msg) } as never,
    });
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    expect(inv.stats).toMatchObject({ learnedMacs: 3, learnedDropped: 2 });
    await inv.pollFdb(); // the same table again: the kept ones update, the others are dropped again
    expect(inv.stats).toMatchObject({ learnedMacs: 3, learnedDropped: 4 });
    expect(warnings.filter((w) => /table full/.test(w))).toHaveLength(1);
    await inv.close();
  });

  it('counts fdb/show lines that did not parse when the source reports them', async () => {
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async () => [],
        fdbTable: async (bridge: string) => ({
          entries: bridge === 'br0' ? [{ port: '1', vlan: 0, mac: VM100, ageSec: 0 }] : [],
          badLines: bridge === 'br0' ? 2 : 0,
          firstBadLine: bridge === 'br0' ? 'fdb/show line 3 "junk": expected 4 columns' : null,
        }),
      },
      fdbPollMs: 0,
    });
    expect(inv.stats.fdbBadLines).toBe(2);
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    await inv.close();
  });
});

// --- Malformed OVSDB data -----------------------------------------------------------------------

describe('malformed OVSDB replies', () => {
  it('applyTableUpdates skips and counts bad changes, naming the table', () => {
    const t = emptyTables();
    const bad = noBadRows();
    const skipped = applyTableUpdates(
      t,
      {
        Port: { a: null, b: { new: 'x' }, c: { new: { name: 'ok' } }, d: 7 },
        Interface: 5,
        Bridge: [],
      } as never,
      bad,
    );
    expect(skipped).toBe(5);
    expect(bad).toEqual({ count: 5, first: 'monitor Bridge: table-update is []' });
    expect([...t.Port.keys()]).toEqual(['c']);
    expect(() => applyTableUpdates(t, null as never)).toThrow(
      /monitor Open_vSwitch: table-updates is not an object/,
    );
  });

  it('selectTables skips null rows and rows without a UUID, and names the table when rows is not an array', async () => {
    const reply = (rowsOf: (table: string) => unknown) => ({
      transact: async (_db: string, ops: { table: string }[]) => ops.map((o) => ({ rows: rowsOf(o.table) })),
    });
    const bad = noBadRows();
    const tables = await selectTables(
      reply((table) =>
        table === 'Bridge' ? [null, { _uuid: ['uuid', U(1)], name: 'br0' }, { name: 'no-uuid' }, 'x'] : [],
      ) as never,
      bad,
    );
    expect([...tables.Bridge.keys()]).toEqual([U(1)]);
    expect(bad).toEqual({ count: 3, first: 'select Bridge: row 0 is null' });
    await expect(selectTables(reply((t) => (t === 'Port' ? { no: 1 } : [])) as never)).rejects.toThrow(
      /transact Open_vSwitch: malformed reply: select Port: no rows array/,
    );
    await expect(selectTables({ transact: async () => ({}) } as never)).rejects.toThrow(
      /malformed reply: the selects of Bridge, Port, Interface, Mirror/,
    );
    await expect(
      selectTables({ transact: async () => [null, { rows: [] }, { rows: [] }, { rows: [] }] } as never),
    ).rejects.toThrow(/select Bridge: no rows array \(got null\)/);
  });

  it('the live inventory counts malformed monitor rows and keeps going', async () => {
    const fake = fakeMonitor(patched());
    const inv = await OvsInventory.start({ db: fake.db, fdbPollMs: 0 });
    fake.push({ Port: { [U(99)]: null, [U(98)]: { new: 3 } } } as never);
    expect(inv.stats.badRows).toBe(2);
    expect(inv.current().bridges.map((b) => b.name)).toEqual(['br0', 'br1']);
    await inv.close();
  });
});
